//! Slack incoming webhooks (<https://api.slack.com/messaging/webhooks>): `POST` the
//! webhook URL with JSON `text` (the notification fallback) and `blocks` (one `mrkdwn`
//! section).
//!
//! Errors are an HTTP status with a short string body (Slack changelog 2016-05-17,
//! "Improving error conditions for Incoming Webhooks"): 400 `invalid_payload` /
//! `user_not_found`, 403 `action_prohibited`, 404 `channel_not_found` / `no_service`,
//! 410 `channel_is_archived`, 500 `rollup_error`; a revoked token answers
//! `invalid_token`. Classification: 200 → delivered; `invalid_token` (any status) and any
//! other 401/403 → pause; `action_prohibited`, 400, 404, 410 → dead; 429 → retry after
//! `Retry-After`; 5xx → retry.
//!
//! Pacing (<https://api.slack.com/docs/rate-limits>, "Message Posting"): "no more than one
//! message per second", short bursts tolerated — we keep to one per second.

use serde_json::json;

use crate::notify::channels::{
    classify_http, http_error, Channel, Outgoing, Reply, Request, Secret, Verdict,
    WEBHOOK_URL_SECRETS,
};
use crate::notify::pacing::{Limit, Limits};

/// This channel's `[notifications.<section>]`: one incoming-webhook URL.
pub use crate::notify::channels::WebhookUrlConfig;

/// The Slack channel, as the notifier drives it.
pub struct Slack;

impl Channel for Slack {
    type Config = WebhookUrlConfig;
    const SECRETS: &'static [Secret] = WEBHOOK_URL_SECRETS;

    fn limits(_config: &WebhookUrlConfig) -> Limits {
        Limits {
            channel: vec![Limit::per_second(1)],
            ..Limits::default()
        }
    }

    fn build(config: &WebhookUrlConfig, request: &Request<'_>) -> Result<Outgoing, Verdict> {
        Ok(build(config, request))
    }

    fn classify(reply: &Reply) -> Verdict {
        let code = reply.body.trim();
        if code == "invalid_token" {
            return Verdict::Credentials {
                error: http_error(reply),
            };
        }
        if code == "action_prohibited" {
            return Verdict::Rejected {
                error: http_error(reply),
            };
        }
        classify_http(reply)
    }
}

/// Slack's `mrkdwn` needs `&`, `<`, `>` escaped (message formatting docs).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn build(config: &WebhookUrlConfig, request: &Request<'_>) -> Outgoing {
    let message = request.message;
    let mut markdown = format!("*{}*", escape(&message.headline()));
    for (label, value) in &message.lines {
        markdown.push_str(&format!("\n*{label}:* {}", escape(value)));
    }
    let body = json!({
        "text": escape(&message.headline()),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": markdown}}],
    });
    Outgoing::json(config.webhook_url.clone(), body.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::channels::tests::reply;

    #[test]
    fn classifies_the_documented_errors() {
        assert_eq!(Slack::classify(&reply(200, "ok")), Verdict::Delivered);
        assert!(matches!(
            Slack::classify(&reply(403, "invalid_token")),
            Verdict::Credentials { .. }
        ));
        assert!(matches!(
            Slack::classify(&reply(403, "action_prohibited")),
            Verdict::Rejected { .. }
        ));
        for (status, body) in [
            (400, "invalid_payload"),
            (404, "channel_not_found"),
            (404, "no_service"),
            (410, "channel_is_archived"),
        ] {
            assert!(matches!(
                Slack::classify(&reply(status, body)),
                Verdict::Rejected { .. }
            ));
        }
        assert!(matches!(
            Slack::classify(&reply(500, "rollup_error")),
            Verdict::Retryable { .. }
        ));
        assert_eq!(escape("<a&b>"), "&lt;a&amp;b&gt;");
    }
}
