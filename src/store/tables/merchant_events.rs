//! The merchant's view of the outbox (`GET /v1/events`, DESIGN §2): one index tree over
//! the events of the journal, `merchant_events`, written in the events' own batch.
//!
//! Key: merchant id ++ `\0` ++ the group's commit time (ms, u64 BE) ++ the group's LSN
//! (u64 BE); value: that merchant's events of the group as (event id, sequence number),
//! in sequence order. One key per merchant per group commit, not per event: a create's
//! path pays a fraction of a write for it (a group commits many creates), which keeps a
//! create within its budget of sled writes (BENCHMARKS.md). Commit times never decrease
//! from one group to the next, so a merchant's keys are its events in commit order.
//!
//! An id (a cursor, or `GET /v1/events/{id}`) is found through its time: event ids are
//! ULIDs made when the state machine made the event, just before its group committed, so
//! its group is among the merchant's first keys at or after that time. The search looks
//! up to [`COMMIT_LAG_MS_MAX`] after it, then [`CLOCK_SKEW_MS`] before it, through at most
//! [`GROUPS_SEARCHED_MAX`] groups; an id outside that is not found. Another merchant's id is
//! simply absent under this merchant's prefix.
//!
//! Only events of a merchant event type with a `merchant_id` are indexed; the retention
//! sweep's removal of an event takes it out of its group's entry ([`MerchantEventsBatch::remove`]).

use std::collections::{BTreeMap, HashMap};

use crate::domain::event::Event;
use crate::store::tables::Batches;
use crate::store::{codec, Store, StoreError};

/// How far before an event id's time its group may have committed (the clock stepping
/// back between the shard that made the id and the committer).
pub const CLOCK_SKEW_MS: u64 = 5_000;
/// How long after an event id's time its group may have committed: an event is made just
/// before its write set goes to the committer, so only the committer's backlog lies between.
pub const COMMIT_LAG_MS_MAX: u64 = 60_000;
/// Most groups one id search decodes (bounded work for an unknown cursor).
pub const GROUPS_SEARCHED_MAX: usize = 2_000;

/// One group's events of one merchant, in sequence order.
type Entry = Vec<(String, u64)>;

fn merchant_prefix(merchant_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(merchant_id.len() + 17);
    key.extend_from_slice(merchant_id.as_bytes());
    key.push(0);
    key
}

fn group_key(merchant_id: &str, committed_at_ms: i64, lsn: u64) -> Vec<u8> {
    let mut key = merchant_prefix(merchant_id);
    key.extend_from_slice(&u64::try_from(committed_at_ms).unwrap_or(0).to_be_bytes());
    key.extend_from_slice(&lsn.to_be_bytes());
    key
}

/// The (time, LSN) of a group key under `prefix`, as one 128-bit number (keys of one
/// merchant sort as these numbers do).
fn position(key: &[u8], prefix: &[u8]) -> Option<u128> {
    let rest: [u8; 16] = key.strip_prefix(prefix)?.try_into().ok()?;
    Some(u128::from_be_bytes(rest))
}

fn key_at(prefix: &[u8], position: u128) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// The time of a ULID event id (`evt_` + 26 characters), in Unix ms.
fn id_time_ms(id: &str) -> Option<u64> {
    let text = id.strip_prefix(crate::domain::ids::prefix::EVENT)?;
    let ulid = ulid::Ulid::from_string(&text.to_ascii_uppercase()).ok()?;
    Some(ulid.timestamp_ms())
}

/// What one group commit does to the index: the merchants' new events, and the entries
/// the retention sweep edited (read once, then edited here, written at the end).
#[derive(Default)]
pub(crate) struct MerchantEventsBatch {
    added: BTreeMap<String, Entry>,
    edited: HashMap<Vec<u8>, Entry>,
}

impl MerchantEventsBatch {
    /// Indexes the event stored at `seq` under its merchant.
    pub fn put(&mut self, event: &Event, merchant_id: &str, seq: u64) {
        self.added
            .entry(merchant_id.to_owned())
            .or_default()
            .push((event.id.clone(), seq));
    }

