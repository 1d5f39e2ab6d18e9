//! The merchant's view of the outbox (`GET /v1/events`, DESIGN §2): the `merchant_events`
//! list ([`super::merchant_index`]), written in the events' own batch. An event is listed
//! by the time of its ULID id (made by the state machine with the event), so an id alone
//! finds its place. Only events of a merchant event type with a `merchant_id` are listed;
//! the retention sweep's removal of an event takes it out ([`MerchantEvents::remove`]).

use crate::domain::event::Event;
use crate::store::tables::merchant_index::{Cursor, Item, ListBatch, MerchantList};
use crate::store::tables::Batches;
use crate::store::{Store, StoreError};

/// The time of a ULID event id (`evt_` + 26 characters), in Unix ms.
fn id_time_ms(id: &str) -> Option<u64> {
    let text = id.strip_prefix(crate::domain::ids::prefix::EVENT)?;
    let ulid = ulid::Ulid::from_string(&text.to_ascii_uppercase()).ok()?;
    Some(ulid.timestamp_ms())
}

/// What one group commit does to the merchants' event lists.
#[derive(Default)]
pub(crate) struct MerchantEvents {
    list: ListBatch,
}

impl MerchantEvents {
    /// Lists the event stored at `seq` under its merchant (an event whose id is not a
    /// ULID, which only tests make, is not listed).
    pub fn put(&mut self, event: &Event, merchant_id: &str, seq: u64) {
        if let Some(time_ms) = id_time_ms(&event.id) {
            let id = event.id.clone();
            self.list.put(merchant_id, Item { time_ms, seq, id });
        }
    }

    /// Takes `event` (the retention sweep removed it) out of its merchant's list.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn remove(&mut self, store: &Store, event: &Event) -> Result<(), StoreError> {
        let (Some(merchant_id), Some(time_ms)) = (event.merchant_id(), id_time_ms(&event.id))
        else {
            return Ok(());
        };
        let tree = &store.trees.merchant_events;
        self.list.remove(tree, &merchant_id, time_ms, &event.id)
    }

    /// The batch's writes into the group's batches (log record `lsn`).
    ///
    /// # Errors
    /// [`StoreError`] on a codec failure.
    pub fn into_writes(self, b: &mut Batches, lsn: u64) -> Result<(), StoreError> {
        self.list.into_writes(&mut b.merchant_events, lsn)
    }
}

impl Store {
    /// Where the event `id` stands in `merchant_id`'s list (its sequence number is
    /// `cursor.item.seq`); `None` for an unknown id or another merchant's.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn merchant_event(
        &self,
        merchant_id: &str,
        id: &str,
    ) -> Result<Option<Cursor>, StoreError> {
        let Some(time_ms) = id_time_ms(id) else {
            return Ok(None);
        };
        self.list_cursor(MerchantList::Events, merchant_id, time_ms, id)
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::ids::new_id;
    use crate::domain::write_set::WriteOp;
    use crate::store::tables::merchant_index::{Item, ListPage, MerchantList, Window};
    use crate::store::tables::test_support::{commit, open};
    use crate::store::{Store, StoreError};

    fn event(id: &str, merchant_id: &str) -> crate::domain::event::Event {
        let mut e = crate::store::tables::test_support::event(id, "pay_x", id);
        e.payload = serde_json::json!({ "merchant_id": merchant_id }).to_string();
        e
    }

    fn seq(store: &Store, merchant_id: &str, id: &str) -> Option<u64> {
        let cursor = store.merchant_event(merchant_id, id).unwrap();
        cursor.map(|c| c.item.seq)
    }

    /// A page of `merchant_id`'s events: `After`/`Before` the event id given, or the first.
    fn page(store: &Store, merchant_id: &str, at: Option<(bool, &str)>, n: usize) -> Vec<String> {
        let page = match at {
            None => ListPage::First,
            Some((after, id)) => {
                let Some(cursor) = store.merchant_event(merchant_id, id).unwrap() else {
                    return Vec::new();
                };
                if after {
                    ListPage::After(cursor)
                } else {
                    ListPage::Before(cursor)
                }
            }
        };
        let pick = |item: &Item| Ok::<_, StoreError>(Some(item.id.clone()));
        store
            .list_page(
                MerchantList::Events,
                merchant_id,
                &page,
                Window::default(),
                n,
                pick,
            )
            .unwrap()
            .data
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
        let a2 = seq(&store, "m_a", &a[2]).unwrap();
        assert_eq!(store.event_at(a2).unwrap().unwrap().id, a[2]);
        assert_eq!(seq(&store, "m_b", &a[2]), None);
        assert_eq!(seq(&store, "m_a", "evt_nope"), None);
        let page_a = |at: Option<(bool, &str)>, n| page(&store, "m_a", at, n);
        let newest_first: Vec<String> = a.iter().rev().cloned().collect();
        assert_eq!(page_a(None, 10), newest_first);
        assert_eq!(page_a(None, 2), newest_first[..2]);
        assert_eq!(page_a(Some((true, &a[3])), 2), [a[2].clone(), a[1].clone()]);
        assert_eq!(page_a(Some((true, &a[1])), 10), [a[0].clone()]);
        assert_eq!(page_a(Some((true, &a[0])), 10), Vec::<String>::new());
        assert_eq!(
            page_a(Some((false, &a[1])), 10),
            [a[4].clone(), a[3].clone(), a[2].clone()]
        );
        assert_eq!(page_a(Some((false, &a[1])), 1), [a[2].clone()]);
        assert_eq!(page_a(Some((false, &b[0])), 10), Vec::<String>::new());
        assert_eq!(page(&store, "m_b", None, 10), [b[2].clone(), b[0].clone()]);

        // The retention sweep removes two events of one group in one write set.
        let a3 = seq(&store, "m_a", &a[3]).unwrap();
        let a4 = seq(&store, "m_a", &a[4]).unwrap();
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
        assert_eq!(seq(&store, "m_a", &a[3]), None);
        assert_eq!(page_a(None, 10), [a[1].clone(), a[0].clone()]);
        assert_eq!(page(&store, "m_b", None, 10), [b[2].clone(), b[0].clone()]);
    }
}
