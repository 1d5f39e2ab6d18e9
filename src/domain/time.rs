//! Timestamps: Unix milliseconds inside, RFC 3339 UTC with millisecond precision outside.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::macros::format_description;
use time::OffsetDateTime;

/// Milliseconds per day, for windows counted in days.
pub const DAY_MS: i64 = 86_400_000;

/// Formats Unix milliseconds as RFC 3339 UTC: `2026-11-21T10:32:00.123Z`.
pub fn format_rfc3339_ms(unix_ms: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// The wall clock in Unix milliseconds (callers pass it into the pure state machines).
pub fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(now).unwrap_or(i64::MAX)
}

/// Where time comes from, handed to what reads it: [`SystemClock`] in the service,
/// [`ManualClock`] in tests, which move it instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The time in Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The wall clock ([`now_ms`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    /// A clock reading `start_ms` (Unix milliseconds).
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock {
            ms: AtomicI64::new(start_ms),
        }
    }

    /// Moves the clock forward by `by` (whole milliseconds; saturating).
    pub fn advance(&self, by: Duration) {
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |ms| {
                Some(ms.saturating_add(by_ms))
            });
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_ms(), 3_000);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now_ms(), i64::MAX);
        let wall: &dyn Clock = &SystemClock;
        assert!(wall.now_ms() > 1_700_000_000_000);
    }

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(1_763_721_120_123),
            "2025-11-21T10:32:00.123Z"
        );
    }
}
