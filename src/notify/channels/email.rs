//! E-mail through a Resend-compatible API (<https://resend.com/docs/api-reference/emails/send-email>):
//! `POST {api_base_url}/emails` with `Authorization: Bearer {api_key}`, JSON `from`, `to`
//! (a list), `subject`, `html` and `text`, and `Idempotency-Key` = the delivery id, so a
//! retry after a lost answer never sends the mail twice (Resend keeps keys 24 hours,
//! <https://resend.com/docs/dashboard/emails/idempotency-keys>).
//!
//! Errors are JSON `{"statusCode", "name", "message"}` (<https://resend.com/docs/api-reference/errors>).
//! Classification: 200 → delivered; 401 (`missing_api_key`) and 403 (`invalid_api_key`)
//! → pause; 409 (`concurrent_idempotent_requests`) and 429 (with `retry-after`) → retry;
//! 400, 404, 422 (`validation_error`) → dead; 5xx → retry.
//!
//! Pacing (<https://resend.com/docs/api-reference/rate-limit>): 2 requests per second per
//! team by default.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::check::{check_url, invalid, ConfigError};
use crate::notify::channels::{
    classify_http, Channel, Outgoing, Reply, Request, Secret, Section, Verdict,
};
use crate::notify::pacing::{Limit, Limits};
use crate::notify::template::escape_html;

/// `[notifications.email]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub enabled: bool,
    pub api_base_url: String,
    pub api_key: String,
    pub from: String,
    #[serde(deserialize_with = "crate::config::check::string_list")]
    pub to: Vec<String>,
}

impl Section for EmailConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self, section: &str, allow_private_targets: bool) -> Result<(), ConfigError> {
        let key = format!("notifications.{section}.api_base_url");
        check_url(&key, &self.api_base_url, true, allow_private_targets)?;
        if self.enabled && (self.api_key.is_empty() || self.from.is_empty() || self.to.is_empty())
        {
            return Err(invalid(
                &format!("notifications.{section}"),
                "api_key, from and to are required when enabled",
            ));
        }
        Ok(())
    }
}

/// The Email channel, as the notifier drives it.
pub struct Email;

impl Channel for Email {
    type Config = EmailConfig;
    const SECRETS: &'static [Secret] = &[Secret::plain("api_key")];

    fn build(config: &EmailConfig, request: &Request<'_>) -> Result<Outgoing, Verdict> {
        Ok(build(config, request))
    }

    fn classify(reply: &Reply) -> Verdict {
        let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        let error = match (body["name"].as_str(), body["message"].as_str()) {
            (Some(name), Some(message)) => format!("HTTP {} {name}: {message}", reply.status),
            _ => crate::notify::channels::http_error(reply),
        };
        match classify_http(reply) {
            Verdict::Delivered => Verdict::Delivered,
            _ if reply.status == 409 => Verdict::Retryable {
                error,
                retry_after: None,
            },
            Verdict::Retryable { retry_after, .. } => Verdict::Retryable { error, retry_after },
            Verdict::Credentials { .. } => Verdict::Credentials { error },
            _ => Verdict::Rejected { error },
        }
    }

    fn limits(_config: &EmailConfig) -> Limits {
        Limits {
            channel: vec![Limit::per_second(2)],
            ..Limits::default()
        }
    }
}

pub fn build(config: &EmailConfig, request: &Request<'_>) -> Outgoing {
    let message = request.message;
    let mut rows = String::new();
    for (label, value) in &message.lines {
        rows.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape_html(label),
            escape_html(value)
        ));
    }
    let html = format!(
        "<h2>{}</h2><table>{rows}</table>",
        escape_html(&message.headline())
    );
    let body = json!({
        "from": config.from,
        "to": config.to,
        "subject": message.headline(),
        "html": html,
        "text": message.plain_text(),
    });
    let url = format!("{}/emails", config.api_base_url.trim_end_matches('/'));
    Outgoing::json(url, body.to_string().into_bytes())
        .header("authorization", format!("Bearer {}", config.api_key))
        .header("idempotency-key", request.delivery.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::channels::tests::reply;

    #[test]
    fn classifies_the_documented_errors() {
        assert_eq!(
            Email::classify(&reply(200, r#"{"id":"x"}"#)),
            Verdict::Delivered
        );
        assert!(matches!(
            Email::classify(&reply(403, r#"{"statusCode":403,"name":"invalid_api_key","message":"API key is invalid"}"#)),
            Verdict::Credentials { error } if error.contains("invalid_api_key")
        ));
        assert!(matches!(
            Email::classify(&reply(
                422,
                r#"{"statusCode":422,"name":"validation_error","message":"bad from"}"#
            )),
            Verdict::Rejected { .. }
        ));
        assert!(matches!(
            Email::classify(&reply(
                409,
                r#"{"statusCode":409,"name":"concurrent_idempotent_requests","message":"x"}"#
            )),
            Verdict::Retryable { .. }
        ));
        assert!(matches!(
            Email::classify(&reply(429, "")),
            Verdict::Retryable { .. }
        ));
    }
}
