//! The expiry index of header-key idempotency entries, read by the retention sweep.
//!
//! Each group commit that writes header-key entries adds one **expiry batch**: a record
//! listing every such entry of the group, keyed by the newest `created_at_ms` among them
//! ([`keys::expiry_batch_id`]). One index write per group instead of one per entry: every
//! sled tree a create adds to costs about a tenth of the applier's time (BENCHMARKS.md).
//! An entry is listed each time it is written (in flight, then finished), so it may be in
//! two batches; the sweep's removal is conditional on the entry's `created_at_ms`, which
//! makes the second listing a no-op. A batch is swept once its newest entry has expired:
//! a group's entries are created within moments of each other, except the finished entry of
//! a request that ran long, which its earlier in-flight listing has already brought to the
//! sweep.

use serde::{Deserialize, Serialize};

use crate::domain::idempotency::IdempotencyKey;
use crate::store::{codec, keys, StoreError, Trees};

/// An expiry batch as written: its key in `expiry_batches`, and its encoded value.
pub(crate) type BatchWrite = (Vec<u8>, Vec<u8>);

/// One expiry batch: the header-key entries one group commit wrote.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ExpiryBatch {
    pub entries: Vec<Expiring>,
}

/// A header-key entry, by its key in the `idempotency` tree, and when it was created.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Expiring {
    pub created_at_ms: i64,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
}

impl ExpiryBatch {
    /// Lists an entry.
    pub fn add(&mut self, created_at_ms: i64, key: &[u8]) {
        self.entries.push(Expiring {
            created_at_ms,
            key: key.to_vec(),
        });
    }

    /// The batch's key and encoded value, each entry listed once (in key order); `None`
    /// when it lists nothing.
    ///
    /// # Errors
    /// [`StoreError::Codec`] if the batch cannot be encoded.
    pub fn into_write(mut self) -> Result<Option<BatchWrite>, StoreError> {
        self.entries.sort_by(|a, b| a.key.cmp(&b.key));
        self.entries.dedup_by(|a, b| a.key == b.key);
        let Some(newest) = self.entries.iter().map(|e| e.created_at_ms).max() else {
            return Ok(None);
        };
        Ok(Some((keys::expiry_batch_id(newest), codec::encode(&self)?)))
    }
}

/// What the sweep may remove: entries created before its cutoff (header key,
/// `created_at_ms`), and the expiry batches listing them.
#[derive(Debug, Default)]
pub struct Expired {
    pub entries: Vec<(IdempotencyKey, i64)>,
    pub batches: Vec<Vec<u8>>,
}

impl Expired {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.batches.is_empty()
    }
}

/// Up to about `limit` expired entries (whole batches, so a batch may take it past
/// `limit`): those of whole batches whose newest entry was created before `cutoff_ms`.
///
/// # Errors
/// [`StoreError`] on an I/O or codec failure.
pub(crate) fn expired(trees: &Trees, cutoff_ms: i64, limit: usize) -> Result<Expired, StoreError> {
    let end = cutoff_ms.max(0).to_be_bytes().to_vec();
    let mut out = Expired::default();
    for kv in trees.expiry_batches.range(..end) {
        if out.entries.len() >= limit {
            break;
        }
        let (id, value) = kv?;
        let batch: ExpiryBatch = codec::decode(&value)?;
        for entry in batch.entries {
            if let Some(key) = keys::parse_idempotency_key(&entry.key) {
                out.entries.push((key, entry.created_at_ms));
            }
        }
        out.batches.push(id.to_vec());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_lists_an_entry_once_and_is_keyed_by_its_newest() {
        let mut batch = ExpiryBatch::default();
        batch.add(5, b"m\0h\0k1");
        batch.add(9, b"m\0h\0k2");
        batch.add(5, b"m\0h\0k1");
        let (id, value) = batch.into_write().unwrap().unwrap();
        assert_eq!(&id[..8], &9i64.to_be_bytes());
        assert_eq!(id.len(), 24);
        let back: ExpiryBatch = codec::decode(&value).unwrap();
        assert_eq!(back.entries.len(), 2);
        assert_eq!(back.entries[1].key, b"m\0h\0k2");
        assert!(ExpiryBatch::default().into_write().unwrap().is_none());
    }

    #[test]
    fn two_batches_of_the_same_instant_get_different_keys() {
        assert_ne!(keys::expiry_batch_id(7), keys::expiry_batch_id(7));
    }
}
