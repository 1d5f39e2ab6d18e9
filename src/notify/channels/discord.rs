//! Discord webhooks, "Execute Webhook"
//! (<https://discord.com/developers/docs/resources/webhook#execute-webhook>): `POST` the
//! webhook URL with `?wait=true` (so Discord answers 200 with the created message once it
//! is really posted, instead of 204 before), JSON `content`, `embeds` and
//! `allowed_mentions: {parse: []}` (merchant text must not ping anyone).
//!
//! Errors are JSON `{"message", "code"}` (Discord "JSON Error Codes"); a 429 body carries
//! `retry_after` in seconds as a float and `global` (<https://discord.com/developers/docs/topics/rate-limits>).
//! Classification: 2xx → delivered; 429 → retry after the body's `retry_after`, else
//! `Retry-After`; 401 (`Invalid Webhook Token`, code 50027) and 403 → pause; 404
//! (`Unknown Webhook`, code 10015), 400 and other 4xx → dead; 5xx → retry.
//!
//! Pacing: webhooks allow 5 requests per 2 seconds (the `X-RateLimit-*` headers of the
//! execute route) and about 30 messages per minute per channel (Discord's webhook guide,
//! <https://birdie0.github.io/discord-webhooks-guide/other/rate_limits.html>).

use std::time::Duration;

use serde_json::{json, Value};

use crate::domain::event::EventLevel;
use crate::notify::channels::{
    classify_http, seconds, Channel, Outgoing, Reply, Request, Secret, Verdict, WEBHOOK_URL_SECRETS,
};
use crate::notify::pacing::{Limit, Limits};

/// This channel's `[notifications.<section>]`: one incoming-webhook URL.
pub use crate::notify::channels::WebhookUrlConfig;

/// The Discord channel, as the notifier drives it.
pub struct Discord;

impl Channel for Discord {
    type Config = WebhookUrlConfig;
    const SECRETS: &'static [Secret] = WEBHOOK_URL_SECRETS;

    fn limits(_config: &WebhookUrlConfig) -> Limits {
        Limits {
            channel: vec![
                Limit {
                    max: 5,
                    per: Duration::from_secs(2),
                },
                Limit {
                    max: 30,
                    per: Duration::from_secs(60),
                },
            ],
            ..Limits::default()
        }
    }

    fn build(config: &WebhookUrlConfig, request: &Request<'_>) -> Result<Outgoing, Verdict> {
        Ok(build(config, request))
    }

    fn classify(reply: &Reply) -> Verdict {
        if reply.status == 429 {
            let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
            return Verdict::Retryable {
                error: crate::notify::channels::http_error(reply),
                retry_after: seconds(&body["retry_after"]).or(reply.retry_after_header),
            };
        }
        classify_http(reply)
    }
}

/// Embed colours by level (green, amber, red).
fn colour(level: EventLevel) -> u32 {
    match level {
        EventLevel::Info => 0x2e_b8_86,
        EventLevel::Warning => 0xf2_a9_00,
        EventLevel::Critical => 0xd9_30_25,
    }
}

/// `url` with `wait=true` added to its query.
pub fn with_wait(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}wait=true")
}

pub fn build(config: &WebhookUrlConfig, request: &Request<'_>) -> Outgoing {
    let message = request.message;
    let fields: Vec<Value> = message
        .lines
        .iter()
        .map(|(label, value)| json!({"name": label, "value": value, "inline": true}))
        .collect();
    let body = json!({
        "content": message.headline(),
        "embeds": [{
            "title": message.title,
            "color": colour(message.level),
            "fields": fields,
            "timestamp": message.created_at,
            "footer": {"text": message.level_label()},
        }],
        "allowed_mentions": {"parse": []},
    });
    Outgoing::json(
        with_wait(&config.webhook_url),
        body.to_string().into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::channels::tests::reply;

    #[test]
    fn classifies_the_documented_errors() {
        assert_eq!(Discord::classify(&reply(200, "{}")), Verdict::Delivered);
        let limited = Discord::classify(&reply(
            429,
            r#"{"message":"You are being rate limited.","retry_after":0.75,"global":false}"#,
        ));
        assert!(
            matches!(limited, Verdict::Retryable { retry_after: Some(d), .. } if d.as_millis() == 750)
        );
        assert!(matches!(
            Discord::classify(&reply(
                401,
                r#"{"message":"Invalid Webhook Token","code":50027}"#
            )),
            Verdict::Credentials { .. }
        ));
        assert!(matches!(
            Discord::classify(&reply(404, r#"{"message":"Unknown Webhook","code":10015}"#)),
            Verdict::Rejected { .. }
        ));
        assert_eq!(
            with_wait("http://d/api/webhooks/1/t"),
            "http://d/api/webhooks/1/t?wait=true"
        );
        assert_eq!(
            with_wait("http://d/x?thread_id=5"),
            "http://d/x?thread_id=5&wait=true"
        );
    }
}
