//! Notification settings that change at run time: the `[notifications]` section of the
//! configuration, with the admin API's changes layered over it and persisted in the store
//! (`settings` tree, key `notifications`), plus which channels are paused.
//!
//! Layering: the file/environment section is the base; each `PUT` is a JSON subset of the
//! section, merged over the base and kept as one cumulative patch. A restart applies the
//! stored patch over the (possibly changed) file, so keys never changed at run time keep
//! following the file. A secret shown redacted (`"********"`, or a URL ending in it) and
//! sent back unchanged means "keep the current value".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Map, Value};

use crate::config::{ConfigError, NotificationsConfig};
use crate::domain::delivery::Channel;

/// Key of the persisted patch in the `settings` tree.
pub const SETTINGS_KEY: &str = "notifications";
/// What a secret looks like in the settings API.
pub const REDACTED: &str = "********";

/// Why a settings change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Not a JSON object of the section's keys and types (unknown key, wrong type).
    #[error("{detail}")]
    Malformed { detail: String },
    /// A value out of its range; `key` is the dotted path.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

/// A validated change, ready to persist and then [`Settings::install`].
#[derive(Debug, Clone)]
pub struct Change {
    pub config: NotificationsConfig,
    /// The new cumulative patch (JSON text) to persist.
    pub patch_json: String,
    patch: Value,
    /// Channels whose section the body named (a paused one resumes).
    pub touched: Vec<Channel>,
}

/// The live settings.
pub struct Settings {
    base: NotificationsConfig,
    current: RwLock<Arc<NotificationsConfig>>,
    patch: Mutex<Value>,
    paused: [AtomicBool; Channel::COUNT],
}

impl Settings {
    /// `base` with the persisted patch `stored` (if any) applied. A stored patch that no
    /// longer fits (the file changed under it) is dropped with a warning.
    pub fn load(base: NotificationsConfig, stored: Option<&str>) -> Settings {
        set_log_secrets(&base);
        let settings = Settings {
            current: RwLock::new(Arc::new(base.clone())),
            base,
            patch: Mutex::new(Value::Object(Map::new())),
            paused: Default::default(),
        };
        if let Some(stored) = stored {
            let applied = serde_json::from_str::<Value>(stored)
                .map_err(|e| SettingsError::Malformed {
                    detail: e.to_string(),
                })
                .and_then(|patch| settings.prepare_from(&Value::Object(Map::new()), patch));
            match applied {
                Ok(change) => settings.install(change),
                Err(error) => tracing::warn!(
                    operation = "settings.load",
                    %error,
                    "stored notification settings no longer apply; using the file's"
                ),
            }
        }
        settings
    }

