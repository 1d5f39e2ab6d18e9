//! The durable store, as the rest of paykeep sees it: [`Store`], its errors, and the jobs
//! that keep it bounded. Nothing is implemented here.
//!
//! - [`engine`]: how bytes become durable: the write-ahead log and its group committer,
//!   the memtables, the applier that puts durable groups into sled, checkpoints, recovery
//!   and the honest verdict on damage at open. The only code that names sled.
//! - [`tables`]: one file per record type (payments, idempotency, the journal of events,
//!   expiring entries and settlements, deliveries, refunds, provider webhook ids,
//!   reconciliation, settings), each owning its keys, its index upkeep and its reads.
//! - [`sweep`] and [`retention`]: the background sweeps of idempotency entries and of aged
//!   events and webhook ids.
//!
//! An acknowledged write set is durable (docs/durability.md); the layout, key by key, is
//! docs/durability.md, "Layout".

pub mod engine;
mod error;
pub mod retention;
pub mod sweep;
pub mod tables;

pub use engine::open::{check, CheckReport, LossReport, OpenOptions};
pub use engine::store::{Durability, Store};
pub use engine::{
    applier, checkpoint, codec, committer, key_filter, meta, recovery, tree, tree_batch, wal,
};
pub use error::StoreError;
pub use tables::{deliveries, journal, replay_cache, PreparedWriteSet, SCHEMA_VERSION, TREE_NAMES};

pub(crate) use engine::store::sync_error;
pub(crate) use tables::{Batches, GroupRecord, Trees};
