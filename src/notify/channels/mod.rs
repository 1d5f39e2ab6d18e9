//! The six channels, one file each. A channel is two pure functions and its limits:
//! `build` turns a message into the exact HTTP request the vendor's API takes, `classify`
//! turns the vendor's answer into a [`Verdict`] by the vendor's documented error format.
//! Sending is the notifier's job ([`crate::notify::attempt`]), so every channel is tested
//! without a network.
//!
//! Classification, shared by all (each file refines it; docs/notifications.md has the
//! table with sources): 2xx delivered; 429 retried after its `retry_after`/`Retry-After`;
//! 408, 425, 5xx, network errors and timeouts retried on the schedule; 401/403 pause the
//! channel (credentials); other 4xx are dead at once (destination).

pub mod discord;
pub mod email;
pub mod feishu;
pub mod slack;
pub mod telegram;
pub mod webhook;

use std::time::Duration;

use crate::config::NotificationsConfig;
use crate::domain::delivery::{truncate_utf8, Channel, Delivery};
use crate::domain::event::Event;
use crate::notify::pacing::Limits;
use crate::notify::template::Message;
use crate::redact::Redactor;

/// Longest response body read for classification, in bytes.
pub const RESPONSE_BODY_BYTES_MAX: usize = 16 * 1024;
/// Longest response text quoted in an attempt's error.
const ERROR_QUOTE_BYTES_MAX: usize = 200;

/// One HTTP request to send: always a `POST` of a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The vendor's answer, as far as classification needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// The `Retry-After` header, in seconds, if it was a number.
    pub retry_after_header: Option<Duration>,
    pub body: String,
}

/// What an attempt's answer means for the delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Try again: after `retry_after` when the API said so, else on the schedule.
    Retryable {
        error: String,
        retry_after: Option<Duration>,
    },
    /// The destination refused it for good: dead at once.
    Rejected {
        error: String,
    },
    /// The channel's credentials were refused: pause the channel.
    Credentials {
        error: String,
    },
    /// Telegram: the chat became a supergroup with this id; retry there.
    Migrate {
        chat_id: String,
        error: String,
    },
}

/// What `build` reads besides the settings.
pub struct Request<'a> {
    pub message: &'a Message,
    pub event: &'a Event,
    pub delivery: &'a Delivery,
    /// The wall clock in Unix seconds (signatures carry it).
    pub now_s: i64,
}

/// Whether `channel` is switched on in `config`.
pub fn enabled(channel: Channel, config: &NotificationsConfig) -> bool {
    match channel {
        Channel::Telegram => config.telegram.enabled,
        Channel::Slack => config.slack.enabled,
        Channel::Discord => config.discord.enabled,
        Channel::Feishu => config.feishu.enabled,
        Channel::Email => config.email.enabled,
        Channel::Webhook => config.webhook.enabled,
    }
}

/// The targets an event fans out to on `channel`: each Telegram chat id, else one.
pub fn targets(channel: Channel, config: &NotificationsConfig) -> Vec<String> {
    match channel {
        Channel::Telegram => config.telegram.chat_ids.clone(),
        _ => vec![String::new()],
    }
}

/// The request for `request` on `channel`.
///
/// # Errors
/// A [`Verdict`] when the settings cannot make a request (e.g. a secret that is not
/// `whsec_<base64>`: credentials).
pub fn build(
    channel: Channel,
    config: &NotificationsConfig,
    request: &Request<'_>,
) -> Result<Outgoing, Verdict> {
    match channel {
        Channel::Telegram => Ok(telegram::build(&config.telegram, request)),
        Channel::Slack => Ok(slack::build(&config.slack, request)),
        Channel::Discord => Ok(discord::build(&config.discord, request)),
        Channel::Feishu => feishu::build(&config.feishu, request),
        Channel::Email => Ok(email::build(&config.email, request)),
        Channel::Webhook => webhook::build(&config.webhook, request),
    }
}

