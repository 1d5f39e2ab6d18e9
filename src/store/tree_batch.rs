//! The writes of a group commit to one sled tree, kept as data: the committer logs them in
//! the write-ahead log ([`super::wal`]) before it applies them to sled, and recovery applies
//! logged ones again.

use serde::{Deserialize, Serialize};

/// Puts and removes for one tree, in order. A `None` value removes the key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeBatch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl TreeBatch {
    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.ops
            .push((key.as_ref().to_vec(), Some(value.as_ref().to_vec())));
    }

    /// Removes `key` (nothing happens if it is absent).
    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.ops.push((key.as_ref().to_vec(), None));
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Applies the writes to `tree` one by one, in order. Applying them again, or after
    /// a prefix of them, leaves the same tree (each write sets or removes a whole value).
    ///
    /// Plain `insert` and `remove`, never `apply_batch` or a transaction: either switches
    /// sled 0.34 for good into a mode in which every read and write in the process takes one
    /// global `RwLock` (`concurrency_control.rs`). Atomicity comes from the write-ahead log.
    ///
    /// # Errors
    /// sled's I/O error.
    pub fn apply(&self, tree: &sled::Tree) -> Result<(), sled::Error> {
        for (key, value) in &self.ops {
            match value {
                Some(v) => tree.insert(key.as_slice(), v.as_slice())?,
                None => tree.remove(key.as_slice())?,
            };
        }
        Ok(())
    }
}
