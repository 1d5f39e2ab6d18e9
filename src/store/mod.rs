//! The durable store: sled trees, the bincode codec, the group committer, recovery and the
//! idempotency sweep.
//!
//! Only the committer thread writes. It turns a group of write sets into one record of the
//! write-ahead log ([`wal`]), `fdatasync`s it, and only then stages the group in the trees'
//! memtables ([`tree`]), where readers see it, and answers; the [`applier`] puts it in sled
//! later, off that path. So an acknowledged write survives kill -9 and power loss, and
//! recovery completes any group that was logged (docs/durability.md). sled itself is
//! flushed by checkpoints ([`checkpoint`]) on their own thread. At open ([`open`]),
//! [`recovery`] checks the log against what sled's `meta` says ([`meta`]: the store's
//! identity and how far sled has got) and refuses a store it cannot vouch for.
//!
//! Trees: `payments` (id → Payment), `orders` (merchant\0order → id), `processing`
//! (id → ∅, the payments to resume at start-up), `idempotency` (key → entry),
//! `expiry_batches` (newest created_at ++ ULID → the header-key entries of one group, for
//! the sweep: [`expiry`]), `events` (sequence → Event),
//! `event_dedupe` (dedupe_key → event id), `meta` ([`meta`]); the provider side's trees are described
//! in [`provider_records`]; deliveries and settings in [`deliveries`].

pub mod applier;
pub mod checkpoint;
pub mod codec;
pub mod committer;
pub mod deliveries;
pub mod expiry;
pub mod keys;
pub mod meta;
pub mod open;
pub mod provider_records;
pub mod recovery;
pub mod replay_cache;
pub mod retention;
pub mod settled;
pub mod sweep;
pub mod tree;
pub mod tree_batch;
pub mod wal;
#[cfg(test)]
mod wal_recovery_tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::domain::event::Event;
use crate::domain::idempotency::{IdempotencyEntry, IdempotencyKey};
use crate::domain::payment::{Payment, PaymentStatus};
use crate::domain::write_set::{WriteOp, WriteSet};

pub use open::{check, CheckReport, LossReport, OpenOptions};

/// Schema version kept in `meta` ([`meta`]); a store of another version is refused at
/// open. 2: the log carries LSNs and the store's identity, which sled's `meta` carries too.
pub const SCHEMA_VERSION: u8 = 2;

/// Errors of the store layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {detail}")]
    Sled { detail: String },
    #[error("file sync: {detail}")]
    Sync { detail: String },
    #[error("codec: {detail}")]
    Codec { detail: String },
    #[error("the store failed earlier and refuses writes until restart")]
    Failed,
    #[error("the committer has stopped")]
    Closed,
    #[error("store schema version {found} is not {SCHEMA_VERSION}, the only one this build reads (nothing is migrated: start on a new data directory)")]
    Schema { found: u8 },
    #[error("corrupt store: {detail}")]
    Corrupt { detail: String },
    #[error("the store cannot vouch for every acknowledged write (start with --accept-data-loss to keep what can be read):{}", findings.iter().map(|f| format!("\n  - {f}")).collect::<String>())]
    Damaged { findings: Vec<recovery::Finding> },
    #[error("{} holds no paykeep store", path.display())]
    NotAStore { path: PathBuf },
    #[error("{} is in use by another process (sled's lock is held)", path.display())]
    InUse { path: PathBuf },
}

impl StoreError {
    /// Whether the error says the store's files cannot be vouched for (damage, another
    /// schema, a record that does not decode): `paykeep` exits with code 3 on these.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Damaged { .. } | StoreError::Schema { .. } | StoreError::Corrupt { .. }
        )
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled {
            detail: e.to_string(),
        }
    }
}

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

/// Declares the sled trees once: a `Trees` struct of open trees and a `Batches` struct
/// with one [`tree_batch::TreeBatch`] per tree. Adding a tree is adding its name here; the
/// order is the order a group is staged in, records before the indexes that point at them.
macro_rules! trees {
    ($($name:ident),+ $(,)?) => {
        pub(crate) struct Trees {
            $($name: tree::Tree,)+
        }

        /// Every tree's name, in declaration order.
        pub const TREE_NAMES: &[&str] = &[$(stringify!($name),)+];

        impl Trees {
            fn open(db: &sled::Db) -> Result<Trees, StoreError> {
                Ok(Trees { $($name: tree::Tree::new(db.open_tree(stringify!($name))?),)+ })
            }

            /// The tree a log record names.
            ///
            /// # Errors
            /// [`StoreError::Corrupt`] for a name that is no tree of this store.
            fn by_name(&self, name: &str) -> Result<&tree::Tree, StoreError> {
                match name {
                    $(stringify!($name) => Ok(&self.$name),)+
                    _ => Err(StoreError::Corrupt {
                        detail: format!("write-ahead log names an unknown tree {name:?}"),
                    }),
                }
            }
        }

        /// One batch per tree, filled from write sets.
        #[derive(Default)]
        struct Batches {
            $($name: tree_batch::TreeBatch,)+
        }

        impl Batches {
            /// The log record of the group: the non-empty batches, in declaration order.
            fn into_record(self) -> GroupRecord {
                let mut trees = Vec::new();
                $(
                    if !self.$name.is_empty() {
                        trees.push((stringify!($name).to_owned(), self.$name));
                    }
                )+
                GroupRecord { trees }
            }
        }
    };
}

