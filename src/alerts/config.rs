//! `[alerts]`: when the service raises its own system alerts (DESIGN §3 events with source
//! `system`, issue 17). Validated at load like every section: a threshold of 0 or an absurd
//! value stops start-up with a message naming the key.

use std::num::NonZeroU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::check::ConfigError;
use crate::config::units;

/// Most dead letters the hourly count can be compared with; the count comes from the store's
/// per-status counters, so the bound only keeps the setting meaningful.
pub const DEAD_LETTERS_MAX_LIMIT: u64 = 1_000_000;
/// Longest `provider_failing_s`: a day. Beyond it the alert would come too late to matter.
pub const PROVIDER_FAILING_MAX: Duration = Duration::from_secs(86_400);
/// Longest dedupe window (`window_s`): a week.
pub const WINDOW_MAX: Duration = Duration::from_secs(7 * 86_400);
/// Shortest dedupe window (`window_s`): a minute, so a flapping cause cannot flood the
/// channels.
pub const WINDOW_MIN: Duration = Duration::from_secs(60);
/// Shortest `check_interval_ms`: rarely enough to cost nothing.
pub const CHECK_INTERVAL_MIN: Duration = Duration::from_millis(10);
/// Longest `check_interval_ms`: often enough to notice within a minute.
pub const CHECK_INTERVAL_MAX: Duration = Duration::from_secs(60);

const _: () = assert!(CHECK_INTERVAL_MIN.as_nanos() <= CHECK_INTERVAL_MAX.as_nanos());
const _: () = assert!(WINDOW_MIN.as_nanos() <= WINDOW_MAX.as_nanos());
// Every dedupe window holds at least one check.
const _: () = assert!(CHECK_INTERVAL_MAX.as_nanos() <= WINDOW_MIN.as_nanos());

/// The `[alerts]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// `check_interval_ms`: how often the watcher looks at the provider, the channels, dead
    /// letters and the store.
    #[serde(rename = "check_interval_ms", with = "units::millis")]
    pub check_interval: Duration,
    /// `provider_failing_s`: `system.provider_unavailable` once provider calls have been
    /// failing, with no success between, for longer than this.
    #[serde(rename = "provider_failing_s", with = "units::seconds")]
    pub provider_failing: Duration,
    /// `system.dead_letters` once more than this many deliveries went dead within the last
    /// hour.
    pub dead_letters_max: NonZeroU64,
    /// `window_s`: one alert per cause (the provider, a channel, dead letters, the store) per
    /// this long.
    #[serde(rename = "window_s", with = "units::seconds")]
    pub window: Duration,
}

impl AlertsConfig {
    /// Checks every key's range, in the unit its key names; the error names the key at fault.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let checks: [(&str, u64, u64, u64); 4] = [
            (
                "alerts.check_interval_ms",
                millis(self.check_interval),
                millis(CHECK_INTERVAL_MIN),
                millis(CHECK_INTERVAL_MAX),
            ),
            (
                "alerts.provider_failing_s",
                self.provider_failing.as_secs(),
                1,
                PROVIDER_FAILING_MAX.as_secs(),
            ),
            (
                "alerts.dead_letters_max",
                self.dead_letters_max.get(),
                1,
                DEAD_LETTERS_MAX_LIMIT,
            ),
            (
                "alerts.window_s",
                self.window.as_secs(),
                WINDOW_MIN.as_secs(),
                WINDOW_MAX.as_secs(),
            ),
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
        assert_eq!(config.provider_failing, Duration::from_secs(300));
        assert_eq!(config.dead_letters_max.get(), 10);
        assert_eq!(config.window, Duration::from_secs(3600));
    }

    #[test]
    fn zero_and_absurd_values_name_their_key() {
        type Spoil = fn(&mut AlertsConfig);
        // A dead_letters_max of 0 is refused by its type at load (the key is named there:
        // `config::tests::invalid_value_names_the_key`).
        let cases: [(&str, Spoil); 5] = [
            ("alerts.provider_failing_s", |c| {
                c.provider_failing = Duration::ZERO
            }),
            ("alerts.provider_failing_s", |c| {
                c.provider_failing = Duration::from_secs(u64::MAX)
            }),
            ("alerts.dead_letters_max", |c| {
                c.dead_letters_max = NonZeroU64::new(1 << 40).expect("non-zero")
            }),
            ("alerts.window_s", |c| c.window = Duration::ZERO),
            ("alerts.check_interval_ms", |c| {
                c.check_interval = Duration::ZERO
            }),
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
