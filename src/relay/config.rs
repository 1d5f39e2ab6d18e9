//! `[relay]` (DESIGN §4): where the outbox relay publishes, validated at load.
//!
//! Only `kind` and the names are checked here. The URL is not: an unreachable or wrong
//! `relay.url` must not stop start-up (issue 18, "Bad input"); the relay reports it as
//! the cause of a degraded state in `/readyz` instead.

use serde::{Deserialize, Serialize};

use crate::config::{invalid, ConfigError};

/// The one broker kind there is: NATS JetStream.
pub const KIND_NATS: &str = "nats";

/// The longest stream name accepted. NATS limits a stream name to what fits a subject
/// token; 255 is well inside what any server accepts and longer is a typo.
pub const STREAM_NAME_LEN_MAX: usize = 255;

/// The `[relay]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// `""` = off, `"nats"` = publish the outbox to NATS JetStream.
    pub kind: String,
    /// The NATS server, `nats://host:port` (a bare `host:port` is accepted by the client).
    pub url: String,
    /// The JetStream stream the events go to; created when missing.
    pub stream: String,
    /// Subjects are `{subject_prefix}.{event type}`, e.g. `paykeep.events.payment.succeeded`.
    pub subject_prefix: String,
}

impl RelayConfig {
    /// Whether the relay runs.
    pub fn enabled(&self) -> bool {
        self.kind == KIND_NATS
    }

    /// The stream's subject filter: every subject under the prefix.
    pub fn subjects_filter(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }

    /// Checks `kind`, `stream` and `subject_prefix`.
    ///
    /// Stream names may not hold whitespace, `.`, `*`, `>`, path separators or control
    /// characters; subject tokens may not be empty nor hold whitespace, `*` or `>`
    /// (NATS docs, "Subject-Based Messaging" and "Naming Streams, Consumers, and Accounts").
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `relay.kind`, `relay.stream` or `relay.subject_prefix`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.kind.is_empty() && self.kind != KIND_NATS {
            return Err(invalid("relay.kind", "must be \"\" (off) or \"nats\""));
        }
        let bad_stream_char = |c: char| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        };
        if self.stream.is_empty()
            || self.stream.len() > STREAM_NAME_LEN_MAX
            || self.stream.chars().any(bad_stream_char)
        {
            return Err(invalid(
                "relay.stream",
                format!(
                    "must be 1..={STREAM_NAME_LEN_MAX} characters without whitespace, '.', '*', \
                     '>', '/' or '\\'"
                ),
            ));
        }
        let bad_token = |t: &str| {
            t.is_empty()
                || t.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '>'))
        };
        if self.subject_prefix.split('.').any(bad_token) {
            return Err(invalid(
                "relay.subject_prefix",
                "must be dot-separated non-empty tokens without whitespace, '*' or '>'",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RelayConfig {
        RelayConfig {
            kind: KIND_NATS.to_owned(),
            url: "nats://127.0.0.1:4222".to_owned(),
            stream: "PAYKEEP_EVENTS".to_owned(),
            subject_prefix: "paykeep.events".to_owned(),
        }
    }

    fn key_of(config: &RelayConfig) -> Option<String> {
        match config.validate() {
            Ok(()) => None,
            Err(ConfigError::Invalid { key, .. }) => Some(key),
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn the_defaults_and_off_are_valid() {
        assert_eq!(key_of(&config()), None);
        let off = RelayConfig {
            kind: String::new(),
            ..config()
        };
        assert_eq!(key_of(&off), None);
        assert!(!off.enabled());
        assert_eq!(config().subjects_filter(), "paykeep.events.>");
    }

    #[test]
    fn bad_values_name_their_key() {
        let kafka = RelayConfig {
            kind: "kafka".to_owned(),
            ..config()
        };
        assert_eq!(key_of(&kafka).as_deref(), Some("relay.kind"));
        for stream in ["", "A.B", "A B", "A*", "A>", "a/b"] {
            let c = RelayConfig {
                stream: stream.to_owned(),
                ..config()
            };
            assert_eq!(key_of(&c).as_deref(), Some("relay.stream"), "{stream:?}");
        }
        for prefix in ["", "a..b", "a.", "a.*", "a.>", "a b"] {
            let c = RelayConfig {
                subject_prefix: prefix.to_owned(),
                ..config()
            };
            assert_eq!(
                key_of(&c).as_deref(),
                Some("relay.subject_prefix"),
                "{prefix:?}"
            );
        }
    }

    #[test]
    fn the_url_is_not_checked_at_load() {
        let c = RelayConfig {
            url: "definitely not a url".to_owned(),
            ..config()
        };
        assert_eq!(key_of(&c), None);
    }
}
