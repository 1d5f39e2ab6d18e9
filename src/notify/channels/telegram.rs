//! Telegram Bot API `sendMessage` (<https://core.telegram.org/bots/api#sendmessage>):
//! `POST {api_base_url}/bot{token}/sendMessage` with JSON `chat_id`, `text`,
//! `parse_mode: "HTML"` and, for a forum topic, `message_thread_id`.
//!
//! Answers are `{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description",
//! "parameters": {"retry_after", "migrate_to_chat_id"}}` (Bot API "Making requests" and
//! `ResponseParameters`). Classification: `ok` → delivered; `migrate_to_chat_id` → retry at
//! the new chat; 429 → retry after `parameters.retry_after` seconds; 401 (bad token) and
//! 404 (the token in the path is not a bot's: "Not Found") → pause; 400 (chat not found)
//! and 403 (bot blocked or kicked) → dead; 5xx → retry.
//!
//! Pacing (Bot FAQ "My bot is hitting limits", <https://core.telegram.org/bots/faq>): at
//! most one message per second to one chat, 20 per minute to one group, about 30 per
//! second over all chats.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::check::{check_url, invalid, ConfigError};
use crate::notify::channels::Verdict;
use crate::notify::channels::{
    Section,
    classify_http, http_error, seconds, Channel, Outgoing, Reply, Request, Secret,
};
use crate::notify::pacing::{Limit, Limits};
use crate::notify::template::escape_html;

/// `[notifications.telegram]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    pub enabled: bool,
    pub api_base_url: String,
    pub bot_token: String,
    /// Chat ids; a string of ids split by commas or newlines is accepted too.
    #[serde(deserialize_with = "crate::config::check::string_list")]
    pub chat_ids: Vec<String>,
    /// Forum topic (`message_thread_id`); 0 = none.
    pub thread_id: i64,
}

impl Section for TelegramConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self, section: &str, allow_private_targets: bool) -> Result<(), ConfigError> {
        let key = |name: &str| format!("notifications.{section}.{name}");
        check_url(&key("api_base_url"), &self.api_base_url, true, allow_private_targets)?;
        if self.enabled && self.bot_token.is_empty() {
            return Err(invalid(&key("bot_token"), "required when enabled"));
        }
        if self.enabled && self.chat_ids.is_empty() {
            return Err(invalid(&key("chat_ids"), "required when enabled"));
        }
        if self.thread_id < 0 {
            return Err(invalid(&key("thread_id"), "must be >= 0"));
        }
        Ok(())
    }
}

/// The Telegram channel, as the notifier drives it.
pub struct Telegram;

impl Channel for Telegram {
    type Config = TelegramConfig;
    const SECRETS: &'static [Secret] = &[Secret::plain("bot_token")];

    fn targets(config: &TelegramConfig) -> Vec<String> {
        config.chat_ids.clone()
    }

    fn build(config: &TelegramConfig, request: &Request<'_>) -> Result<Outgoing, Verdict> {
        Ok(build(config, request))
    }

