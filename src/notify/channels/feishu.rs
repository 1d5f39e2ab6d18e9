//! Feishu / Lark custom bots ("自定义机器人使用指南",
//! <https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot>): `POST` the webhook
//! URL with JSON `msg_type: "post"` (rich text: a title and one paragraph per line) and,
//! when a signing secret is set, `timestamp` (Unix seconds, as a string) and `sign`.
//!
//! Signing: the HMAC-SHA256 key is `timestamp + "\n" + secret`, the message is empty, the
//! signature is the digest in standard base64 (the guide's "签名校验" section and its
//! Python/Go samples). The timestamp must be within an hour of Feishu's clock.
//!
//! Errors arrive as HTTP 200 with a non-zero `code` and a `msg` (`{"code": 19021, "msg":
//! "sign match fail or timestamp is not within one hour from current time"}`).
//! Classification: `code` 0 (or the legacy `StatusCode` 0) → delivered; 9499 and 11232
//! (frequency limits) → retry; 19021 (signature refused: a wrong secret) → pause; any
//! other non-zero code → dead; HTTP 429/5xx → retry.
//!
//! Pacing (same guide, "使用限制"): a custom bot may send 100 messages per minute and 5 per
//! second.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::config::check::ConfigError;
use crate::notify::channels::{
    Section,
    check_webhook_url, classify_http, http_error, Channel, Outgoing, Reply, Request, Secret, Verdict,
};
use crate::notify::pacing::{Limit, Limits};

/// Response codes that mean "too many requests".
const RATE_LIMIT_CODES: [i64; 2] = [9499, 11232];
/// Response code of a refused signature.
const SIGNATURE_REFUSED_CODE: i64 = 19021;

/// `[notifications.feishu]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuConfig {
    pub enabled: bool,
    pub webhook_url: String,
    /// The bot's signing secret; empty = unsigned.
    pub secret: String,
}

impl Section for FeishuConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self, section: &str, allow_private_targets: bool) -> Result<(), ConfigError> {
        check_webhook_url(section, &self.webhook_url, self.enabled, allow_private_targets)
    }
}

/// The Feishu channel, as the notifier drives it.
pub struct Feishu;

impl Channel for Feishu {
    type Config = FeishuConfig;
    const SECRETS: &'static [Secret] = &[Secret::url("webhook_url"), Secret::plain("secret")];

    fn build(config: &FeishuConfig, request: &Request<'_>) -> Result<Outgoing, Verdict> {
        build(config, request)
    }

    fn classify(reply: &Reply) -> Verdict {
        if !(200..300).contains(&reply.status) {
            return classify_http(reply);
        }
        let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        let code = body["code"]
            .as_i64()
            .or_else(|| body["StatusCode"].as_i64());
        let error = match body["msg"].as_str() {
            Some(msg) => format!("code {}: {msg}", code.unwrap_or(-1)),
            None => http_error(reply),
        };
        match code {
            Some(0) => Verdict::Delivered,
            Some(c) if RATE_LIMIT_CODES.contains(&c) => Verdict::Retryable {
                error,
                retry_after: None,
            },
            Some(SIGNATURE_REFUSED_CODE) => Verdict::Credentials { error },
            Some(_) => Verdict::Rejected { error },
            // A 2xx without a code is not Feishu's answer (a proxy's page): try again later.
            None => Verdict::Retryable {
                error,
                retry_after: None,
            },
        }
    }

    fn limits(_config: &FeishuConfig) -> Limits {
        Limits {
            channel: vec![
                Limit::per_second(5),
                Limit {
                    max: 100,
                    per: Duration::from_secs(60),
                },
            ],
            ..Limits::default()
        }
    }
}

/// The `sign` of `timestamp_s` for `secret` (see the module doc).
pub fn sign(timestamp_s: i64, secret: &str) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    // HMAC takes keys of any length; this cannot fail.
    let mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// The signed `post` message.
///
/// # Errors
/// Never today; the signature cannot fail. Kept fallible like every channel's `build`.
pub fn build(config: &FeishuConfig, request: &Request<'_>) -> Result<Outgoing, Verdict> {
    let message = request.message;
    let mut paragraphs: Vec<Value> = message
        .lines
        .iter()
        .map(|(label, value)| json!([{"tag": "text", "text": format!("{label}: {value}")}]))
        .collect();
    paragraphs.insert(
        0,
        json!([{"tag": "text", "text": format!("Level: {}", message.level_label())}]),
    );
    let mut body = json!({
        "msg_type": "post",
        "content": {"post": {"zh_cn": {"title": message.headline(), "content": paragraphs}}},
    });
    if !config.secret.is_empty() {
        body["timestamp"] = json!(request.now_s.to_string());
        body["sign"] = json!(sign(request.now_s, &config.secret));
    }
    Ok(Outgoing::json(
        config.webhook_url.clone(),
        body.to_string().into_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::channels::tests::reply;

    #[test]
    fn signs_like_the_guide_samples() {
        // Computed with the guide's Python sample (hmac.new(key, b"", sha256), base64).
        assert_eq!(
            sign(1_599_360_473, "demo-secret"),
            "3/MaVZ8JLIy4TUG+7KSFJqvUkTKd+HWY8g+56DZWq8s="
        );
    }

    #[test]
    fn errors_arrive_as_200_with_a_code() {
        assert_eq!(
            Feishu::classify(&reply(200, r#"{"code":0,"msg":"success","data":{}}"#)),
            Verdict::Delivered
        );
        assert_eq!(
            Feishu::classify(&reply(200, r#"{"StatusCode":0,"StatusMessage":"success"}"#)),
            Verdict::Delivered
        );
        assert!(matches!(
            Feishu::classify(&reply(
                200,
                r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#
            )),
            Verdict::Credentials { .. }
        ));
        assert!(matches!(
            Feishu::classify(&reply(200, r#"{"code":11232,"msg":"frequency limited"}"#)),
            Verdict::Retryable { .. }
        ));
        assert!(matches!(
            Feishu::classify(&reply(200, r#"{"code":19001,"msg":"param invalid: incoming webhook access token invalid"}"#)),
            Verdict::Rejected { error } if error.contains("19001")
        ));
        assert!(matches!(
            Feishu::classify(&reply(503, "")),
            Verdict::Retryable { .. }
        ));
    }
}
