//! The durable store: sled trees, the bincode codec, the group committer, recovery and the
//! idempotency sweep.
//!
//! Only the committer thread writes. A write set becomes one multi-tree sled transaction in
//! a batch of many; the batch is flushed (`Db::flush`, which on Linux is `pwrite` +
//! `sync_file_range`) and then the `db` file is `fdatasync`ed, so an acknowledged write
//! survives kill -9 and power loss (see README "Durability").
//!
//! Trees: `payments` (id → Payment), `orders` (merchant\0order → id), `processing`
//! (id → ∅, the payments to resume at start-up), `idempotency` (key → entry),
//! `idempotency_expiry` (created_at ++ key → ∅), `events` (sequence → Event),
//! `event_dedupe` (dedupe_key → event id), `meta`; the provider side's trees are described
//! in [`provider_records`]; deliveries and settings in [`deliveries`].

pub mod codec;
pub mod committer;
pub mod deliveries;
pub mod keys;
pub mod provider_records;
pub mod replay_cache;
pub mod sweep;

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use sled::Transactional;
use tokio::sync::watch;

use crate::domain::event::Event;
use crate::domain::idempotency::{IdempotencyEntry, IdempotencyKey};
use crate::domain::payment::{Payment, PaymentStatus};
use crate::domain::write_set::{WriteOp, WriteSet};

/// Schema version kept in `meta`; a store of another version is refused at open.
pub const SCHEMA_VERSION: u8 = 1;
const META_SCHEMA_KEY: &[u8] = b"schema_version";

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
    #[error("store schema version {found} is not {SCHEMA_VERSION}")]
    Schema { found: u8 },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled {
            detail: e.to_string(),
        }
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        }
    }
}

/// How a batch is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `Db::flush` then `fdatasync` of the data file: survives power loss (the default).
    FlushAndSync,
    /// `Db::flush` only: survives kill -9, not power loss (benchmarks compare the two).
    FlushOnly,
}

/// Files sled writes outside its `db` log: values too large for a log segment go to
/// `blobs/`, which sled itself never syncs.
const BLOBS_DIR: &str = "blobs";

/// Declares the sled trees once: a `Trees` struct of open trees and a `Batches` struct
/// with one `sled::Batch` per tree, zipped for the one transaction of a group commit.
/// Adding a tree is adding its name here.
macro_rules! trees {
    ($($name:ident),+ $(,)?) => {
        struct Trees {
            $($name: sled::Tree,)+
        }

        impl Trees {
            fn open(db: &sled::Db) -> Result<Trees, StoreError> {
                Ok(Trees { $($name: db.open_tree(stringify!($name))?,)+ })
            }

            fn all(&self) -> Vec<sled::Tree> {
                vec![$(self.$name.clone(),)+]
            }
        }

        /// One batch per tree, filled from write sets, applied in one transaction.
        #[derive(Default)]
        struct Batches {
            $($name: sled::Batch,)+
        }

        impl Batches {
            /// The batches in the order of [`Trees::all`].
            fn into_vec(self) -> Vec<sled::Batch> {
                vec![$(self.$name,)+]
            }
        }
    };
}

trees!(
    payments,
    orders,
    processing,
    idempotency,
    idempotency_expiry,
    events,
    event_dedupe,
    refunds,
    refunds_by_payment,
    refunds_pending,
    provider_ids,
    settled_by_day,
    webhook_events,
    reconciliations,
    discrepancies,
    deliveries,
    deliveries_due,
    deliveries_by_status,
    fanout,
    settings,
);

/// The open store. Reads are safe from any thread; writes go through the committer.
pub struct Store {
    db: sled::Db,
    trees: Trees,
    data_file: File,
    dir: PathBuf,
    /// Blob files already synced (pruned to those still present).
    synced_blobs: Mutex<HashSet<std::ffi::OsString>>,
    durability: Durability,
    /// Next event sequence number (the committer is the only writer).
    next_event_seq: Mutex<u64>,
    applied_epoch: AtomicU64,
    durable_epoch: watch::Sender<u64>,
    failed: AtomicBool,
    /// Delivery counts and the fan-out hook ([`deliveries`]).
    deliveries_index: deliveries::DeliveryIndex,
    /// Finished idempotency entries of recent commits ([`replay_cache`]).
    replay_cache: replay_cache::ReplayCache,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// [`StoreError::Sled`] if sled cannot open it, [`StoreError::Schema`] on another schema.
    pub fn open(dir: &Path, durability: Durability) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(sync_error)?;
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let meta = db.open_tree("meta")?;
        match meta.get(META_SCHEMA_KEY)? {
            Some(v) if v.as_ref() != [SCHEMA_VERSION] => {
                return Err(StoreError::Schema {
                    found: v.first().copied().unwrap_or(0),
                })
            }
            Some(_) => {}
            None => {
                meta.insert(META_SCHEMA_KEY, &[SCHEMA_VERSION])?;
                db.flush()?;
            }
        }
        let trees = Trees::open(&db)?;
        let next_event_seq = match trees.events.last()? {
            Some((k, _)) => seq_of(&k) + 1,
            None => 1,
        };
        let deliveries_index = deliveries::DeliveryIndex::default();
        deliveries_index.load_counts(&trees.deliveries_by_status, &trees.fanout)?;
        let data_file = File::open(dir.join("db")).map_err(sync_error)?;
        // Make the files' directory entries durable once, so a new store survives power loss.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(sync_error)?;
        Ok(Store {
            db,
            trees,
            data_file,
            dir: dir.to_path_buf(),
            synced_blobs: Mutex::new(HashSet::new()),
            durability,
            next_event_seq: Mutex::new(next_event_seq),
            applied_epoch: AtomicU64::new(0),
            durable_epoch: watch::Sender::new(0),
            failed: AtomicBool::new(false),
            deliveries_index,
            replay_cache: replay_cache::ReplayCache::default(),
        })
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

