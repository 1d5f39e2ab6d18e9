//! The writes of a group commit to one sled tree, kept as data: the committer logs them in
//! the write-ahead log ([`super::wal`]) before it applies them to sled, and recovery applies
//! logged ones again.

use serde::{Deserialize, Serialize};

use crate::store::tree::Tree;

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

    /// Applies the writes to sled under `tree` one by one, in order (recovery). Applying
    /// them again, or after a prefix of them, leaves the same tree (each write sets or
    /// removes a whole value).
    ///
    /// # Errors
    /// sled's I/O error.
    pub fn apply(&self, tree: &Tree) -> Result<(), sled::Error> {
        for op in &self.ops {
            tree.apply(&op.key, op.value.as_deref())?;
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
