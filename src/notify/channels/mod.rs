//! The channels, one file each, each a [`Channel`] with its settings section (a
//! [`Section`]: the config struct and its checks): `build` turns a message into the exact
//! HTTP request the vendor's API takes, `classify` turns the vendor's answer into a
//! [`Verdict`] by the vendor's documented error format, plus its secrets and pacing limits.
//! The channel modules themselves are declared from the channel list too.
//! Sending is the notifier's job ([`crate::notify::attempt`]), so every channel is tested
//! without a network. The functions below dispatch a [`delivery::Channel`] to its
//! implementation; they are generated from the one list of channels,
//! [`crate::domain::delivery::for_each_channel`] (adding a channel: docs/notifications.md).
//!
//! Classification, shared by all (each file refines it; docs/notifications.md has the
//! table with sources): 2xx delivered; 429 retried after its `retry_after`/`Retry-After`;
//! 408, 425, 5xx, network errors and timeouts retried on the schedule; 401/403 pause the
//! channel (credentials); other 4xx are dead at once (destination).

pub mod section;

pub use section::NotificationsConfig;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::check::ConfigError;
use crate::domain::delivery::{self, for_each_channel, truncate_utf8, Delivery};
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

impl Outgoing {
    /// A `POST` of the JSON `body` to `url`, with `content-type: application/json`.
    pub fn json(url: String, body: Vec<u8>) -> Outgoing {
        Outgoing {
            url,
            headers: vec![("content-type", "application/json".to_owned())],
            body,
        }
    }

    /// This request with the header `name: value` added after the others.
    #[must_use]
    pub fn header(mut self, name: &'static str, value: String) -> Outgoing {
        self.headers.push((name, value));
        self
    }
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
    /// The merchant webhook endpoint of a `merchant` delivery, as stored now (`None`:
    /// another channel, or the endpoint was deleted).
    pub endpoint: Option<&'a crate::domain::webhook_endpoint::WebhookEndpoint>,
    /// The payment a `merchant` delivery's event is about, as stored now (its merchant
    /// text completes the event's `data.object`, `Event::merchant_view`).
    pub payment: Option<&'a crate::domain::payment::Payment>,
    /// The wall clock in Unix seconds (signatures carry it).
    pub now_s: i64,
}

/// A secret of a channel's settings section: the key, and whether it is a URL (redacted,
/// a URL keeps its origin so an operator can tell which endpoint is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secret {
    pub key: &'static str,
    pub is_url: bool,
}

impl Secret {
    /// A secret URL (its origin stays visible when redacted).
    pub const fn url(key: &'static str) -> Secret {
        Secret { key, is_url: true }
    }

    /// A secret that is not a URL (a token, a key).
    pub const fn plain(key: &'static str) -> Secret {
        Secret { key, is_url: false }
    }
}

/// The secrets of a section that is one incoming-webhook URL with a token in its path
/// (Slack, Discord).
pub const WEBHOOK_URL_SECRETS: &[Secret] = &[Secret::url("webhook_url")];

/// A channel's `[notifications.<section>]` settings, declared in the channel's file.
pub trait Section: Serialize {
    /// Whether the channel is switched on.
    fn enabled(&self) -> bool;

    /// Checks the section's values at start-up and on every settings change.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key as `notifications.<section>.<key>`;
    /// `allow_private_targets` is `notifications.allow_private_targets`.
    fn validate(&self, section: &str, allow_private_targets: bool) -> Result<(), ConfigError>;
}

/// The section of a channel that is one incoming-webhook URL (Slack, Discord).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookUrlConfig {
    pub enabled: bool,
    pub webhook_url: String,
}

impl Section for WebhookUrlConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self, section: &str, allow_private_targets: bool) -> Result<(), ConfigError> {
        check_webhook_url(
            section,
            &self.webhook_url,
            self.enabled,
            allow_private_targets,
        )
    }
}

/// `notifications.{section}.webhook_url`, `url`, per [`crate::config::check::check_url`]: required
/// when the channel is `enabled`.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the key.
pub(crate) fn check_webhook_url(
    section: &str,
    url: &str,
    enabled: bool,
    allow_private_targets: bool,
) -> Result<(), ConfigError> {
    let key = format!("notifications.{section}.webhook_url");
    crate::config::check::check_url(&key, url, enabled, allow_private_targets)
}