    /// Takes `event` (the retention sweep removed it) out of its group's entry.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn remove(&mut self, store: &Store, event: &Event) -> Result<(), StoreError> {
        let Some(merchant_id) = event.merchant_id() else {
            return Ok(());
        };
        let Some((key, _)) = store.locate_merchant_event(&merchant_id, &event.id)? else {
            return Ok(());
        };
        let entry = match self.edited.remove(&key) {
            Some(entry) => entry,
            None => match store.trees.merchant_events.get(&key)? {
                Some(bytes) => codec::decode(&bytes)?,
                None => return Ok(()),
            },
        };
        let kept: Entry = entry
            .into_iter()
            .filter(|(id, _)| *id != event.id)
            .collect();
        self.edited.insert(key, kept);
        Ok(())
    }

    /// The batch's writes: one key per merchant with new events, and the edited entries
    /// (removed once empty).
    ///
    /// # Errors
    /// [`StoreError`] on a codec failure.
    pub fn into_writes(
        self,
        b: &mut Batches,
        committed_at_ms: i64,
        lsn: u64,
    ) -> Result<(), StoreError> {
        for (key, entry) in self.edited {
            if entry.is_empty() {
                b.merchant_events.remove(key);
            } else {
                b.merchant_events.insert(key, codec::encode(&entry)?);
            }
        }
        for (merchant_id, entry) in self.added {
            b.merchant_events.insert(
                group_key(&merchant_id, committed_at_ms, lsn),
                codec::encode(&entry)?,
            );
        }
        Ok(())
    }
}

/// Which page of a merchant's events, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// From the newest.
    First,
    /// Older than the event with this id.
    After(String),
    /// Newer than the event with this id (the page just before it).
    Before(String),
}

