//! `[alerts]`: when the service raises its own system alerts (DESIGN §3 events with source
//! `system`, issue 17). Validated at load like every section: a threshold of 0 or an absurd
//! value stops start-up with a message naming the key.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Most dead letters the hourly count can be compared with; the count comes from the store's
/// per-status counters, so the bound only keeps the setting meaningful.
pub const DEAD_LETTERS_MAX_LIMIT: u64 = 1_000_000;
/// Longest `provider_failing_s`: a day. Beyond it the alert would come too late to matter.
pub const PROVIDER_FAILING_S_MAX: u64 = 86_400;
/// Longest dedupe window: a week.
pub const WINDOW_S_MAX: u64 = 604_800;
/// Shortest dedupe window: a minute, so a flapping cause cannot flood the channels.
pub const WINDOW_S_MIN: u64 = 60;
/// Check interval bounds, in ms: often enough to notice within a minute, rarely enough to
/// cost nothing.
pub const CHECK_INTERVAL_MS_MIN: u64 = 10;
pub const CHECK_INTERVAL_MS_MAX: u64 = 60_000;

/// The `[alerts]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// How often the watcher looks at the provider, the channels, dead letters and the store,
    /// in ms.
    pub check_interval_ms: u64,
    /// `system.provider_unavailable` once provider calls have been failing, with no success
    /// between, for longer than this many seconds.
    pub provider_failing_s: u64,
    /// `system.dead_letters` once more than this many deliveries went dead within the last
    /// hour.
    pub dead_letters_max: u64,
    /// One alert per cause (the provider, a channel, dead letters, the store) per this many
    /// seconds.
    pub window_s: u64,
}

impl AlertsConfig {
    /// Checks every key's range; the error names the key at fault.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(&str, u64, u64, u64); 4] = [
            (
                "alerts.check_interval_ms",
                self.check_interval_ms,
                CHECK_INTERVAL_MS_MIN,
                CHECK_INTERVAL_MS_MAX,
            ),
            (
                "alerts.provider_failing_s",
                self.provider_failing_s,
                1,
                PROVIDER_FAILING_S_MAX,
            ),
            (
                "alerts.dead_letters_max",
                self.dead_letters_max,
                1,
                DEAD_LETTERS_MAX_LIMIT,
            ),
            ("alerts.window_s", self.window_s, WINDOW_S_MIN, WINDOW_S_MAX),
        ];
        for (key, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::Invalid {
                    key: key.to_owned(),
                    reason: format!("must be {min}..={max}, got {value}"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> AlertsConfig {
        crate::config::Config::embedded()
            .expect("embedded config")
            .alerts
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let config = defaults();
        config.validate().expect("valid");
        assert_eq!(config.provider_failing_s, 300);
        assert_eq!(config.dead_letters_max, 10);
        assert_eq!(config.window_s, 3600);
    }

    #[test]
    fn zero_and_absurd_values_name_their_key() {
        type Spoil = fn(&mut AlertsConfig);
        let cases: [(&str, Spoil); 6] = [
            ("alerts.provider_failing_s", |c| c.provider_failing_s = 0),
            ("alerts.provider_failing_s", |c| {
                c.provider_failing_s = u64::MAX
            }),
            ("alerts.dead_letters_max", |c| c.dead_letters_max = 0),
            ("alerts.dead_letters_max", |c| c.dead_letters_max = 1 << 40),
            ("alerts.window_s", |c| c.window_s = 0),
            ("alerts.check_interval_ms", |c| c.check_interval_ms = 0),
        ];
        for (key, spoil) in cases {
            let mut config = defaults();
            spoil(&mut config);
            match config.validate() {
                Err(ConfigError::Invalid { key: named, .. }) => assert_eq!(named, key),
                other => panic!("{key}: expected Invalid, got {other:?}"),
            }
        }
    }
}