trees!(
    payments,
    orders,
    processing,
    idempotency,
    expiry_batches,
    events,
    event_dedupe,
    refunds,
    refunds_by_payment,
    refunds_pending,
    provider_ids,
    settled_batches,
    webhook_events,
    reconciliations,
    discrepancies,
    deliveries,
    deliveries_due,
    deliveries_by_status,
    fanout,
    settings,
);

/// One group commit as logged in the write-ahead log: per tree, by name, its writes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    trees: Vec<(String, tree_batch::TreeBatch)>,
}

impl GroupRecord {
    /// Applies the writes to sled, tree by tree in the record's order (recovery).
    fn apply(&self, trees: &Trees) -> Result<(), StoreError> {
        for (name, batch) in &self.trees {
            batch.apply(trees.by_name(name)?)?;
        }
        Ok(())
    }
}

/// The open store. Reads are safe from any thread; writes go through the committer.
pub struct Store {
    trees: Arc<Trees>,
    /// The log the committer appends to (only the committer locks it).
    wal: Mutex<wal::Wal>,
    /// Durable groups for the applier; taken when the store is dropped.
    applier: Option<crossbeam_channel::Sender<applier::Logged>>,
    applier_thread: Option<JoinHandle<()>>,
    /// Segments for the checkpoint thread to retire (the last checkpoint, at drop; the
    /// applier sends the others); taken when the store is dropped.
    checkpoints: Option<crossbeam_channel::Sender<checkpoint::Retire>>,
    checkpoint_thread: Option<JoinHandle<()>>,
    durability: Durability,
    /// Next event sequence number (the committer is the only writer).
    next_event_seq: Mutex<u64>,
    /// Epoch of the last group committed; the memtables tag staged writes with it.
    last_epoch: AtomicU64,
    failed: Arc<AtomicBool>,
    /// Delivery counts and the fan-out hook ([`deliveries`]).
    deliveries_index: deliveries::DeliveryIndex,
    /// Finished idempotency entries of recent commits ([`replay_cache`]).
    replay_cache: replay_cache::ReplayCache,
    /// What `accept_data_loss` let go at open, if anything.
    loss: Option<LossReport>,
    /// `store_sled_writes_total{tree}`: sled inserts and removes the applier made.
    sled_writes: prometheus::IntCounterVec,
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

