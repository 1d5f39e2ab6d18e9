//! The index of money that moved per UTC day, read by reconciliation.
//!
//! Each group commit that writes succeeded payments or refunds adds one **settlement
//! batch** per UTC day they succeeded on: a record listing them, keyed by the day
//! (Unix days, big-endian, so one day is one prefix scan) and a ULID that makes the key
//! unique. One index write per group and day instead of one per record: every sled tree
//! a create adds to costs about a tenth of the applier's time (BENCHMARKS.md). A record
//! written again once succeeded (a refund updates its payment) is listed again; readers
//! list each record once.
//!

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::store::{codec, StoreError, Trees};

/// A settlement batch as written: its key in `settled_batches`, and its encoded value.
pub(crate) type BatchWrite = (Vec<u8>, Vec<u8>);

/// A succeeded record: its tag (payment or refund, as in `provider_ids`) and its id.
pub(crate) type Settled = (u8, String);

/// One settlement batch: the records of one group commit that succeeded on one day.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct SettlementBatch {
    entries: Vec<Settled>,
}

/// The settlement batches of one group commit, by day.
#[derive(Debug, Default)]
pub(crate) struct SettledBatches {
    by_day: BTreeMap<i64, BTreeSet<Settled>>,
}

impl SettledBatches {
    /// Lists a record that succeeded on `day` (Unix days).
    pub fn add(&mut self, day: i64, tag: u8, id: &str) {
        self.by_day
            .entry(day)
            .or_default()
            .insert((tag, id.to_owned()));
    }

    /// One batch per day listed, each record once.
    ///
    /// # Errors
    /// [`StoreError::Codec`] if a batch cannot be encoded.
    pub fn into_writes(self) -> Result<Vec<BatchWrite>, StoreError> {
        self.by_day
            .into_iter()
            .map(|(day, entries)| {
                let mut key = day.to_be_bytes().to_vec();
                key.extend_from_slice(&ulid::Ulid::new().0.to_be_bytes());
                let batch = SettlementBatch {
                    entries: entries.into_iter().collect(),
                };
                Ok((key, codec::encode(&batch)?))
            })
            .collect()
    }
}

/// The records that succeeded on `day` (Unix days), each once, in (tag, id) order; at most
/// `limit`, from the settlement batches.
///
/// # Errors
/// [`StoreError`] on an I/O or codec failure.
pub(crate) fn on_day(trees: &Trees, day: i64, limit: usize) -> Result<Vec<Settled>, StoreError> {
    let prefix = day.to_be_bytes();
    let mut out = BTreeSet::new();
    for kv in trees.settled_batches.scan_prefix(prefix) {
        if out.len() >= limit {
            break;
        }
        let (_, v) = kv?;
        let batch: SettlementBatch = codec::decode(&v)?;
        out.extend(batch.entries);
    }
    Ok(out.into_iter().take(limit).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A day's list holds each record once, up to the limit, across the batches of
    /// several groups.
    #[test]
    fn a_day_lists_each_record_once_across_batches() {
        use crate::store::{Durability, Store};

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::FlushOnly).unwrap();
        let mut batches = SettledBatches::default();
        batches.add(7, b'p', "pay_old");
        batches.add(7, b'r', "re_new");
        batches.add(8, b'p', "pay_next_day");
        let mut again = SettledBatches::default();
        again.add(7, b'r', "re_new");
        for (key, value) in batches
            .into_writes()
            .unwrap()
            .into_iter()
            .chain(again.into_writes().unwrap())
        {
            store
                .trees
                .settled_batches
                .apply(&key, Some(&value))
                .unwrap();
        }
        let day7 = on_day(&store.trees, 7, 10).unwrap();
        assert_eq!(
            day7,
            vec![(b'p', "pay_old".to_owned()), (b'r', "re_new".to_owned())]
        );
        assert_eq!(on_day(&store.trees, 7, 1).unwrap().len(), 1);
        assert_eq!(on_day(&store.trees, 8, 10).unwrap().len(), 1);
        assert!(on_day(&store.trees, 9, 10).unwrap().is_empty());
    }

    #[test]
    fn a_group_writes_one_batch_per_day_and_lists_a_record_once() {
        let mut batches = SettledBatches::default();
        batches.add(3, b'p', "pay_1");
        batches.add(3, b'p', "pay_1");
        batches.add(3, b'r', "re_1");
        batches.add(2, b'p', "pay_0");
        let writes = batches.into_writes().unwrap();
        assert_eq!(writes.len(), 2);
        assert_eq!(&writes[0].0[..8], &2i64.to_be_bytes());
        assert_eq!(writes[1].0.len(), 24);
        let day3: SettlementBatch = codec::decode(&writes[1].1).unwrap();
        assert_eq!(
            day3.entries,
            vec![(b'p', "pay_1".to_owned()), (b'r', "re_1".to_owned())]
        );
    }
}
