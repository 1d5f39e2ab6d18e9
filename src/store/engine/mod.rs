//! The storage engine: how bytes become durable, and the only code that names sled.
//!
//! Only the committer thread ([`committer`]) writes. It turns a group of write sets into
//! one record of the write-ahead log ([`wal`]), `fdatasync`s it, and only then stages the
//! group in the trees' memtables ([`tree`]), where readers see it, and answers; the
//! [`applier`] puts it in sled later, off that path. So an acknowledged write survives
//! kill -9 and power loss, and recovery completes any group that was logged
//! (docs/durability.md). sled itself is flushed by checkpoints ([`checkpoint`]) on their
//! own thread. At open ([`open`]), [`recovery`] checks the log against what sled's `meta`
//! says ([`meta`]: the store's identity and how far sled has got) and refuses a store it
//! cannot vouch for. The engine stores opaque keys and values; what they mean is the
//! tables' business ([`crate::store::tables`]).

pub mod applier;
pub mod checkpoint;
pub mod codec;
pub mod committer;
pub mod key_filter;
pub mod meta;
pub mod open;
pub mod recovery;
pub mod store;
pub mod tree;
pub mod tree_batch;
pub mod wal;
#[cfg(test)]
mod wal_recovery_tests;
