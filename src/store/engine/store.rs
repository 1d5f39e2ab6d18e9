//! The open store: its handle, the group commit (log, sync, memtables, applier) and the
//! orderly stop. Reads live with their tables ([`crate::store::tables`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::store::engine::open::{LossReport, OpenOptions};
use crate::store::engine::{applier, checkpoint, codec, key_filter, wal};
use crate::store::tables::journal::JournalClock;
use crate::store::tables::{deliveries, replay_cache, PreparedWriteSet, Trees};
use crate::store::StoreError;

/// How a batch is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every log record `fdatasync`ed before its group is acknowledged, and sled's files
    /// at each checkpoint: survives power loss (the default).
    FlushAndSync,
    /// Log records written to the page cache only: survives kill -9, not power loss
    /// (benchmarks compare the two).
    FlushOnly,
}

/// The open store. Reads are safe from any thread; writes go through the committer.
pub struct Store {
    pub(crate) trees: Arc<Trees>,
    /// The log the committer appends to (only the committer locks it).
    pub(crate) wal: Mutex<wal::Wal>,
    /// Durable groups for the applier; taken when the store is dropped.
    pub(crate) applier: Option<crossbeam_channel::Sender<applier::Logged>>,
    pub(crate) applier_thread: Option<JoinHandle<()>>,
    /// Segments for the checkpoint thread to retire (the last checkpoint, at drop; the
    /// applier sends the others); taken when the store is dropped.
    pub(crate) checkpoints: Option<crossbeam_channel::Sender<checkpoint::Retire>>,
    pub(crate) checkpoint_thread: Option<JoinHandle<()>>,
    pub(crate) durability: Durability,
    /// Where the journal stands (the committer is the only writer).
    pub(crate) journal_clock: Mutex<JournalClock>,
    /// What dates the journal's records ([`OpenOptions::clock`]).
    pub(crate) clock: crate::clock::SharedClock,
    /// Epoch of the last group committed; the memtables tag staged writes with it.
    pub(crate) last_epoch: AtomicU64,
    pub(crate) failed: Arc<AtomicBool>,
    /// Delivery counts and the fan-out hook ([`deliveries`]).
    pub(crate) deliveries_index: deliveries::DeliveryIndex,
    /// Finished idempotency entries of recent commits ([`replay_cache`]).
    pub(crate) replay_cache: replay_cache::ReplayCache,
    /// What `accept_data_loss` let go at open, if anything.
    pub(crate) loss: Option<LossReport>,
    /// `store_sled_writes_total{tree}`: sled inserts and removes the applier made.
    pub(crate) sled_writes: prometheus::IntCounterVec,
    /// Bytes of logged groups not yet in sled ([`applier::Backlog`]).
    pub(crate) backlog: Arc<applier::Backlog>,
    /// The thread filling the key filters after open ([`key_filter`]); stopped at drop.
    pub(crate) key_filter_build: Option<key_filter::Build>,
}

impl Store {
    /// Opens (or creates) the store in `dir` with the default options
    /// ([`Store::open_with`]).
    ///
    /// # Errors
    /// As [`Store::open_with`].
    pub fn open(dir: &Path, durability: Durability) -> Result<Store, StoreError> {
        Store::open_with(dir, OpenOptions::new(durability))
    }

    /// What starting on a damaged store with `accept_data_loss` lost, if it did.
    pub fn recovery_loss(&self) -> Option<&LossReport> {
        self.loss.as_ref()
    }

    /// `store_sled_writes_total{tree}`: every sled insert or remove the applier made, per
    /// tree (recovery's replay not counted), present at 0 for each tree from the start.
    /// The caller registers it with its registry.
    pub fn sled_writes_metric(&self) -> &prometheus::IntCounterVec {
        &self.sled_writes
    }

    /// Whether a store failure has made the store refuse writes.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Logs a group of write sets as one write-ahead log record, syncs it, stages it in the
    /// trees' memtables, and hands it to the applier, which puts it in sled and passes a
    /// sealed log segment on to the checkpoint thread.
    /// Returns the number of outbox events written (duplicates by `dedupe_key` dropped).
    /// Called only by the committer thread.
    ///
    /// # Errors
    /// [`StoreError`]; after any failure the store refuses further writes
    /// ([`StoreError::Failed`]), since what reached the disk is then unknown.
    pub(crate) fn commit_group(
        &self,
        write_sets: &[&PreparedWriteSet],
    ) -> Result<usize, StoreError> {
        if self.is_failed() {
            return Err(StoreError::Failed);
        }
        let result = self.commit_group_inner(write_sets);
        if result.is_err() {
            self.failed.store(true, Ordering::Release);
        }
        result
    }

    fn commit_group_inner(&self, write_sets: &[&PreparedWriteSet]) -> Result<usize, StoreError> {
        // Only the committer thread locks the log, so its next LSN is this group's.
        let mut wal = self.wal.lock().map_err(|_| StoreError::Failed)?;
        let (batches, events, deliveries) = self.batches_for(write_sets, wal.position().1 + 1)?;
        let epoch = self.last_epoch.load(Ordering::Acquire) + 1;
        self.last_epoch.store(epoch, Ordering::Release);
        let record = batches.into_record();
        let encoded = codec::encode_plain(&record)?;
        // Waits while the applier holds APPLY_QUEUE_BYTES_MAX of groups (back-pressure): the
        // memtables hold exactly those groups' writes.
        self.backlog.admit(encoded.len());
        let appended = wal.append(&encoded, self.durability == Durability::FlushAndSync)?;
        drop(wal);
        // Durable from here on: readers may see it (from the memtables until the applier has
        // put it in sled), and recovery would apply the record if sled lost any of it.
        for (name, batch) in &record.trees {
            self.trees.by_name(name)?.stage(epoch, &batch.ops);
        }
        self.deliveries_index.committed(deliveries);
        self.cache_replays(write_sets.iter().map(|p| p.write_set()));
        let logged = applier::Logged {
            epoch,
            lsn: appended.lsn,
            logged_at: std::time::Instant::now(),
            record: Arc::new(record),
            sealed: appended.sealed,
            bytes: encoded.len(),
        };
        // Waits while the applier is APPLY_QUEUE_MAX groups behind (back-pressure).
        if let Some(applier) = &self.applier {
            applier.send(logged).map_err(|_| StoreError::Closed)?;
        }
        Ok(events)
    }
}

impl Drop for Store {
    /// Lets the applier finish (no commit can run now: this is the last reference), then a
    /// last checkpoint through every record logged, retiring every segment but the current
    /// one, then stops the checkpoint thread and waits for it. sled's writes are then
    /// finished, so the directory can be opened again, and a clean stop leaves only the
    /// current segment, whose records recovery applies again (harmlessly) at the next open.
    fn drop(&mut self) {
        drop(self.key_filter_build.take());
        drop(self.applier.take());
        if let Some(thread) = self.applier_thread.take() {
            let _ = thread.join();
        }
        if let Some(checkpoints) = self.checkpoints.take() {
            if let Ok(wal) = self.wal.lock() {
                let (segment, lsn) = wal.position();
                let _ = checkpoints.send(checkpoint::Retire {
                    through_segment: segment - 1,
                    lsn,
                });
            }
        }
        if let Some(thread) = self.checkpoint_thread.take() {
            let _ = thread.join();
        }
    }
}

/// An I/O error of the store's own files (the log, sled's files, directories).
pub(crate) fn sync_error(e: std::io::Error) -> StoreError {
    StoreError::Sync {
        detail: e.to_string(),
    }
}
