//! Timestamps: Unix milliseconds inside, RFC 3339 UTC with millisecond precision outside.

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

/// The wall clock in Unix milliseconds: what [`crate::clock::SystemClock`] reads. Components
/// read time through the [`crate::clock::Clock`] they are handed, not from here.
pub fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(now).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(1_763_721_120_123),
            "2025-11-21T10:32:00.123Z"
        );
    }
}
