//! The retention sweep: removes entries of `Idempotency-Key` header keys older than
//! `idempotency.retention_s`, through the committer like every other write. Order keys are
//! never swept (an order stays unique forever). It finds them through the expiry index
//! ([`super::expiry`]), and drops each expiry batch it has gone through.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::time::now_ms;
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::store::committer::CommitterHandle;
use crate::store::{Store, StoreError};

/// Expired listings per write set (whole expiry batches, so a write set may hold a batch
/// more); a pass repeats until none are left.
pub const SWEEP_BATCH_MAX: usize = 512;
/// Longest time between sweep passes (shorter when the retention itself is shorter).
pub const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(60);

/// Removes every header-key entry created before `now - retention`. Returns how many
/// listings of expired entries it went through: an entry written in flight and then
/// finished by two group commits is listed twice, and removed once.
///
/// # Errors
/// The first [`StoreError`] met.
pub async fn sweep_once(
    store: &Store,
    committer: &CommitterHandle,
    retention: Duration,
) -> Result<usize, StoreError> {
    let cutoff_ms = super::retention::cutoff(now_ms(), retention);
    let mut listed = 0;
    loop {
        let expired = store.expired_idempotency_keys(cutoff_ms, SWEEP_BATCH_MAX)?;
        if expired.is_empty() {
            return Ok(listed);
        }
        let count = expired.entries.len();
        let entries = expired
            .entries
            .into_iter()
            .map(|(key, created_at_ms)| WriteOp::RemoveIdempotency { key, created_at_ms });
        let batches = (expired.batches.into_iter()).map(|id| WriteOp::RemoveExpiryBatch { id });
        let ops = entries.chain(batches).collect();
        committer.commit(WriteSet { ops }).await?;
        listed += count;
    }
}

/// Runs [`sweep_once`] every `min(retention, SWEEP_INTERVAL_MAX)` until the task is dropped.
pub async fn run(store: Arc<Store>, committer: CommitterHandle, retention: Duration) {
    let mut interval = tokio::time::interval(retention.min(SWEEP_INTERVAL_MAX));
    loop {
        interval.tick().await;
        match sweep_once(&store, &committer, retention).await {
            Ok(0) => {}
            Ok(listed) => {
                tracing::info!(operation = "sweep", listed, "idempotency entries swept")
            }
            Err(error) => tracing::warn!(operation = "sweep", %error, "idempotency sweep failed"),
        }
    }
}
