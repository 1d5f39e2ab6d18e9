//! The journal: one record per group commit holding what the group adds to the store's
//! time-ordered indexes, so a group costs one sled write for all of them instead of one per
//! event, per expiring entry and per settled record (docs/durability.md, "Layout").
//!
//! A record holds:
//! - the group's outbox **events**, numbered from `first_seq` on (sequence = commit order);
//!   the retention sweep blanks an event it removes, so the numbers never shift;
//! - the header-key idempotency entries the group **finished** (gave a response), for the
//!   idempotency sweep; an entry still in flight is listed by the group that finishes it;
//! - the payments and refunds that **settled** (succeeded) in the group, with their UTC day,
//!   for reconciliation.
//!
//! Trees: `journal` (first_seq ++ LSN, both big-endian → [`JournalRecord`]), so records sort
//! in commit order and the record holding a sequence number is the last one whose key is at
//! or below (seq, `u64::MAX`); `journal_days` (UTC day, big-endian → the key of the first
//! record committed that day), one write per day, where reconciliation starts reading.
//!
//! `committed_at_ms` never decreases from one record to the next (the committer takes the
//! greater of the clock and the last value), so a scan by time can stop at the first
//! record past its bound. A record is removed once the sweeps have emptied it, except the
//! one holding the newest event, which keeps the numbering across restarts.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::domain::event::Event;
use crate::domain::time::DAY_MS;
use crate::store::tree::Tree;
use crate::store::tree_batch::TreeBatch;
use crate::store::{codec, StoreError, Trees};

/// The journal's position, kept by the committer: the next event's sequence number, the
/// last group's commit time (never decreasing), the newest day in `journal_days`.
#[derive(Debug)]
pub(crate) struct JournalClock {
    pub next_seq: u64,
    pub committed_at_ms: i64,
    pub last_day: Option<i64>,
}

/// Length of a `journal` key: first sequence number and LSN, 8 bytes each.
pub const KEY_LEN: usize = 16;

/// How long after its UTC day a record may still hold a record settled that day: the
/// commit of a payment that succeeded a moment before midnight lands after it, and the
/// commit clock may run ahead of the wall clock after a step back.
pub const SETTLED_SCAN_SLACK_MS: i64 = DAY_MS;

/// One group commit's entries in the time-ordered indexes.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// When the group was committed (Unix ms, never less than the record before).
    pub committed_at_ms: i64,
    /// Sequence number of `events[0]` (and of the next event when there are none).
    pub first_seq: u64,
    /// The group's outbox events in sequence order; `None`: removed by the retention sweep.
    pub events: Vec<Option<Event>>,
    /// Header-key idempotency entries the group finished.
    pub expiring: Vec<Expiring>,
    /// Payments and refunds that succeeded in the group.
    pub settled: Vec<Settled>,
}

/// A header-key entry, by its key in the `idempotency` tree, and when it was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiring {
    pub created_at_ms: i64,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
}

/// A succeeded payment (`tag` `p`) or refund (`r`): its UTC day (Unix days) and id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Settled {
    pub day: i64,
    pub tag: u8,
    pub id: String,
}

impl JournalRecord {
    /// Whether the sweeps have left nothing in it (or the group added nothing).
    pub fn is_empty(&self) -> bool {
        self.events.iter().all(Option::is_none)
            && self.expiring.is_empty()
            && self.settled.is_empty()
    }

    /// The sequence number after this record's last event.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.events.len() as u64
    }
}

/// The `journal` key of a record: `first_seq` and `lsn`, big-endian.
pub fn key(first_seq: u64, lsn: u64) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    out[..8].copy_from_slice(&first_seq.to_be_bytes());
    out[8..].copy_from_slice(&lsn.to_be_bytes());
    out
}

pub(crate) fn decode(value: &[u8]) -> Result<JournalRecord, StoreError> {
    codec::decode(value)
}

/// The record holding sequence number `seq`, if it is still kept: the last record whose
/// key is at or below (`seq`, max).
fn record_of_seq(journal: &Tree, seq: u64) -> Result<Option<(Vec<u8>, JournalRecord)>, StoreError> {
    let Some((k, v)) = journal.floor(&key(seq, u64::MAX))? else {
        return Ok(None);
    };
    let record = decode(&v)?;
    Ok((seq >= record.first_seq && seq < record.next_seq()).then(|| (k.to_vec(), record)))
}

