//! The optional daily run (`reconciliation.daily_at = "HH:MM"`, UTC): at that minute each
//! day, reconcile the previous UTC day (T+1) against the provider. A run missed while the
//! process was down is not made up; run it with `POST /admin/reconciliations`.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, SharedClock};
use crate::domain::time::DAY_MS;
use crate::provider::Connector;
use crate::recon::run::Recon;
use crate::store::committer::CommitterHandle;
use crate::store::Store;

/// Milliseconds from `now_ms` to the next `minute_of_day` (UTC), in `(0, DAY_MS]`.
pub fn until_next_ms(now_ms: i64, minute_of_day: u32) -> i64 {
    let target_ms = i64::from(minute_of_day) * 60_000;
    let into_day_ms = now_ms.rem_euclid(DAY_MS);
    let wait = (target_ms - into_day_ms).rem_euclid(DAY_MS);
    if wait == 0 {
        DAY_MS
    } else {
        wait
    }
}

/// The UTC date before the one holding `now_ms`.
pub fn yesterday(now_ms: i64) -> Option<time::Date> {
    let now = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)).ok()?;
    now.date().previous_day()
}

/// Runs forever (until the task is aborted): one reconciliation a day at `minute_of_day`
/// on `clock`.
pub async fn run_daily(
    minute_of_day: u32,
    store: Arc<Store>,
    committer: CommitterHandle,
    connector: Arc<dyn Connector>,
    clock: SharedClock,
) {
    loop {
        let wait_ms = until_next_ms(clock.now_ms(), minute_of_day);
        clock::sleep(
            clock.as_ref(),
            Duration::from_millis(wait_ms.unsigned_abs()),
        )
        .await;
        let Some(date) = yesterday(clock.now_ms()) else {
            continue;
        };
        let recon = Recon {
            store: &store,
            committer: &committer,
            connector: connector.as_ref(),
            clock: clock.as_ref(),
        };
        match recon.run(date, None).await {
            Ok((report, discrepancies)) => tracing::info!(
                operation = "reconciliation",
                reconciliation_id = %report.id,
                date = %report.date,
                discrepancies = discrepancies.len(),
                "daily reconciliation done"
            ),
            Err(error) => tracing::error!(
                operation = "reconciliation",
                %date,
                %error,
                "daily reconciliation failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_run_is_later_today_or_tomorrow() {
        let two_am = 120;
        assert_eq!(until_next_ms(0, two_am), 2 * 3_600_000);
        assert_eq!(until_next_ms(3 * 3_600_000, two_am), 23 * 3_600_000);
        assert_eq!(until_next_ms(2 * 3_600_000, two_am), DAY_MS);
        assert_eq!(yesterday(DAY_MS + 5).unwrap().to_string(), "1970-01-01");
    }
}
