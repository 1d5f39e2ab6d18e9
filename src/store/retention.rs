//! The `[retention]` sweep (DESIGN §4): outbox events older than `retention.events_days`,
//! with their deliveries once every one of them is finished (`delivered` or `dead`), and
//! provider webhook event ids older than `retention.webhook_event_ids_days`, removed in
//! bounded write sets through the committer like every other write.
//!
//! Nothing else is swept: payments, refunds, orders (and their order-key idempotency
//! entries), reconciliation reports and discrepancies are kept; header-key idempotency
//! entries have their own sweep ([`super::sweep`]).
//!
//! Events are read in sequence order (commit order, so oldest first) and a pass stops at
//! the first one still inside the retention. An old event with a delivery still in flight
//! (pending, retrying, paused) is kept and stepped over; the cursor lives in memory, so a
//! restart looks at it again. Webhook ids are keyed by the provider's id, not by time, so
//! their sweep walks the tree [`WEBHOOK_SCAN_MAX`] ids per pass and wraps around.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, SharedClock};
use crate::domain::delivery::DeliveryStatus;
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::store::committer::CommitterHandle;
use crate::store::{Store, StoreError};

/// Events examined per write set; a pass repeats until it reaches a young event.
pub const EVENTS_PER_BATCH_MAX: usize = 256;
/// Webhook ids examined per pass (the tree is walked a slice at a time).
pub const WEBHOOK_SCAN_MAX: usize = 4096;
/// Removals per write set, so a sweep never makes a group commit large.
pub const REMOVALS_PER_WRITE_SET_MAX: usize = 1024;
/// Time between sweep passes.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// How long each kind of record is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub events: Duration,
    pub webhook_event_ids: Duration,
}

/// Where the next pass resumes.
#[derive(Debug, Default)]
pub struct Cursor {
    /// The last event sequence examined.
    events_after_seq: u64,
    /// The last webhook id examined (empty: from the start).
    webhooks_after: Vec<u8>,
}

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub events: usize,
    pub deliveries: usize,
    pub webhook_ids: usize,
}

/// One pass of both sweeps at `now_ms`.
///
/// # Errors
/// The first [`StoreError`] met; what was committed before it stays removed.
pub async fn sweep_once(
    store: &Store,
    committer: &CommitterHandle,
    retention: Retention,
    cursor: &mut Cursor,
    now_ms: i64,
) -> Result<Swept, StoreError> {
    let mut swept = Swept::default();
    sweep_events(
        store,
        committer,
        cutoff(now_ms, retention.events),
        cursor,
        &mut swept,
    )
    .await?;
    let webhooks_cutoff = cutoff(now_ms, retention.webhook_event_ids);
    sweep_webhook_ids(store, committer, webhooks_cutoff, cursor, &mut swept).await?;
    Ok(swept)
}

/// The time before which a record kept for `keep` has aged out.
pub(crate) fn cutoff(now_ms: i64, keep: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
}

async fn sweep_events(
    store: &Store,
    committer: &CommitterHandle,
    cutoff_ms: i64,
    cursor: &mut Cursor,
    swept: &mut Swept,
) -> Result<(), StoreError> {
    loop {
        let page = store.events_after(cursor.events_after_seq, EVENTS_PER_BATCH_MAX)?;
        let full = page.len() == EVENTS_PER_BATCH_MAX;
        let mut ops = Vec::new();
        let mut young = false;
        for (seq, event) in page {
            if event.created_at_ms >= cutoff_ms {
                young = true;
                break;
            }
            cursor.events_after_seq = seq;
            let deliveries = store.deliveries_of_event(&event.id)?;
            let finished =
                |s: DeliveryStatus| matches!(s, DeliveryStatus::Delivered | DeliveryStatus::Dead);
            if !deliveries.iter().all(|d| finished(d.status)) {
                continue;
            }
            swept.deliveries += deliveries.len();
            swept.events += 1;
            ops.extend(
                deliveries
                    .into_iter()
                    .map(|d| WriteOp::RemoveDelivery { id: d.id }),
            );
            ops.push(WriteOp::RemoveEvent {
                seq,
                id: event.id,
                dedupe_key: event.dedupe_key,
            });
        }
        commit_in_chunks(committer, ops).await?;
        if young || !full {
            return Ok(());
        }
    }
}

async fn sweep_webhook_ids(
    store: &Store,
    committer: &CommitterHandle,
    cutoff_ms: i64,
    cursor: &mut Cursor,
    swept: &mut Swept,
) -> Result<(), StoreError> {
    let page = store.webhook_events_after(&cursor.webhooks_after, WEBHOOK_SCAN_MAX)?;
    cursor.webhooks_after = match page.last() {
        Some((key, _)) if page.len() == WEBHOOK_SCAN_MAX => key.clone(),
        // The end of the tree: the next pass starts over.
        _ => Vec::new(),
    };
    let ops: Vec<WriteOp> = page
        .into_iter()
        .filter(|(_, w)| w.received_at_ms < cutoff_ms)
        .map(|(_, w)| WriteOp::RemoveWebhookEvent { id: w.id })
        .collect();
    swept.webhook_ids += ops.len();
    commit_in_chunks(committer, ops).await
}

async fn commit_in_chunks(
    committer: &CommitterHandle,
    mut ops: Vec<WriteOp>,
) -> Result<(), StoreError> {
    while !ops.is_empty() {
        let rest = ops.split_off(ops.len().min(REMOVALS_PER_WRITE_SET_MAX));
        committer.commit(WriteSet { ops }).await?;
        ops = rest;
    }
    Ok(())
}

/// Runs [`sweep_once`] at once and then every [`RETENTION_INTERVAL`] on `clock`, until the
/// task is dropped.
pub async fn run(
    store: Arc<Store>,
    committer: CommitterHandle,
    retention: Retention,
    clock: SharedClock,
) {
    let mut cursor = Cursor::default();
    loop {
        let now_ms = clock.now_ms();
        match sweep_once(&store, &committer, retention, &mut cursor, now_ms).await {
            Ok(swept) if swept == Swept::default() => {}
            Ok(swept) => tracing::info!(
                operation = "retention",
                events = swept.events,
                deliveries = swept.deliveries,
                webhook_ids = swept.webhook_ids,
                "aged records swept"
            ),
            Err(error) => tracing::warn!(operation = "retention", %error, "retention sweep failed"),
        }
        clock::sleep(clock.as_ref(), RETENTION_INTERVAL).await;
    }
}