    /// The settings in force now.
    pub fn current(&self) -> Arc<NotificationsConfig> {
        match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Validates `body` (a JSON subset of the section) against the current settings.
    ///
    /// # Errors
    /// [`SettingsError`] naming the key at fault; nothing changes.
    pub fn prepare(&self, body: &Value) -> Result<Change, SettingsError> {
        let Some(object) = body.as_object() else {
            return Err(SettingsError::Malformed {
                detail: "the body must be a JSON object".to_owned(),
            });
        };
        let body = strip_redacted(&Value::Object(object.clone()));
        let old_patch = self.patch.lock().map(|p| p.clone()).unwrap_or_default();
        let mut change = self.prepare_from(&old_patch, body.clone())?;
        change.touched = Channel::ALL
            .into_iter()
            .filter(|c| object.contains_key(c.as_str()))
            .collect();
        Ok(change)
    }

    /// `base ⊕ old_patch ⊕ body`, parsed and validated.
    fn prepare_from(&self, old_patch: &Value, body: Value) -> Result<Change, SettingsError> {
        let mut patch = old_patch.clone();
        merge(&mut patch, &body);
        let mut effective = serde_json::to_value(&self.base).map_err(malformed)?;
        merge(&mut effective, &patch);
        let config: NotificationsConfig =
            serde_path_to_error::deserialize(effective).map_err(|e| {
                let path = e.path().to_string();
                SettingsError::Malformed {
                    detail: format!("{path}: {}", e.into_inner()),
                }
            })?;
        config.validate().map_err(|e| match e {
            ConfigError::Invalid { key, reason } => SettingsError::Invalid {
                key: key
                    .strip_prefix("notifications.")
                    .unwrap_or(&key)
                    .to_owned(),
                reason,
            },
            ConfigError::Parse { message } => SettingsError::Malformed { detail: message },
        })?;
        Ok(Change {
            config,
            patch_json: patch.to_string(),
            patch,
            touched: Vec::new(),
        })
    }

    /// Puts a prepared (and persisted) change in force, resuming the channels it touched.
    pub fn install(&self, change: Change) {
        if let Ok(mut patch) = self.patch.lock() {
            *patch = change.patch;
        }
        set_log_secrets(&change.config);
        let config = Arc::new(change.config);
        match self.current.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        for channel in change.touched {
            self.resume(channel);
        }
    }

    /// The settings as the API shows them: secrets redacted, paused channels listed.
    pub fn redacted_json(&self) -> Value {
        let mut value = serde_json::to_value(&*self.current()).unwrap_or(Value::Null);
        // Secrets of the section, by path (each channel's `SECRETS`): plain secrets are
        // replaced whole, URLs keep their origin (scheme, host, port) so an operator can
        // tell which endpoint is set.
        for (section, secret) in crate::notify::channels::secret_paths() {
            if let Some(Value::String(text)) =
                value.get_mut(section).and_then(|s| s.get_mut(secret.key))
            {
                *text = redact(text, secret.is_url);
            }
        }
        let paused: Vec<&str> = Channel::ALL
            .into_iter()
            .filter(|c| self.is_paused(*c))
            .map(Channel::as_str)
            .collect();
        serde_json::json!({"settings": value, "paused_channels": paused})
    }

    pub fn is_paused(&self, channel: Channel) -> bool {
        self.paused[channel.index()].load(Ordering::Acquire)
    }

    /// Pauses `channel`; true if it was running.
    pub fn pause(&self, channel: Channel) -> bool {
        !self.paused[channel.index()].swap(true, Ordering::AcqRel)
    }

    pub fn resume(&self, channel: Channel) {
        self.paused[channel.index()].store(false, Ordering::Release);
    }
}

fn malformed(e: serde_json::Error) -> SettingsError {
    SettingsError::Malformed {
        detail: e.to_string(),
    }
}

/// Merges `patch` into `target`: objects key by key, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// `body` without the string values that are redaction placeholders.
fn strip_redacted(body: &Value) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !matches!(v, Value::String(s) if s.ends_with(REDACTED)))
                .map(|(k, v)| (k.clone(), strip_redacted(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `""` stays empty; a secret becomes [`REDACTED`]; a URL keeps its origin.
pub fn redact(secret: &str, is_url: bool) -> String {
    if secret.is_empty() {
        return String::new();
    }
    if is_url {
        if let Some((scheme, rest)) = secret.split_once("://") {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            return format!("{scheme}://{host}/{REDACTED}");
        }
    }
    REDACTED.to_owned()
}

/// Keeps the log writer's channel secrets in step with the settings in force.
fn set_log_secrets(config: &NotificationsConfig) {
    let secrets = crate::notify::channels::secrets(config);
    crate::redact::set_channel_log_secrets(secrets.iter().map(String::as_str));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn settings() -> Settings {
        Settings::load(Config::embedded().unwrap().notifications, None)
    }

    #[test]
    fn a_subset_changes_only_its_keys_and_validates() {
        let s = settings();
        let change = s
            .prepare(&json!({"telegram": {"enabled": true, "bot_token": "1:x", "chat_ids": "5,6"}}))
            .unwrap();
        assert_eq!(change.touched, vec![Channel::Telegram]);
        s.install(change);
        let c = s.current();
        assert!(c.telegram.enabled && c.order_enabled);
        assert_eq!(c.telegram.chat_ids, vec!["5", "6"]);
        let err = s.prepare(&json!({"jitter_ratio": 3.0})).unwrap_err();
        assert!(matches!(err, SettingsError::Invalid { key, .. } if key == "jitter_ratio"));
        let err = s.prepare(&json!({"telegram": {"nope": 1}})).unwrap_err();
        assert!(matches!(err, SettingsError::Malformed { detail } if detail.contains("nope")));
    }

    #[test]
    fn secrets_are_redacted_and_placeholders_keep_them() {
        let s = settings();
        let change = s
            .prepare(&json!({"slack": {"enabled": true, "webhook_url": "https://hooks.slack.com/services/T/B/SECRET"}}))
            .unwrap();
        s.install(change);
        let shown = s.redacted_json();
        let url = shown["settings"]["slack"]["webhook_url"].as_str().unwrap();
        assert_eq!(url, "https://hooks.slack.com/********");
        assert!(!shown.to_string().contains("SECRET"));
        // Sending the redacted view back changes nothing.
        let change = s.prepare(&shown["settings"]).unwrap();
        s.install(change);
        assert!(s.current().slack.webhook_url.ends_with("/SECRET"));
    }

    #[test]
    fn the_stored_patch_is_reapplied_over_the_base() {
        let s = settings();
        let change = s.prepare(&json!({"max_attempts": 3})).unwrap();
        let stored = change.patch_json.clone();
        s.install(change);
        let again = Settings::load(Config::embedded().unwrap().notifications, Some(&stored));
        assert_eq!(again.current().max_attempts, 3);
        let broken = Settings::load(Config::embedded().unwrap().notifications, Some("{\"x\":1}"));
        assert_eq!(broken.current().max_attempts, 12);
    }

    #[test]
    fn pausing_is_per_channel() {
        let s = settings();
        assert!(s.pause(Channel::Slack));
        assert!(!s.pause(Channel::Slack));
        assert!(s.is_paused(Channel::Slack) && !s.is_paused(Channel::Email));
        s.resume(Channel::Slack);
        assert!(!s.is_paused(Channel::Slack));
    }
}
