//! The merchant's view of the outbox (`GET /v1/events`, DESIGN §2): one index tree over
//! the events of the journal, `merchant_events`: merchant id ++ `\0` ++ event id → the
//! event's sequence number (u64 BE), written in the event's own batch.
//!
//! One key per merchant event, and it serves both reads: an id (a cursor, or
//! `GET /v1/events/{id}`) is one lookup under its merchant's prefix, so another merchant's
//! id is simply absent; and event ids are ULIDs, so the prefix in key order is the
//! merchant's events in creation order (pages walk it down from the newest).
//!
//! Only events of a merchant event type with a `merchant_id` are indexed; the retention
//! sweep's removal of an event removes its entry ([`remove`]).

use crate::domain::event::Event;
use crate::store::tables::Batches;
use crate::store::{Store, StoreError};

/// A byte above every byte of an id (ids are ASCII), to probe just past a prefix.
const ABOVE_IDS: u8 = 0xff;

fn merchant_prefix(merchant_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(merchant_id.len() + 32);
    key.extend_from_slice(merchant_id.as_bytes());
    key.push(0);
    key
}

fn key(merchant_id: &str, id: &str) -> Vec<u8> {
    let mut key = merchant_prefix(merchant_id);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Indexes the event stored at `seq` under its merchant.
pub(crate) fn put(b: &mut Batches, event: &Event, merchant_id: &str, seq: u64) {
    b.merchant_events
        .insert(key(merchant_id, &event.id), seq.to_be_bytes());
}

/// Drops the entry of `event` (the retention sweep removed it).
pub(crate) fn remove(b: &mut Batches, event: &Event) {
    if let Some(merchant_id) = event.merchant_id() {
        b.merchant_events.remove(key(&merchant_id, &event.id));
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

fn seq_of(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

impl Store {
    /// The sequence number of the event `id` if it is `merchant_id`'s (`None` for an
    /// unknown id or another merchant's).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn merchant_event_seq(
        &self,
        merchant_id: &str,
        id: &str,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self
            .trees
            .merchant_events
            .get(key(merchant_id, id))?
            .and_then(|v| seq_of(&v)))
    }

    /// Up to `limit` of the merchant's events on `page` as (id, sequence number), newest
    /// first.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn merchant_events_page(
        &self,
        merchant_id: &str,
        page: &Page,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let prefix = merchant_prefix(merchant_id);
        let tree = &self.trees.merchant_events;
        let entry = |k: &[u8], v: &[u8]| -> Option<(String, u64)> {
            let id = k.strip_prefix(prefix.as_slice())?;
            Some((String::from_utf8_lossy(id).into_owned(), seq_of(v)?))
        };
        let mut out = Vec::new();
        if let Page::Before(id) = page {
            // Newer ids sort after the cursor: the first `limit` of them, then newest first.
            let mut start = key(merchant_id, id);
            start.push(0);
            for kv in tree.range(start..) {
                let (k, v) = kv?;
                let Some(found) = entry(&k, &v) else {
                    break;
                };
                if out.len() >= limit {
                    break;
                }
                out.push(found);
            }
            out.reverse();
            return Ok(out);
        }
        // Down from the newest (or from just below the cursor), one floor at a time: the
        // greatest key below `probe` is the next older event.
        let mut probe = match page {
            Page::After(id) => key(merchant_id, id),
            _ => {
                let mut p = prefix.clone();
                p.push(ABOVE_IDS);
                p
            }
        };
        while out.len() < limit {
            let Some(below) = just_below(&probe) else {
                break;
            };
            let Some((k, v)) = tree.floor(&below)? else {
                break;
            };
            let Some(found) = entry(&k, &v) else {
                break;
            };
            out.push(found);
            probe = k.to_vec();
        }
        Ok(out)
    }
}

/// A key below `key` and above every key of ASCII ids that is below it: the last byte one
/// less, then [`ABOVE_IDS`] (`None` when nothing can be below).
fn just_below(key: &[u8]) -> Option<Vec<u8>> {
    let (&last, rest) = key.split_last()?;
    let mut below = rest.to_vec();
    if last == 0 {
        return (!below.is_empty()).then_some(below);
    }
    below.push(last - 1);
    below.push(ABOVE_IDS);
    Some(below)
}

#[cfg(test)]
mod tests {
    use super::Page;
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

    #[test]
    fn pages_run_newest_first_per_merchant() {
        let (_dir, store) = open();
        let mut ops = Vec::new();
        for i in 1..=5 {
            ops.push(WriteOp::Event(event(&format!("evt_a{i}"), "m_a")));
            ops.push(WriteOp::Event(event(&format!("evt_b{i}"), "m_b")));
        }
        // A merchant whose id extends another's stays apart.
        ops.push(WriteOp::Event(event("evt_c1", "m_a2")));
        commit(&store, ops);
        let a3 = store.merchant_event_seq("m_a", "evt_a3").unwrap().unwrap();
        assert_eq!(store.event_at(a3).unwrap().unwrap().id, "evt_a3");
        assert_eq!(store.merchant_event_seq("m_b", "evt_a3").unwrap(), None);
        let page = |p: Page, n| ids(store.merchant_events_page("m_a", &p, n).unwrap());
        assert_eq!(page(Page::First, 2), ["evt_a5", "evt_a4"]);
        assert_eq!(page(Page::After("evt_a3".into()), 10), ["evt_a2", "evt_a1"]);
        assert_eq!(
            page(Page::Before("evt_a3".into()), 10),
            ["evt_a5", "evt_a4"]
        );
        assert_eq!(page(Page::Before("evt_a3".into()), 1), ["evt_a4"]);
        assert_eq!(page(Page::After("evt_a1".into()), 10), Vec::<String>::new());
        assert_eq!(
            ids(store.merchant_events_page("m_b", &Page::First, 10).unwrap()),
            ["evt_b5", "evt_b4", "evt_b3", "evt_b2", "evt_b1"]
        );
        commit(
            &store,
            vec![WriteOp::RemoveEvent {
                seq: a3,
                id: "evt_a3".into(),
                dedupe_key: "evt_a3".into(),
            }],
        );
        assert_eq!(store.merchant_event_seq("m_a", "evt_a3").unwrap(), None);
        assert_eq!(
            page(Page::First, 10),
            ["evt_a5", "evt_a4", "evt_a2", "evt_a1"]
        );
    }

    #[test]
    fn just_below_lands_between_keys() {
        assert_eq!(super::just_below(b"ab").unwrap(), b"aa\xff".to_vec());
        assert!(super::just_below(b"a\0").unwrap() == b"a".to_vec());
        assert!(super::just_below(b"").is_none());
    }
}