/// One notification channel: what the notifier needs to know of it. Implemented by a unit
/// struct in the channel's own file and named in
/// [`crate::domain::delivery::for_each_channel`].
pub trait Channel {
    /// The channel's `[notifications.<section>]` settings.
    type Config: Section;
    /// The keys of [`Channel::Config`] that hold secrets (tokens, keys, URLs that embed
    /// tokens): scrubbed from errors and logs, redacted in the settings API.
    const SECRETS: &'static [Secret];

    /// The targets an event fans out to: one delivery each. One unnamed target unless
    /// the channel has several (Telegram's chat ids).
    fn targets(_config: &Self::Config) -> Vec<String> {
        vec![String::new()]
    }

    /// The request for `request`.
    ///
    /// # Errors
    /// A [`Verdict`] when the settings cannot make a request (e.g. a secret that is not
    /// `whsec_<base64>`: credentials).
    fn build(config: &Self::Config, request: &Request<'_>) -> Result<Outgoing, Verdict>;

    /// What the vendor's `reply` means for the delivery.
    fn classify(reply: &Reply) -> Verdict;

    /// The pacing limits under the vendor's documented rate limits.
    fn limits(config: &Self::Config) -> Limits;
}

/// The secret values of one section, by [`Channel::SECRETS`].
fn section_secrets<C: Channel>(section: &C::Config, out: &mut Vec<String>) {
    let value = serde_json::to_value(section).unwrap_or_default();
    for secret in C::SECRETS {
        if let Some(text) = value.get(secret.key).and_then(|v| v.as_str()) {
            out.push(text.to_owned());
        }
    }
}

macro_rules! dispatch {
    ($($variant:ident = $tag:literal, $section:ident, $config:ident;)*) => {
        $(pub mod $section;)*

        /// Whether `channel` is switched on in `config`.
        pub fn enabled(channel: delivery::Channel, config: &NotificationsConfig) -> bool {
            match channel {
                $(delivery::Channel::$variant => config.$section.enabled(),)*
            }
        }

        /// Checks every channel's section ([`Section::validate`]).
        ///
        /// # Errors
        /// The first section's [`ConfigError`].
        pub fn validate(config: &NotificationsConfig) -> Result<(), ConfigError> {
            let allow = config.allow_private_targets;
            $(config.$section.validate(stringify!($section), allow)?;)*
            Ok(())
        }

        /// The targets an event fans out to on `channel` ([`Channel::targets`]).
        pub fn targets(channel: delivery::Channel, config: &NotificationsConfig) -> Vec<String> {
            match channel {
                $(delivery::Channel::$variant => {
                    <$section::$variant as Channel>::targets(&config.$section)
                })*
            }
        }

        /// The request for `request` on `channel`.
        ///
        /// # Errors
        /// A [`Verdict`] when the settings cannot make a request (e.g. a secret that is not
        /// `whsec_<base64>`: credentials).
        pub fn build(
            channel: delivery::Channel,
            config: &NotificationsConfig,
            request: &Request<'_>,
        ) -> Result<Outgoing, Verdict> {
            match channel {
                $(delivery::Channel::$variant => {
                    <$section::$variant as Channel>::build(&config.$section, request)
                })*
            }
        }

        /// What `reply` means on `channel`.
        pub fn classify(channel: delivery::Channel, reply: &Reply) -> Verdict {
            match channel {
                $(delivery::Channel::$variant => <$section::$variant as Channel>::classify(reply),)*
            }
        }

        /// The pacing limits of `channel`.
        pub fn limits(channel: delivery::Channel, config: &NotificationsConfig) -> Limits {
            match channel {
                $(delivery::Channel::$variant => {
                    <$section::$variant as Channel>::limits(&config.$section)
                })*
            }
        }

        /// Every channel's secret keys, as `(section, secret)`.
        pub fn secret_paths() -> Vec<(&'static str, Secret)> {
            let mut out = Vec::new();
            $(
                for secret in <$section::$variant as Channel>::SECRETS {
                    out.push((stringify!($section), *secret));
                }
            )*
            out
        }

        /// Every secret of the settings (tokens, keys, and URLs that embed tokens), to
        /// scrub from any text that could reach a log, an error or the API.
        pub fn secrets(config: &NotificationsConfig) -> Vec<String> {
            let mut out = Vec::new();
            $(section_secrets::<$section::$variant>(&config.$section, &mut out);)*
            out.retain(|s| s.len() >= 4);
            out
        }
    };
}
for_each_channel!(dispatch);

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