    /// Reads the Bot API answer (see the module doc).
    fn classify(reply: &Reply) -> Verdict {
        let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        let ok = body["ok"].as_bool();
        if (200..300).contains(&reply.status) && ok != Some(false) {
            return Verdict::Delivered;
        }
        let description = body["description"]
            .as_str()
            .map(|d| format!("HTTP {}: {d}", reply.status))
            .unwrap_or_else(|| http_error(reply));
        let parameters = &body["parameters"];
        if let Some(chat) = parameters.get("migrate_to_chat_id").and_then(Value::as_i64) {
            return Verdict::Migrate {
                chat_id: chat.to_string(),
                error: description,
            };
        }
        let code = body["error_code"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(reply.status);
        match code {
            429 => Verdict::Retryable {
                error: description,
                retry_after: seconds(&parameters["retry_after"]).or(reply.retry_after_header),
            },
            401 | 404 => Verdict::Credentials { error: description },
            400 | 403 => Verdict::Rejected { error: description },
            _ => match classify_http(reply) {
                Verdict::Delivered => Verdict::Rejected { error: description },
                other => other,
            },
        }
    }

    fn limits(_config: &TelegramConfig) -> Limits {
        Limits {
            channel: vec![Limit::per_second(30)],
            target: vec![Limit::per_second(1)],
            group_target: vec![Limit {
                max: 20,
                per: Duration::from_secs(60),
            }],
        }
    }
}

/// The `sendMessage` request to the delivery's chat.
pub fn build(config: &TelegramConfig, request: &Request<'_>) -> Outgoing {
    let message = request.message;
    let mut text = format!("<b>{}</b>", escape_html(&message.headline()));
    for (label, value) in &message.lines {
        text.push_str(&format!("\n<b>{label}:</b> {}", escape_html(value)));
    }
    let target = request.delivery.target.as_str();
    // Numeric ids go as numbers, `@channelusername` as a string (both are accepted).
    let chat_id = target
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(target));
    let mut body = json!({
        "chat_id": chat_id,
        "text": text,
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    });
    if config.thread_id > 0 {
        body["message_thread_id"] = json!(config.thread_id);
    }
    let url = format!(
        "{}/bot{}/sendMessage",
        config.api_base_url.trim_end_matches('/'),
        config.bot_token
    );
    Outgoing::json(url, body.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::delivery::{Channel, Delivery};
    use crate::notify::channels::tests::reply;
    use crate::notify::channels::Channel as _;
    use crate::notify::template::{tests::paid_event, Message};

    #[test]
    fn builds_send_message_with_thread_and_html() {
        let event = paid_event();
        let message = Message::of(&event);
        let delivery = Delivery::new(
            "dlv_1".into(),
            ("evt_1", 1, "payment.succeeded"),
            Channel::Telegram,
            "-1001".into(),
            0,
        );
        let config = TelegramConfig {
            enabled: true,
            api_base_url: "http://t/".into(),
            bot_token: "123:abc".into(),
            chat_ids: vec!["-1001".into()],
            thread_id: 7,
        };
        let out = build(
            &config,
            &Request {
                message: &message,
                event: &event,
                delivery: &delivery,
                endpoint: None,
                payment: None,
                now_s: 0,
            },
        );
        assert_eq!(out.url, "http://t/bot123:abc/sendMessage");
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["chat_id"], -1001);
        assert_eq!(body["message_thread_id"], 7);
        assert_eq!(body["parse_mode"], "HTML");
        let text = body["text"].as_str().unwrap();
        assert!(text.starts_with("<b>[INFO] Order paid</b>"), "{text}");
        assert!(text.contains("19.99 USD") && text.contains("o-&lt;1&gt;"));
    }

    #[test]
    fn classifies_the_documented_errors() {
        assert_eq!(
            Telegram::classify(&reply(200, r#"{"ok":true,"result":{}}"#)),
            Verdict::Delivered
        );
        let limited = Telegram::classify(&reply(
            429,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#,
        ));
        assert!(
            matches!(limited, Verdict::Retryable { retry_after: Some(d), .. } if d.as_secs() == 3)
        );
        let migrated = Telegram::classify(&reply(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1009}}"#,
        ));
        assert!(matches!(migrated, Verdict::Migrate { chat_id, .. } if chat_id == "-1009"));
        assert!(matches!(
            Telegram::classify(&reply(
                401,
                r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#
            )),
            Verdict::Credentials { .. }
        ));
        assert!(matches!(
            Telegram::classify(&reply(400, r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#)),
            Verdict::Rejected { error } if error.contains("chat not found")
        ));
        assert!(matches!(
            Telegram::classify(&reply(
                403,
                r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#
            )),
            Verdict::Rejected { .. }
        ));
        assert!(matches!(
            Telegram::classify(&reply(502, "<html>bad gateway</html>")),
            Verdict::Retryable { .. }
        ));
    }
}
