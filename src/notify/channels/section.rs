//! The `[notifications]` section (DESIGN §4): the settings every channel shares and one
//! sub-section per channel, generated from the channel list, with its bounds. It lives
//! with the channels, which read it, so that `config` imports it and not the other way.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::check::{invalid, positive, within, ConfigError};
use crate::config::units;

/// Most steps of `notifications.retry_schedule_s`.
pub const RETRY_STEPS_MAX: usize = 32;
/// Longest step of `notifications.retry_schedule_s` (seven days).
pub const RETRY_STEP_MAX: Duration = Duration::from_secs(7 * 86_400);
/// Upper bound on `notifications.max_attempts`.
pub const NOTIFY_ATTEMPTS_MAX: u32 = 100;
/// Upper bound on `notifications.request_timeout_ms` (two minutes).
pub const NOTIFY_REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(120);
/// `notifications.request_timeout_ms` when the key is missing.
pub const NOTIFY_REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
// The default request timeout is one the bound accepts.
const _: () =
    assert!(NOTIFY_REQUEST_TIMEOUT_DEFAULT.as_nanos() <= NOTIFY_REQUEST_TIMEOUT_MAX.as_nanos());

fn default_true() -> bool {
    true
}

fn default_request_timeout() -> Duration {
    NOTIFY_REQUEST_TIMEOUT_DEFAULT
}

/// The `[notifications]` section; one sub-section per channel, from the channel list
/// ([`crate::domain::delivery::for_each_channel`]).
macro_rules! notifications_config {
    ($($variant:ident = $tag:literal, $section:ident, $config:ident;)*) => {
        #[derive(Debug, Clone, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct NotificationsConfig {
            pub enabled: bool,
            pub order_enabled: bool,
            pub alert_enabled: bool,
            /// `retry_schedule_s`: the waits after each failed attempt; the last one repeats.
            #[serde(rename = "retry_schedule_s", with = "units::seconds_list")]
            pub retry_schedule: Vec<Duration>,
            /// Each wait is its step ± this share of it (`0.0..=1.0`).
            pub jitter_ratio: f64,
            /// Attempts of one delivery before it is dead. A `u32` checked in `validate`
            /// rather than a `NonZeroU32`: the admin settings API answers a 0 with 422
            /// naming the key, which a refusal by the type would turn into a 400.
            pub max_attempts: u32,
            /// `max_age_s`: a delivery whose next attempt would fall this long after its
            /// creation (or redrive) is dead.
            #[serde(rename = "max_age_s", with = "units::seconds")]
            pub max_age: Duration,
            /// Keep each channel under its documented rate limits (`false` only for benchmarks
            /// against a loopback sink).
            #[serde(default = "default_true")]
            pub pacing: bool,
            /// `request_timeout_ms`: deadline of one notification HTTP request.
            #[serde(
                rename = "request_timeout_ms",
                with = "units::millis",
                default = "default_request_timeout"
            )]
            pub request_timeout: Duration,
            /// Whether channel targets may be loopback, private or otherwise special addresses
            /// (DESIGN §3 egress rules); off, they are refused at configuration and connect time.
            #[serde(default)]
            pub allow_private_targets: bool,
            $(
                #[doc = concat!(
                    "`[notifications.", stringify!($section), "]`: [`crate::notify::channels::",
                    stringify!($section), "::", stringify!($config), "`]; a missing section is",
                    " the channel's `Default` (off)."
                )]
                #[serde(default)]
                pub $section: crate::notify::channels::$section::$config,
            )*
        }
    };
}
crate::domain::delivery::for_each_channel!(notifications_config);

impl NotificationsConfig {
    /// Validates the `[notifications]` section; keys are named from `notifications.`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let steps = self.retry_schedule.len();
        if steps == 0 || steps > RETRY_STEPS_MAX {
            return Err(invalid(
                "notifications.retry_schedule_s",
                format!("must hold 1..={RETRY_STEPS_MAX} steps"),
            ));
        }
        if self
            .retry_schedule
            .iter()
            .any(|step| step.is_zero() || *step > RETRY_STEP_MAX)
        {
            let max_s = RETRY_STEP_MAX.as_secs();
            return Err(invalid(
                "notifications.retry_schedule_s",
                format!("each step must be 1..={max_s} seconds"),
            ));
        }
        // Not `within`: a NaN compares false both ways and must be refused too.
        if !(0.0..=1.0).contains(&self.jitter_ratio) {
            return Err(invalid("notifications.jitter_ratio", "must be 0.0..=1.0"));
        }
        within(
            "notifications.max_attempts",
            self.max_attempts,
            1,
            NOTIFY_ATTEMPTS_MAX,
        )?;
        positive("notifications.max_age_s", self.max_age)?;
        let max_ms = NOTIFY_REQUEST_TIMEOUT_MAX.as_millis();
        within(
            "notifications.request_timeout_ms",
            self.request_timeout.as_millis(),
            1,
            max_ms,
        )?;
        crate::notify::channels::validate(self)
    }
}
