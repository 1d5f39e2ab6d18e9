//! What every configuration section's validation shares, kept apart from the whole
//! `Config` so the sections defined beside their code (the channels, the alerts) can use it
//! without importing the configuration that holds them: the error, range checks, the URL
//! check of a notification target, and the list reader of string-list keys.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A configuration that failed to load or validate; `key` is the dotted key path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be parsed into the schema.
    #[error("configuration could not be read: {message}")]
    Parse { message: String },
    /// A value parsed but is out of its allowed range or set.
    #[error("invalid configuration value for `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

/// The error for `key` (dotted path) with `reason`.
pub(crate) fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// `value` longer than zero, else the error for `key` saying `must be positive`.
pub(crate) fn positive(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(invalid(key, "must be positive"));
    }
    Ok(())
}

/// `value` within `min..=max`, else the error for `key` saying `must be {min}..={max}`
/// (numbers in the unit `key` names).
pub(crate) fn within<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(invalid(key, format!("must be {min}..={max}")));
    }
    Ok(())
}

/// Whether `url` is an absolute http(s) URL with something after the scheme.
pub(crate) fn is_http_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://")) && url.len() > "https://".len()
}

/// A notification target URL: empty only when not `required`; else per the egress rules
/// ([`crate::notify::egress::check_url`]).
pub(crate) fn check_url(
    key: &str,
    url: &str,
    required: bool,
    allow_private: bool,
) -> Result<(), ConfigError> {
    if url.is_empty() && !required {
        return Ok(());
    }
    crate::notify::egress::check_url(url, allow_private).map_err(|reason| invalid(key, reason))
}

/// Accepts a list of strings or numbers, or one string split on commas and newlines.
pub(crate) fn string_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Text(String),
        Number(i64),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<Item>),
        One(Item),
    }
    let items = match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::One(item) => vec![item],
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Number(n) => out.push(n.to_string()),
            Item::Text(text) => out.extend(
                text.split([',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
        }
    }
    Ok(out)
}