/// Up to `limit` events with a sequence number above `after`, oldest first.
///
/// # Errors
/// [`StoreError`] on an I/O or codec failure.
pub(crate) fn events_after(
    trees: &Trees,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, Event)>, StoreError> {
    let start = match trees
        .journal
        .floor(&key(after.saturating_add(1), u64::MAX))?
    {
        Some((k, _)) => k.to_vec(),
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for kv in trees.journal.range(start..) {
        if out.len() >= limit {
            break;
        }
        let record = decode(&kv?.1)?;
        let first = record.first_seq;
        for (seq, event) in (first..).zip(record.events) {
            if out.len() >= limit {
                break;
            }
            if let (true, Some(event)) = (seq > after, event) {
                out.push((seq, event));
            }
        }
    }
    Ok(out)
}

/// The event numbered `seq`, unless swept.
///
/// # Errors
/// [`StoreError`] on an I/O or codec failure.
pub(crate) fn event_at(trees: &Trees, seq: u64) -> Result<Option<Event>, StoreError> {
    Ok(record_of_seq(&trees.journal, seq)?
        .and_then(|(_, record)| {
            record
                .events
                .into_iter()
                .nth((seq - record.first_seq) as usize)
        })
        .flatten())
}

/// The sequence number the next event gets (1 in an empty store), and the newest record's
/// commit time.
///
/// # Errors
/// [`StoreError`] on an I/O or codec failure.
pub(crate) fn next_seq(trees: &Trees) -> Result<(u64, i64), StoreError> {
    Ok(match trees.journal.last()? {
        Some((_, v)) => {
            let record = decode(&v)?;
            (record.next_seq(), record.committed_at_ms)
        }
        None => (1, 0),
    })
}

/// The newest day in `journal_days` (`None` in a new store).
///
/// # Errors
/// [`StoreError`] on an I/O failure.
pub(crate) fn last_day(trees: &Trees) -> Result<Option<i64>, StoreError> {
    Ok(trees
        .journal_days
        .last()?
        .and_then(|(k, _)| k.as_ref().try_into().ok().map(i64::from_be_bytes)))
}

/// The records that succeeded on `day` (Unix days), each once, in (tag, id) order; at most
/// `limit`.
///
/// # Errors
/// [`StoreError`] on an I/O or codec failure.
pub(crate) fn settled_on_day(
    trees: &Trees,
    day: i64,
    limit: usize,
) -> Result<Vec<(u8, String)>, StoreError> {
    let Some((_, first)) = trees
        .journal_days
        .range(day.to_be_bytes()..)
        .next()
        .transpose()?
    else {
        return Ok(Vec::new());
    };
    let scan_end_ms = (day + 1) * DAY_MS + SETTLED_SCAN_SLACK_MS;
    let mut out = BTreeSet::new();
    for kv in trees.journal.range(first.to_vec()..) {
        let record = decode(&kv?.1)?;
        if record.committed_at_ms >= scan_end_ms {
            break;
        }
        out.extend(
            record
                .settled
                .into_iter()
                .filter(|s| s.day == day)
                .map(|s| (s.tag, s.id)),
        );
        if out.len() > limit {
            break;
        }
    }
    Ok(out.into_iter().take(limit).collect())
}

/// A group's journal writes: its own record, and the sweeps' edits of older records, read
/// once and written once however many edits a group makes to them.
#[derive(Default)]
pub(crate) struct JournalBatch {
    /// The group's new record.
    pub record: JournalRecord,
    /// Older records this group edits, by key.
    edited: HashMap<Vec<u8>, JournalRecord>,
}

impl JournalBatch {
    /// A batch for a group committed at `committed_at_ms` whose first event gets `first_seq`.
    pub fn new(committed_at_ms: i64, first_seq: u64) -> JournalBatch {
        JournalBatch {
            record: JournalRecord {
                committed_at_ms,
                first_seq,
                ..JournalRecord::default()
            },
            edited: HashMap::new(),
        }
    }

    fn edit(
        &mut self,
        journal: &Tree,
        key: Vec<u8>,
    ) -> Result<Option<&mut JournalRecord>, StoreError> {
        if !self.edited.contains_key(&key) {
            match journal.get(&key)? {
                Some(v) => {
                    self.edited.insert(key.clone(), decode(&v)?);
                }
                None => return Ok(None),
            }
        }
        Ok(self.edited.get_mut(&key))
    }

    /// Blanks the event numbered `seq` (the retention sweep); returns it if it was there.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn remove_event(&mut self, journal: &Tree, seq: u64) -> Result<Option<Event>, StoreError> {
        let key = match self
            .edited
            .iter()
            .find(|(_, r)| seq >= r.first_seq && seq < r.next_seq())
        {
            Some((k, _)) => k.clone(),
            None => match record_of_seq(journal, seq)? {
                Some((k, _)) => k,
                None => return Ok(None),
            },
        };
        let Some(record) = self.edit(journal, key)? else {
            return Ok(None);
        };
        let index = (seq - record.first_seq) as usize;
        Ok(record.events.get_mut(index).and_then(Option::take))
    }

    /// Empties the `expiring` list of the record at `key` (the idempotency sweep went
    /// through it).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn clear_expiring(&mut self, journal: &Tree, key: &[u8]) -> Result<(), StoreError> {
        if let Some(record) = self.edit(journal, key.to_vec())? {
            record.expiring.clear();
        }
        Ok(())
    }

    /// Puts the batch into the group's `journal` writes: the new record under
    /// (first_seq, `lsn`) unless it is empty, each edited record rewritten, or removed
    /// once empty. Returns the new record's key, if it was written.
    ///
    /// # Errors
    /// [`StoreError::Codec`].
    pub fn into_writes(
        self,
        lsn: u64,
        journal: &mut TreeBatch,
    ) -> Result<Option<[u8; KEY_LEN]>, StoreError> {
        let next_seq = self.record.first_seq;
        for (k, record) in self.edited {
            // The record that numbers the newest event stays, however empty: the next
            // open reads the next sequence number from the last record, and a cursor
            // (the dispatcher's, the relay's) must never see numbers start over.
            if record.is_empty() && record.next_seq() < next_seq {
                journal.remove(k);
            } else {
                journal.insert(k, codec::encode(&record)?);
            }
        }
        if self.record.is_empty() {
            return Ok(None);
        }
        let key = key(self.record.first_seq, lsn);
        journal.insert(key, codec::encode(&self.record)?);
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_commit_order() {
        assert!(key(1, 9) < key(2, 3));
        assert!(key(5, 3) < key(5, 4));
        assert!(key(5, u64::MAX) < key(6, 0));
    }

    #[test]
    fn a_record_without_entries_is_empty_and_next_seq_counts_blanked_events() {
        let mut record = JournalRecord {
            first_seq: 7,
            events: vec![None, None],
            ..JournalRecord::default()
        };
        assert!(record.is_empty());
        assert_eq!(record.next_seq(), 9);
        record.settled.push(Settled {
            day: 1,
            tag: b'p',
            id: "pay_1".into(),
        });
        assert!(!record.is_empty());
    }

    use crate::domain::write_set::WriteOp;
    use crate::store::tables::test_support::{commit, event, open};

    /// Records without events (a group that only finished entries) sit between records
    /// with events; a cursor anywhere finds the record holding the next sequence number.
    #[test]
    fn a_cursor_finds_the_record_holding_the_next_event() {
        let (_dir, store) = open();
        commit(
            &store,
            vec![
                WriteOp::Event(event("evt_1", "e", "d1")),
                WriteOp::Event(event("evt_2", "e", "d2")),
            ],
        );
        commit(
            &store,
            vec![WriteOp::Setting {
                key: "s".into(),
                value: "1".into(),
            }],
        );
        commit(&store, vec![WriteOp::Event(event("evt_3", "e", "d3"))]);
        for (after, first) in [(0, Some(1)), (1, Some(2)), (2, Some(3)), (3, None)] {
            let page = events_after(&store.trees, after, 1).unwrap();
            assert_eq!(page.first().map(|(s, _)| *s), first, "after {after}");
        }
        assert_eq!(next_seq(&store.trees).unwrap().0, 4);
        let keys: Vec<Vec<u8>> = store
            .trees
            .journal
            .iter()
            .keys()
            .map(|k| k.unwrap().to_vec())
            .collect();
        assert_eq!(
            keys.len(),
            2,
            "a group with nothing for the journal writes no record"
        );
        assert_eq!(&keys[1][..8], &3u64.to_be_bytes());
        assert!(last_day(&store.trees).unwrap().is_some());
    }

    /// A record the sweeps have emptied is removed, except the one holding the newest
    /// event: numbering never starts over, even when every event has aged out.
    #[test]
    fn an_emptied_record_is_removed_unless_it_numbers_the_newest_event() {
        let (_dir, store) = open();
        commit(&store, vec![WriteOp::Event(event("evt_1", "e", "d1"))]);
        commit(&store, vec![WriteOp::Event(event("evt_2", "e", "d2"))]);
        assert_eq!(store.trees.journal.iter().count(), 2);
        let remove = |seq: u64, id: &str, dedupe: &str| WriteOp::RemoveEvent {
            seq,
            id: id.into(),
            dedupe_key: dedupe.into(),
        };
        commit(
            &store,
            vec![remove(1, "evt_1", "d1"), remove(2, "evt_2", "d2")],
        );
        assert_eq!(
            store.trees.journal.iter().count(),
            1,
            "the newest record stays"
        );
        assert!(events_after(&store.trees, 0, 10).unwrap().is_empty());
        assert_eq!(next_seq(&store.trees).unwrap().0, 3);
        commit(&store, vec![WriteOp::Event(event("evt_3", "e", "d3"))]);
        assert_eq!(events_after(&store.trees, 0, 10).unwrap()[0].0, 3);
    }
}
