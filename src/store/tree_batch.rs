//! The writes of a group commit to one sled tree, kept as data: the committer logs them in
//! the write-ahead log ([`super::wal`]) before it applies them to sled, and recovery applies
//! logged ones again.

use serde::{Deserialize, Serialize};

/// Puts and removes for one tree, in order. A `None` value removes the key.
///
/// Keys and values are serialized as byte strings (`serde_bytes`): bincode writes a length
/// and the bytes in one go instead of one call per byte, the same encoding as a plain
/// `Vec<u8>` (a varint length, then one byte per `u8`), so logs of either form read alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeBatch {
    pub ops: Vec<Op>,
}

/// One write: the key and its new value, or `None` to remove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
}

impl TreeBatch {
    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op {
            key: key.into(),
            value: Some(value.into()),
        });
    }

    /// Removes `key` (nothing happens if it is absent).
    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(Op {
            key: key.into(),
            value: None,
        });
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
        for op in &self.ops {
            match &op.value {
                Some(v) => tree.insert(op.key.as_slice(), v.as_slice())?,
                None => tree.remove(op.key.as_slice())?,
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec;

    #[test]
    fn byte_strings_encode_like_plain_byte_vectors() {
        let mut batch = TreeBatch::default();
        batch.insert(b"key".to_vec(), vec![0_u8, 1, 255]);
        batch.remove(b"gone".to_vec());
        let plain: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
            (b"key".to_vec(), Some(vec![0, 1, 255])),
            (b"gone".to_vec(), None),
        ];
        let encoded = codec::encode(&batch).unwrap();
        assert_eq!(encoded, codec::encode(&(plain,)).unwrap());
        assert_eq!(codec::decode::<TreeBatch>(&encoded).unwrap(), batch);
    }
}