/// What `reply` means on `channel`.
pub fn classify(channel: Channel, reply: &Reply) -> Verdict {
    match channel {
        Channel::Telegram => telegram::classify(reply),
        Channel::Slack => slack::classify(reply),
        Channel::Discord => discord::classify(reply),
        Channel::Feishu => feishu::classify(reply),
        Channel::Email => email::classify(reply),
        Channel::Webhook => webhook::classify(reply),
    }
}

/// The pacing limits of `channel`.
pub fn limits(channel: Channel, config: &NotificationsConfig) -> Limits {
    match channel {
        Channel::Telegram => telegram::limits(),
        Channel::Slack => slack::limits(),
        Channel::Discord => discord::limits(),
        Channel::Feishu => feishu::limits(),
        Channel::Email => email::limits(),
        Channel::Webhook => webhook::limits(config.webhook.rate_per_s),
    }
}

/// Every secret of the settings (tokens, keys, and URLs that embed tokens), to scrub from
/// any text that could reach a log, an error or the API.
pub fn secrets(config: &NotificationsConfig) -> Vec<String> {
    [
        &config.telegram.bot_token,
        &config.slack.webhook_url,
        &config.discord.webhook_url,
        &config.feishu.webhook_url,
        &config.feishu.secret,
        &config.email.api_key,
        &config.webhook.secret,
        &config.webhook.url,
    ]
    .into_iter()
    .filter(|s| s.len() >= 4)
    .cloned()
    .collect()
}

/// The [`Redactor`] of [`secrets`]: what scrubs an attempt's error before it is stored
/// or logged.
pub fn redactor(config: &NotificationsConfig) -> Redactor {
    Redactor::new(secrets(config).iter().map(String::as_str))
}

/// The classification every channel starts from (see the module doc).
pub fn classify_http(reply: &Reply) -> Verdict {
    let error = http_error(reply);
    match reply.status {
        200..=299 => Verdict::Delivered,
        429 => Verdict::Retryable {
            error,
            retry_after: reply.retry_after_header,
        },
        408 | 425 | 500..=599 => Verdict::Retryable {
            error,
            retry_after: None,
        },
        401 | 403 => Verdict::Credentials { error },
        400..=499 => Verdict::Rejected { error },
        _ => Verdict::Rejected { error },
    }
}

/// `HTTP 503: <first bytes of the body>`.
pub fn http_error(reply: &Reply) -> String {
    let mut quote = reply.body.trim().to_owned();
    truncate_utf8(&mut quote, ERROR_QUOTE_BYTES_MAX);
    if quote.is_empty() {
        format!("HTTP {}", reply.status)
    } else {
        format!("HTTP {}: {quote}", reply.status)
    }
}

/// Seconds (integer or fraction) as a duration, if sane.
pub fn seconds(value: &serde_json::Value) -> Option<Duration> {
    let s = value.as_f64()?;
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(86_400.0)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            retry_after_header: None,
            body: body.to_owned(),
        }
    }

    #[test]
    fn the_shared_classification() {
        assert_eq!(classify_http(&reply(204, "")), Verdict::Delivered);
        assert!(matches!(
            classify_http(&reply(503, "")),
            Verdict::Retryable { .. }
        ));
        let mut limited = reply(429, "");
        limited.retry_after_header = Some(Duration::from_secs(7));
        assert_eq!(
            classify_http(&limited),
            Verdict::Retryable {
                error: "HTTP 429".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            classify_http(&reply(401, "")),
            Verdict::Credentials { .. }
        ));
        for status in [400, 404, 410] {
            assert!(matches!(
                classify_http(&reply(status, "")),
                Verdict::Rejected { .. }
            ));
        }
    }

    #[test]
    fn secrets_are_scrubbed() {
        let mut config = crate::config::Config::embedded().unwrap().notifications;
        config.telegram.bot_token = "123:ABC".to_owned();
        assert_eq!(
            redactor(&config).redact("url /bot123:ABC/sendMessage and /bot123%3AABC/"),
            "url /bot[redacted]/sendMessage and /bot[redacted]/"
        );
    }
}