impl Store {
    /// The group key and sequence number of the event `id` if it is `merchant_id`'s.
    fn locate_merchant_event(
        &self,
        merchant_id: &str,
        id: &str,
    ) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        let Some(time_ms) = id_time_ms(id) else {
            return Ok(None);
        };
        let prefix = merchant_prefix(merchant_id);
        let at = |ms: u64| u128::from(ms) << 64;
        // Where it almost always is first (committed at or just after its id's time), then
        // the skew before it.
        let windows = [
            (at(time_ms), at(time_ms.saturating_add(COMMIT_LAG_MS_MAX))),
            (at(time_ms.saturating_sub(CLOCK_SKEW_MS)), at(time_ms)),
        ];
        let mut budget = GROUPS_SEARCHED_MAX;
        for (from, until) in windows {
            for kv in self.trees.merchant_events.range(key_at(&prefix, from)..) {
                let (key, value) = kv?;
                match position(&key, &prefix) {
                    Some(p) if p <= until && budget > 0 => budget -= 1,
                    _ => break,
                }
                let entry: Entry = codec::decode(&value)?;
                if let Some((_, seq)) = entry.iter().find(|(found, _)| found == id) {
                    return Ok(Some((key.to_vec(), *seq)));
                }
            }
        }
        Ok(None)
    }

    /// The sequence number of the event `id` if it is `merchant_id`'s (`None` for an
    /// unknown id or another merchant's).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn merchant_event_seq(
        &self,
        merchant_id: &str,
        id: &str,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self
            .locate_merchant_event(merchant_id, id)?
            .map(|(_, seq)| seq))
    }

    /// Up to `limit` of the merchant's events on `page` as (id, sequence number), newest
    /// first. A cursor that is not the merchant's gives an empty page.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn merchant_events_page(
        &self,
        merchant_id: &str,
        page: &Page,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let prefix = merchant_prefix(merchant_id);
        let tree = &self.trees.merchant_events;
        let mut out: Entry = Vec::new();
        let cursor = match page {
            Page::First => None,
            Page::After(id) | Page::Before(id) => {
                match self.locate_merchant_event(merchant_id, id)? {
                    Some(found) => Some(found),
                    None => return Ok(out),
                }
            }
        };
        if let (Page::Before(_), Some((key, seq))) = (page, &cursor) {
            // Newer events: the rest of the cursor's group, then later groups, oldest
            // first; the `limit` nearest, answered newest first.
            for kv in tree.range(key.clone()..) {
                let (k, v) = kv?;
                if !k.starts_with(&prefix) || out.len() >= limit {
                    break;
                }
                let entry: Entry = codec::decode(&v)?;
                let newer = entry.into_iter().filter(|(_, s)| *s > *seq);
                out.extend(newer.take(limit - out.len()));
            }
            out.reverse();
            return Ok(out);
        }
        // Older events: down from the newest group (or the cursor's), one floor at a time.
        let (mut at, below_seq) = match &cursor {
            Some((key, seq)) => (position(key, &prefix), Some(*seq)),
            None => (Some(u128::MAX), None),
        };
        while let Some(probe) = at {
            if out.len() >= limit {
                break;
            }
            let Some((k, v)) = tree.floor(&key_at(&prefix, probe))? else {
                break;
            };
            let Some(found) = position(&k, &prefix) else {
                break;
            };
            let entry: Entry = codec::decode(&v)?;
            let older = entry
                .into_iter()
                .rev()
                .filter(|(_, s)| below_seq.is_none_or(|cursor| *s < cursor));
            out.extend(older.take(limit - out.len()));
            at = found.checked_sub(1);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Page;
    use crate::domain::ids::new_id;
    use crate::domain::write_set::WriteOp;
    use crate::store::tables::test_support::{commit, open};

    fn event(id: &str, merchant_id: &str) -> crate::domain::event::Event {
        let mut e = crate::store::tables::test_support::event(id, "pay_x", id);
        e.payload = serde_json::json!({ "merchant_id": merchant_id }).to_string();
        e
    }

    fn ids(page: Vec<(String, u64)>) -> Vec<String> {
        page.into_iter().map(|(id, _)| id).collect()
    }

    /// Five events of `m_a` in three groups, interleaved with `m_b`'s and `m_a2`'s.
    #[test]
    fn pages_run_newest_first_per_merchant_across_groups() {
        let (_dir, store) = open();
        let a: Vec<String> = (0..5).map(|_| new_id("evt_")).collect();
        let b: Vec<String> = (0..3).map(|_| new_id("evt_")).collect();
        commit(
            &store,
            vec![
                WriteOp::Event(event(&a[0], "m_a")),
                WriteOp::Event(event(&b[0], "m_b")),
                WriteOp::Event(event(&a[1], "m_a")),
            ],
        );
        commit(
            &store,
            vec![
                WriteOp::Event(event(&a[2], "m_a")),
                WriteOp::Event(event(&b[1], "m_a2")),
            ],
        );
        commit(
            &store,
            vec![
                WriteOp::Event(event(&a[3], "m_a")),
                WriteOp::Event(event(&a[4], "m_a")),
                WriteOp::Event(event(&b[2], "m_b")),
            ],
        );
        let a2 = store.merchant_event_seq("m_a", &a[2]).unwrap().unwrap();
        assert_eq!(store.event_at(a2).unwrap().unwrap().id, a[2]);
        assert_eq!(store.merchant_event_seq("m_b", &a[2]).unwrap(), None);
        assert_eq!(store.merchant_event_seq("m_a", "evt_nope").unwrap(), None);
        let page = |p: Page, n| ids(store.merchant_events_page("m_a", &p, n).unwrap());
        let newest_first: Vec<String> = a.iter().rev().cloned().collect();
        assert_eq!(page(Page::First, 10), newest_first);
        assert_eq!(page(Page::First, 2), newest_first[..2]);
        assert_eq!(
            page(Page::After(a[3].clone()), 2),
            [a[2].clone(), a[1].clone()]
        );
        assert_eq!(page(Page::After(a[1].clone()), 10), [a[0].clone()]);
        assert_eq!(page(Page::After(a[0].clone()), 10), Vec::<String>::new());
        assert_eq!(
            page(Page::Before(a[1].clone()), 10),
            [a[4].clone(), a[3].clone(), a[2].clone()]
        );
        assert_eq!(page(Page::Before(a[1].clone()), 1), [a[2].clone()]);
        assert_eq!(page(Page::Before(b[0].clone()), 10), Vec::<String>::new());
        assert_eq!(
            ids(store.merchant_events_page("m_b", &Page::First, 10).unwrap()),
            [b[2].clone(), b[0].clone()]
        );

        // The retention sweep removes two events of one group in one write set.
        let a3 = store.merchant_event_seq("m_a", &a[3]).unwrap().unwrap();
        let a4 = store.merchant_event_seq("m_a", &a[4]).unwrap().unwrap();
        commit(
            &store,
            vec![
                WriteOp::RemoveEvent {
                    seq: a3,
                    id: a[3].clone(),
                    dedupe_key: a[3].clone(),
                },
                WriteOp::RemoveEvent {
                    seq: a4,
                    id: a[4].clone(),
                    dedupe_key: a[4].clone(),
                },
                WriteOp::RemoveEvent {
                    seq: a2,
                    id: a[2].clone(),
                    dedupe_key: a[2].clone(),
                },
            ],
        );
        assert_eq!(store.merchant_event_seq("m_a", &a[3]).unwrap(), None);
        assert_eq!(page(Page::First, 10), [a[1].clone(), a[0].clone()]);
        assert_eq!(
            ids(store.merchant_events_page("m_b", &Page::First, 10).unwrap()),
            [b[2].clone(), b[0].clone()]
        );
    }
}
