//! The retention sweep: removes entries of `Idempotency-Key` header keys older than
//! `idempotency.retention_s`, through the committer like every other write. Order keys are
//! never swept (an order stays unique forever). It finds them through the journal
//! ([`super::journal`]): each record lists the header-key entries its group finished, and
//! the sweep empties that list once it has gone through it. Where it stopped is kept in
//! memory, so a restart reads the journal from its start once.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, SharedClock};
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::store::committer::CommitterHandle;
use crate::store::{Store, StoreError};

/// Expired listings per write set (whole journal records, so a write set may hold a record
/// more); a pass repeats until none are left.
pub const SWEEP_BATCH_MAX: usize = 512;
/// Longest time between sweep passes (shorter when the retention itself is shorter).
pub const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(60);

/// Removes every header-key entry created before `now_ms - retention`. Returns how many
/// listings of expired entries it went through: an entry written in flight and then
/// finished by two group commits is listed twice, and removed once.
///
/// # Errors
/// The first [`StoreError`] met.
pub async fn sweep_once(
    store: &Store,
    committer: &CommitterHandle,
    retention: Duration,
    after: &mut Vec<u8>,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let cutoff_ms = super::retention::cutoff(now_ms, retention);
    let mut listed = 0;
    loop {
        let expired = store.expired_idempotency_keys(after, cutoff_ms, SWEEP_BATCH_MAX)?;
        if let Some(resume) = &expired.resume_after {
            after.clone_from(resume);
        }
        if expired.is_empty() {
            return Ok(listed);
        }
        let count = expired.entries.len();
        let entries = expired
            .entries
            .into_iter()
            .map(|(key, created_at_ms)| WriteOp::RemoveIdempotency { key, created_at_ms });
        let records =
            (expired.records.into_iter()).map(|record| WriteOp::RemoveExpiring { record });
        let ops = entries.chain(records).collect();
        committer.commit(WriteSet { ops }).await?;
        listed += count;
    }
}

/// Runs [`sweep_once`] at once and then every `min(retention, SWEEP_INTERVAL_MAX)` on
/// `clock`, until the task is dropped.
pub async fn run(
    store: Arc<Store>,
    committer: CommitterHandle,
    retention: Duration,
    clock: SharedClock,
) {
    let period = retention.min(SWEEP_INTERVAL_MAX);
    let mut after = Vec::new();
    loop {
        let now_ms = clock.now_ms();
        match sweep_once(&store, &committer, retention, &mut after, now_ms).await {
            Ok(0) => {}
            Ok(listed) => {
                tracing::info!(operation = "sweep", listed, "idempotency entries swept")
            }
            Err(error) => tracing::warn!(operation = "sweep", %error, "idempotency sweep failed"),
        }
        clock::sleep(clock.as_ref(), period).await;
    }
}