    /// The payment `id`, as last committed.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn payment(&self, id: &str) -> Result<Option<Payment>, StoreError> {
        self.trees
            .payments
            .get(id.as_bytes())?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// The payment of an order.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn payment_by_order(
        &self,
        merchant_id: &str,
        order_no: &str,
    ) -> Result<Option<Payment>, StoreError> {
        match self
            .trees
            .orders
            .get(keys::order_key(merchant_id, order_no))?
        {
            Some(id) => self.payment(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// The entry stored under an idempotency key.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn idempotency(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyEntry>, StoreError> {
        self.trees
            .idempotency
            .get(keys::idempotency_key(key))?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// The finished entry under `key` if a recent commit left it in the in-memory replay
    /// cache; `None` means "not cached", not "absent" (read [`Store::idempotency`] then).
    /// A hit is durable: the cache is filled only after its commit was made durable.
    pub fn cached_replay(&self, key: &IdempotencyKey) -> Option<replay_cache::CachedReplay> {
        self.replay_cache.get(&keys::idempotency_key(key))
    }

    /// Ids of all payments left `processing` (start-up recovery resumes them).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn processing_payment_ids(&self) -> Result<Vec<String>, StoreError> {
        self.trees
            .processing
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// Up to `limit` reconciliation reports with id > `after`, oldest first (report ids are
    /// `rec_` + a ULID, so id order is creation order): the operator console's list.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn reconciliations_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::recon::report::ReconciliationReport>, StoreError> {
        let start = match after {
            Some(after) => {
                let mut k = after.as_bytes().to_vec();
                k.push(0);
                k
            }
            None => Vec::new(),
        };
        self.trees
            .reconciliations
            .range(start..)
            .take(limit)
            .map(|kv| codec::decode(&kv?.1))
            .collect()
    }

    /// Up to `limit` outbox events with sequence > `after_seq`, oldest first, with their
    /// sequence numbers.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn events_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        let start = (after_seq.saturating_add(1)).to_be_bytes();
        self.trees
            .events
            .range(start..)
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((seq_of(&k), codec::decode(&v)?))
            })
            .collect()
    }

    /// About `limit` header-key entries created before `cutoff_ms`, and the expiry
    /// batches listing them (the expiry index: [`expiry`]).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn expired_idempotency_keys(
        &self,
        cutoff_ms: i64,
        limit: usize,
    ) -> Result<expiry::Expired, StoreError> {
        expiry::expired(&self.trees, cutoff_ms, limit)
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
    pub(crate) fn commit_group(&self, write_sets: &[&WriteSet]) -> Result<usize, StoreError> {
        if self.is_failed() {
            return Err(StoreError::Failed);
        }
        let result = self.commit_group_inner(write_sets);
        if result.is_err() {
            self.failed.store(true, Ordering::Release);
        }
        result
    }

    fn commit_group_inner(&self, write_sets: &[&WriteSet]) -> Result<usize, StoreError> {
        let (batches, events, deliveries) = self.batches_for(write_sets)?;
        let epoch = self.last_epoch.load(Ordering::Acquire) + 1;
        self.last_epoch.store(epoch, Ordering::Release);
        let record = batches.into_record();
        let appended = {
            let mut wal = self.wal.lock().map_err(|_| StoreError::Failed)?;
            wal.append(
                &codec::encode(&record)?,
                self.durability == Durability::FlushAndSync,
            )?
        };
        // Durable from here on: readers may see it (from the memtables until the applier has
        // put it in sled), and recovery would apply the record if sled lost any of it.
        for (name, batch) in &record.trees {
            self.trees.by_name(name)?.stage(epoch, &batch.ops);
        }
        self.deliveries_index.committed(deliveries);
        self.cache_replays(write_sets);
        let logged = applier::Logged {
            epoch,
            lsn: appended.lsn,
            logged_at: std::time::Instant::now(),
            record: Arc::new(record),
            sealed: appended.sealed,
        };
        // Waits while the applier is APPLY_QUEUE_MAX groups behind (back-pressure).
        if let Some(applier) = &self.applier {
            applier.send(logged).map_err(|_| StoreError::Closed)?;
        }
        Ok(events)
    }

    /// Refreshes the replay cache from a group that is now durable.
    fn cache_replays(&self, write_sets: &[&WriteSet]) {
        for op in write_sets.iter().flat_map(|ws| ws.ops.iter()) {
            match op {
                WriteOp::Idempotency { key, entry } => self.remember_replay(key, entry),
                WriteOp::RemoveIdempotency { key, .. } => {
                    self.replay_cache.remove(&keys::idempotency_key(key));
                }
                _ => {}
            }
        }
    }

    /// Puts a durable entry into the replay cache (finished) or evicts its key (unfinished).
    /// Every entry a reader can see is durable (the committer stages a group only after its
    /// sync), so an entry just read from the store qualifies.
    pub fn remember_replay(&self, key: &IdempotencyKey, entry: &IdempotencyEntry) {
        let cache_key = keys::idempotency_key(key);
        match &entry.response {
            Some(response) => self.replay_cache.put(
                cache_key,
                replay_cache::CachedReplay {
                    digest: entry.fingerprint.digest,
                    status: response.status,
                    body: bytes::Bytes::from(response.body.clone()),
                    created_at_ms: entry.created_at_ms,
                },
            ),
            None => self.replay_cache.remove(&cache_key),
        }
    }

    /// Turns write sets into one sled batch per tree.
    fn batches_for(
        &self,
        write_sets: &[&WriteSet],
    ) -> Result<(Batches, usize, deliveries::BatchView), StoreError> {
        let mut b = Batches::default();
        let mut view = deliveries::BatchView::default();
        let mut dedupe_seen: HashSet<&str> = HashSet::new();
        let mut expiring = expiry::ExpiryBatch::default();
        let mut settled = settled::SettledBatches::default();
        let mut seq = self.next_event_seq.lock().map_err(|_| StoreError::Failed)?;
        let mut events = 0;
        for op in write_sets.iter().flat_map(|ws| ws.ops.iter()) {
            match op {
                WriteOp::Payment(p) => {
                    b.payments.insert(p.id.as_bytes(), codec::encode(p)?);
                    // An order's payment id never changes (attempts live inside the
                    // payment), so after its first write the index is only read: a sled
                    // read costs far less than an insert, which clones and logs the leaf.
                    let order_key = keys::order_key(&p.merchant_id, &p.order_no);
                    if self.trees.orders.get(&order_key)?.as_deref() != Some(p.id.as_bytes()) {
                        b.orders.insert(order_key, p.id.as_bytes());
                    }
                    if p.status == PaymentStatus::Processing {
                        b.processing.insert(p.id.as_bytes(), []);
                    } else {
                        b.processing.remove(p.id.as_bytes());
                    }
                    provider_records::index_payment(&mut b, &mut settled, p);
                }
                WriteOp::Idempotency { key, entry } => {
                    let tree_key = keys::idempotency_key(key);
                    if key.expires() {
                        expiring.add(entry.created_at_ms, &tree_key);
                    }
                    b.idempotency.insert(tree_key, codec::encode(entry)?);
                }
                WriteOp::RemoveIdempotency { key, created_at_ms } => {
                    self.remove_expired(&mut b, key, *created_at_ms)?
                }
                WriteOp::RemoveExpiryBatch { id } => b.expiry_batches.remove(id.as_slice()),
                WriteOp::Event(e) => {
                    let duplicate = !dedupe_seen.insert(&e.dedupe_key)
                        || self
                            .trees
                            .event_dedupe
                            .contains_key(e.dedupe_key.as_bytes())?;
                    if duplicate {
                        continue;
                    }
                    b.events.insert(seq.to_be_bytes(), codec::encode(e)?);
                    b.event_dedupe
                        .insert(e.dedupe_key.as_bytes(), e.id.as_bytes());
                    self.fan_out_event(&mut view, e, *seq)?;
                    *seq += 1;
                    events += 1;
                }
                WriteOp::Refund(r) => provider_records::put_refund(&mut b, &mut settled, r)?,
                WriteOp::WebhookEvent(w) => provider_records::put_webhook(&mut b, w)?,
                WriteOp::Reconciliation(r) => provider_records::put_reconciliation(&mut b, r)?,
                WriteOp::Discrepancy(d) => provider_records::put_discrepancy(&mut b, d)?,
                WriteOp::Delivery(d) => self.put_delivery(&mut b, &mut view, d)?,
                WriteOp::FanOutDone { through_seq } => {
                    self.forget_plans(&mut b, &mut view, *through_seq)?
                }
                WriteOp::Setting { key, value } => {
                    b.settings.insert(key.as_bytes(), value.as_bytes());
                }
                WriteOp::RemoveEvent {
                    seq,
                    id,
                    dedupe_key,
                } => {
                    b.events.remove(seq.to_be_bytes());
                    let names = self.trees.event_dedupe.get(dedupe_key.as_bytes())?;
                    if names.as_deref() == Some(id.as_bytes()) {
                        b.event_dedupe.remove(dedupe_key.as_bytes());
                    }
                }
                WriteOp::RemoveDelivery { id } => self.remove_delivery(&mut b, &mut view, id)?,
                WriteOp::RemoveWebhookEvent { id } => b.webhook_events.remove(id.as_bytes()),
            }
        }
        if let Some((id, batch)) = expiring.into_write()? {
            b.expiry_batches.insert(id, batch);
        }
        for (id, batch) in settled.into_writes()? {
            b.settled_batches.insert(id, batch);
        }
        self.write_plans(&mut b, &mut view)?;
        Ok((b, events, view))
    }

    /// The sweep's removal of `key`: only if its entry is still the one created at
    /// `created_at_ms` (as of the groups committed before this one; the sweep's write
    /// sets carry nothing else).
    fn remove_expired(
        &self,
        b: &mut Batches,
        key: &IdempotencyKey,
        created_at_ms: i64,
    ) -> Result<(), StoreError> {
        let tree_key = keys::idempotency_key(key);
        let current = self.trees.idempotency.get(&tree_key)?;
        let entry: Option<IdempotencyEntry> = current.map(|v| codec::decode(&v)).transpose()?;
        if entry.is_some_and(|e| e.created_at_ms == created_at_ms) {
            b.idempotency.remove(tree_key);
        }
        Ok(())
    }
}

impl Drop for Store {
    /// Lets the applier finish (no commit can run now: this is the last reference), then a
    /// last checkpoint through every record logged, retiring every segment but the current
    /// one, then stops the checkpoint thread and waits for it. sled's writes are then
    /// finished, so the directory can be opened again, and a clean stop leaves only the
    /// current segment, whose records recovery applies again (harmlessly) at the next open.
    fn drop(&mut self) {
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

pub(crate) fn seq_of(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or(0)
}
