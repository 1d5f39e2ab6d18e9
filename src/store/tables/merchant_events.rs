//! The merchant's view of the outbox (`GET /v1/events`, DESIGN §2): two index trees over
//! the events of the journal, written in the event's own batch.
//!
//! - `merchant_events`: merchant id ++ `\0` ++ (`u64::MAX` − event sequence) BE → event id.
//!   The inverted sequence makes a forward scan newest first, as lists are answered.
//! - `merchant_event_ids`: event id → its `merchant_events` key, so an id (a cursor, or
//!   `GET /v1/events/{id}`) finds its merchant and sequence without a scan.
//!
//! Only events of a merchant event type with a `merchant_id` are indexed; the retention
//! sweep's removal of an event removes its entries ([`remove`]).

use crate::domain::event::Event;
use crate::store::tables::Batches;
use crate::store::{Store, StoreError};

fn merchant_prefix(merchant_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(merchant_id.len() + 9);
    key.extend_from_slice(merchant_id.as_bytes());
    key.push(0);
    key
}

fn list_key(merchant_id: &str, seq: u64) -> Vec<u8> {
    let mut key = merchant_prefix(merchant_id);
    key.extend_from_slice(&(u64::MAX - seq).to_be_bytes());
    key
}

/// The sequence number in a `merchant_events` key of `prefix`.
fn seq_of(key: &[u8], prefix: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    let bytes: [u8; 8] = rest.try_into().ok()?;
    Some(u64::MAX - u64::from_be_bytes(bytes))
}

/// Indexes the event stored at `seq`, if it is a merchant's.
pub(crate) fn put(b: &mut Batches, event: &Event, merchant_id: &str, seq: u64) {
    let key = list_key(merchant_id, seq);
    b.merchant_event_ids
        .insert(event.id.as_bytes(), key.clone());
    b.merchant_events.insert(key, event.id.as_bytes());
}

/// Drops the entries of the event `id` (the retention sweep).
///
/// # Errors
/// [`StoreError`] on an I/O failure.
pub(crate) fn remove(store: &Store, b: &mut Batches, id: &str) -> Result<(), StoreError> {
    if let Some(key) = store.trees.merchant_event_ids.get(id.as_bytes())? {
        b.merchant_events.remove(key.to_vec());
        b.merchant_event_ids.remove(id.as_bytes());
    }
    Ok(())
}

/// Which page of a merchant's events, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// From the newest.
    First,
    /// Older than the event of this sequence number.
    After(u64),
    /// Newer than the event of this sequence number (the page just before it).
    Before(u64),
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
        let Some(key) = self.trees.merchant_event_ids.get(id.as_bytes())? else {
            return Ok(None);
        };
        Ok(seq_of(&key, &merchant_prefix(merchant_id)))
    }

    /// Up to `limit` of the merchant's event sequence numbers on `page`, newest first.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn merchant_event_seqs(
        &self,
        merchant_id: &str,
        page: Page,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let prefix = merchant_prefix(merchant_id);
        let tree = &self.trees.merchant_events;
        let mut out = Vec::new();
        match page {
            Page::First | Page::After(_) => {
                let start = match page {
                    Page::After(seq) if seq > 0 => list_key(merchant_id, seq - 1),
                    Page::After(_) => return Ok(out),
                    _ => prefix.clone(),
                };
                for kv in tree.range(start..) {
                    let (key, _) = kv?;
                    let Some(seq) = seq_of(&key, &prefix) else {
                        break;
                    };
                    if out.len() >= limit {
                        break;
                    }
                    out.push(seq);
                }
            }
            Page::Before(seq) => {
                // Newer events have smaller keys: walk down from just below the cursor's
                // key, one floor at a time, and answer them newest first.
                let mut next = seq.checked_add(1);
                while let Some(at) = next {
                    if out.len() >= limit {
                        break;
                    }
                    let Some((key, _)) = tree.floor(&list_key(merchant_id, at))? else {
                        break;
                    };
                    let Some(found) = seq_of(&key, &prefix) else {
                        break;
                    };
                    out.push(found);
                    next = found.checked_add(1);
                }
                out.reverse();
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Page;
    use crate::domain::write_set::WriteOp;
    use crate::store::tables::test_support::{commit, open};

    fn event(id: &str, merchant_id: &str) -> crate::domain::event::Event {
        let mut e = crate::store::tables::test_support::event(id, "pay_x", id);
        e.kind = "payment.succeeded".into();
        e.payload = serde_json::json!({ "merchant_id": merchant_id }).to_string();
        e
    }

    #[test]
    fn pages_run_newest_first_per_merchant() {
        let (_dir, store) = open();
        let mut ops = Vec::new();
        for i in 1..=5 {
            ops.push(WriteOp::Event(event(&format!("evt_a{i}"), "m_a")));
            ops.push(WriteOp::Event(event(&format!("evt_b{i}"), "m_b")));
        }
        commit(&store, ops);
        let a3 = store.merchant_event_seq("m_a", "evt_a3").unwrap().unwrap();
        assert_eq!(store.merchant_event_seq("m_b", "evt_a3").unwrap(), None);
        let first = store.merchant_event_seqs("m_a", Page::First, 2).unwrap();
        assert_eq!(first.len(), 2);
        assert!(first[0] > first[1]);
        let after = store
            .merchant_event_seqs("m_a", Page::After(a3), 10)
            .unwrap();
        assert_eq!(after.len(), 2);
        assert!(after.iter().all(|s| *s < a3));
        let before = store
            .merchant_event_seqs("m_a", Page::Before(a3), 10)
            .unwrap();
        assert_eq!(before.len(), 2);
        assert!(before[0] > before[1] && before[1] > a3);
        let before_one = store
            .merchant_event_seqs("m_a", Page::Before(a3), 1)
            .unwrap();
        assert_eq!(before_one, vec![before[1]]);
        for seq in first.iter().chain(&after).chain(&before) {
            let e = store.event_at(*seq).unwrap().unwrap();
            assert!(e.id.starts_with("evt_a"));
        }
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
            store
                .merchant_event_seqs("m_a", Page::First, 10)
                .unwrap()
                .len(),
            4
        );
    }
}
