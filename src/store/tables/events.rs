//! Outbox events: kept in the group's journal record ([`super::journal`]), with
//! `event_dedupe` (dedupe key → event id) for the events that are not a record's own
//! transition.

use std::collections::HashSet;

use crate::domain::event::Event;
use crate::store::tables::journal::{self, JournalBatch};
use crate::store::tables::merchant_events::MerchantEvents;
use crate::store::tables::Batches;
use crate::store::{Store, StoreError};

/// The writes of one group's events: each new event goes into the group's journal record
/// under the next sequence number, unless it is a duplicate.
pub(crate) struct EventWrites<'a> {
    /// Dedupe keys seen in this group.
    seen: HashSet<&'a str>,
    /// The next event's sequence number.
    pub next_seq: u64,
    /// New events in this group.
    pub written: usize,
}

impl<'a> EventWrites<'a> {
    pub fn new(next_seq: u64) -> EventWrites<'a> {
        EventWrites {
            seen: HashSet::new(),
            next_seq,
            written: 0,
        }
    }

    /// Appends `event` to the group's journal record and returns its sequence number, or
    /// `None` for a duplicate. `transition`: the event is the transition of a record this
    /// write set writes, which that record's state guards (a payment leaves `processing`
    /// once per attempt), so it is neither looked up in nor added to `event_dedupe`; any
    /// other event is dropped when its `dedupe_key` was seen before.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn put(
        &mut self,
        store: &Store,
        b: &mut Batches,
        journal: &mut JournalBatch,
        event: &'a Event,
        transition: bool,
    ) -> Result<Option<u64>, StoreError> {
        let duplicate = !self.seen.insert(&event.dedupe_key)
            || (!transition
                && store
                    .trees
                    .event_dedupe
                    .contains_key(event.dedupe_key.as_bytes())?);
        if duplicate {
            return Ok(None);
        }
        journal.record.events.push(Some(event.clone()));
        if !transition {
            b.event_dedupe
                .insert(event.dedupe_key.as_bytes(), event.id.as_bytes());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.written += 1;
        Ok(Some(seq))
    }
}

/// The retention sweep's removal of the event numbered `seq`, with its `dedupe_key` entry
/// if that still names it, and its place in its merchant's index.
///
/// # Errors
/// [`StoreError`] on an I/O or codec failure.
pub(crate) fn remove(
    store: &Store,
    b: &mut Batches,
    (journal, by_merchant): (&mut JournalBatch, &mut MerchantEvents),
    seq: u64,
    id: &str,
    dedupe_key: &str,
) -> Result<(), StoreError> {
    if let Some(event) = journal.remove_event(&store.trees.journal, seq)? {
        by_merchant.remove(store, &event)?;
    }
    let names = store.trees.event_dedupe.get(dedupe_key.as_bytes())?;
    if names.as_deref() == Some(id.as_bytes()) {
        b.event_dedupe.remove(dedupe_key.as_bytes());
    }
    Ok(())
}

impl Store {
    /// Up to `limit` outbox events with sequence > `after_seq`, oldest first, with their
    /// sequence numbers.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn events_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        journal::events_after(&self.trees, after_seq, limit)
    }

    /// The outbox event stored at `seq`.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn event_at(&self, seq: u64) -> Result<Option<Event>, StoreError> {
        journal::event_at(&self.trees, seq)
    }

    /// The sequence number of the newest event (0 when there is none).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn last_event_seq(&self) -> Result<u64, StoreError> {
        Ok(journal::next_seq(&self.trees)?.0 - 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::payment::PaymentStatus;
    use crate::domain::write_set::WriteOp;
    use crate::store::tables::test_support::{commit, event, open, payment};

    /// An event written with the record whose transition it is takes no dedupe entry;
    /// any other event is kept once per dedupe key, across groups.
    #[test]
    fn transitions_skip_the_dedupe_index_and_other_events_are_deduplicated() {
        let (_dir, store) = open();
        let paid = payment("o-1", PaymentStatus::Succeeded);
        let transition = event("evt_1", &paid.id, "payment.succeeded:x");
        commit(
            &store,
            vec![WriteOp::Payment(paid.clone()), WriteOp::Event(transition)],
        );
        assert!(store
            .trees
            .event_dedupe
            .get(b"payment.succeeded:x")
            .unwrap()
            .is_none());
        commit(
            &store,
            vec![WriteOp::Event(event("evt_2", "pay_other", "alert:1"))],
        );
        commit(
            &store,
            vec![WriteOp::Event(event("evt_3", "pay_other", "alert:1"))],
        );
        assert_eq!(
            store.trees.event_dedupe.get(b"alert:1").unwrap().as_deref(),
            Some(b"evt_2".as_slice())
        );
        let ids: Vec<(u64, String)> = store
            .events_after(0, 10)
            .unwrap()
            .into_iter()
            .map(|(seq, e)| (seq, e.id))
            .collect();
        assert_eq!(ids, vec![(1, "evt_1".to_owned()), (2, "evt_2".to_owned())]);
        assert_eq!(store.last_event_seq().unwrap(), 2);
        assert_eq!(store.event_at(2).unwrap().unwrap().id, "evt_2");
    }

    /// The retention sweep's removal blanks one event: the others keep their numbers, and
    /// its dedupe entry goes with it.
    #[test]
    fn a_removed_event_leaves_its_neighbours_and_their_numbers() {
        let (_dir, store) = open();
        commit(
            &store,
            vec![
                WriteOp::Event(event("evt_1", "e", "d1")),
                WriteOp::Event(event("evt_2", "e", "d2")),
                WriteOp::Event(event("evt_3", "e", "d3")),
            ],
        );
        commit(
            &store,
            vec![WriteOp::RemoveEvent {
                seq: 2,
                id: "evt_2".into(),
                dedupe_key: "d2".into(),
            }],
        );
        let left: Vec<u64> = store
            .events_after(0, 10)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(left, vec![1, 3]);
        assert_eq!(store.event_at(2).unwrap(), None);
        assert_eq!(store.events_after(1, 10).unwrap()[0].0, 3);
        assert!(store.trees.event_dedupe.get(b"d2").unwrap().is_none());
        assert!(store.trees.event_dedupe.get(b"d1").unwrap().is_some());
    }
}