    /// Up to `limit` expired header-key entries: (key, created_at_ms) with
    /// `created_at_ms < cutoff_ms`.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn expired_idempotency_keys(
        &self,
        cutoff_ms: i64,
        limit: usize,
    ) -> Result<Vec<(IdempotencyKey, i64)>, StoreError> {
        let end = cutoff_ms.max(0).to_be_bytes();
        let mut out = Vec::new();
        for kv in self
            .trees
            .idempotency_expiry
            .range(..end.to_vec())
            .take(limit)
        {
            let (k, _) = kv?;
            let (time, key) = k.split_at(8);
            let created = i64::from_be_bytes(time.try_into().unwrap_or([0; 8]));
            if let Some(key) = keys::parse_idempotency_key(key) {
                out.push((key, created));
            }
        }
        Ok(out)
    }

    /// Whether a store failure has made the store refuse writes.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Waits until everything applied before this call is durable. A read that must not
    /// show a state a crash could undo calls this after reading.
    pub async fn wait_durable(&self) {
        let applied = self.applied_epoch.load(Ordering::Acquire);
        let mut durable = self.durable_epoch.subscribe();
        let _ = durable
            .wait_for(|d| *d >= applied || self.is_failed())
            .await;
    }

    /// Applies a group of write sets as one sled transaction, then makes it durable.
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
            self.durable_epoch.send_replace(u64::MAX);
        }
        result
    }

    fn commit_group_inner(&self, write_sets: &[&WriteSet]) -> Result<usize, StoreError> {
        let (batches, events, deliveries) = self.batches_for(write_sets)?;
        let epoch = self.applied_epoch.load(Ordering::Acquire) + 1;
        self.applied_epoch.store(epoch, Ordering::Release);
        let trees = self.trees.all();
        let batches = batches.into_vec();
        trees
            .as_slice()
            .transaction(|tx| {
                for (tree, batch) in tx.iter().zip(batches.iter()) {
                    tree.apply_batch(batch)?;
                }
                Ok::<(), sled::transaction::ConflictableTransactionError<StoreError>>(())
            })
            .map_err(StoreError::from)?;
        self.db.flush()?;
        if self.durability == Durability::FlushAndSync {
            self.data_file.sync_data().map_err(sync_error)?;
            self.sync_new_blobs()?;
        }
        self.durable_epoch.send_replace(epoch);
        self.deliveries_index.committed(deliveries);
        self.cache_replays(write_sets);
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
    /// Call it only with an entry known to be durable: from the committer after the sync,
    /// or after [`Store::wait_durable`] following the read.
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
                        b.processing.insert(p.id.as_bytes(), &[]);
                    } else {
                        b.processing.remove(p.id.as_bytes());
                    }
                    provider_records::index_payment(&mut b, p);
                }
                WriteOp::Idempotency { key, entry } => {
                    b.idempotency
                        .insert(keys::idempotency_key(key), codec::encode(entry)?);
                    if key.expires() {
                        // Written with the in-flight entry; the finished one keeps it.
                        let expiry = keys::expiry_key(entry.created_at_ms, key);
                        if !self.trees.idempotency_expiry.contains_key(&expiry)? {
                            b.idempotency_expiry.insert(expiry, &[]);
                        }
                    }
                }
                WriteOp::RemoveIdempotency { key, created_at_ms } => {
                    b.idempotency.remove(keys::idempotency_key(key));
                    b.idempotency_expiry
                        .remove(keys::expiry_key(*created_at_ms, key));
                }
                WriteOp::Event(e) => {
                    let duplicate = !dedupe_seen.insert(&e.dedupe_key)
                        || self
                            .trees
                            .event_dedupe
                            .contains_key(e.dedupe_key.as_bytes())?;
                    if duplicate {
                        continue;
                    }
                    b.events.insert(&seq.to_be_bytes(), codec::encode(e)?);
                    b.event_dedupe
                        .insert(e.dedupe_key.as_bytes(), e.id.as_bytes());
                    self.fan_out_event(&mut view, e, *seq)?;
                    *seq += 1;
                    events += 1;
                }
                WriteOp::Refund(r) => provider_records::put_refund(&mut b, r)?,
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
            }
        }
        self.write_plans(&mut b, &mut view)?;
        Ok((b, events, view))
    }
}

impl Store {
    /// `fdatasync`s blob files written since the last call, then their directory. Cheap
    /// when, as usual, there are none (one `readdir` of an empty directory).
    fn sync_new_blobs(&self) -> Result<(), StoreError> {
        let blobs = self.dir.join(BLOBS_DIR);
        let Ok(entries) = std::fs::read_dir(&blobs) else {
            return Ok(());
        };
        let mut synced = self.synced_blobs.lock().map_err(|_| StoreError::Failed)?;
        let mut present = HashSet::new();
        let mut any_new = false;
        for entry in entries {
            let name = entry.map_err(sync_error)?.file_name();
            if !synced.contains(&name) {
                match File::open(blobs.join(&name)).and_then(|f| f.sync_data()) {
                    Ok(()) => any_new = true,
                    // Garbage-collected by sled since the readdir: nothing to keep.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(sync_error(e)),
                }
            }
            present.insert(name);
        }
        if any_new {
            File::open(&blobs)
                .and_then(|d| d.sync_all())
                .map_err(sync_error)?;
        }
        *synced = present;
        Ok(())
    }
}

fn sync_error(e: std::io::Error) -> StoreError {
    StoreError::Sync {
        detail: e.to_string(),
    }
}

fn seq_of(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or(0)
}
