//! Deliveries and settings in the store: the fan-out hook the committer calls when it
//! accepts a new event, the index upkeep of every delivery write, and the reads the
//! dispatcher and the admin API need.
//!
//! Trees: `deliveries` (id → Delivery), `deliveries_due` (channel tag ++ due_at_ms BE ++
//! id → ∅, only `pending` and `retry_scheduled`: per channel, so a channel at its
//! in-flight bound costs the dispatcher nothing however long its backlog), `deliveries_by_status` (status tag ++ id → ∅),
//! `deliveries_by_event` (event id \0 delivery id → ∅), `settings` (key → JSON text).
//!
//! The store stays generic: what an event fans out into is decided by a [`FanOut`]
//! installed at start-up (the notifier's settings), and the store only writes the records
//! it is given, in the same batch as the event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::domain::delivery::{Channel, Delivery, DeliveryStatus};
use crate::domain::event::Event;
use crate::store::{codec, seq_of, Batches, Store, StoreError};

/// Decides which deliveries a new event creates. Called by the committer thread inside a
/// group commit, so it must be pure computation: no I/O, no waiting.
pub trait FanOut: Send + Sync {
    /// The deliveries of `event` (stored at sequence `seq`), given the settings now.
    fn deliveries_for(&self, event: &Event, seq: u64, now_ms: i64) -> Vec<Delivery>;
    /// A commit that created `count` deliveries is durable (wake the dispatcher).
    fn created(&self, count: usize);
}

/// The store's delivery state outside sled: the fan-out hook and live counts per status.
#[derive(Default)]
pub struct DeliveryIndex {
    fan_out: OnceLock<Arc<dyn FanOut>>,
    counts: [AtomicI64; 6],
}

/// What one group commit does to deliveries: the latest record of each delivery written
/// in the batch (later writes of the same id see earlier ones), count deltas, and how
/// many were created.
#[derive(Default)]
pub(super) struct BatchView {
    written: HashMap<String, Delivery>,
    deltas: [i64; 6],
    created: usize,
}

/// `deliveries_due` key: the channel, the due time (big-endian, so a range scan yields the
/// earliest first), then the id.
fn due_key(channel: Channel, due_at_ms: i64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + id.len());
    key.push(channel.index() as u8);
    key.extend_from_slice(&due_at_ms.max(0).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

fn status_key(status: DeliveryStatus, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + id.len());
    key.push(status.index() as u8);
    key.extend_from_slice(id.as_bytes());
    key
}

fn event_key(event_id: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(event_id.len() + 1 + id.len());
    key.extend_from_slice(event_id.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

impl DeliveryIndex {
    /// Counts every delivery by status (once, at open).
    pub(super) fn load_counts(&self, by_status: &sled::Tree) -> Result<(), StoreError> {
        for key in by_status.iter().keys() {
            let key = key?;
            if let Some(count) = key.first().and_then(|t| self.counts.get(usize::from(*t))) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// After a durable commit: apply the batch's count deltas and report new deliveries.
    pub(super) fn committed(&self, view: BatchView) {
        for (count, delta) in self.counts.iter().zip(view.deltas) {
            count.fetch_add(delta, Ordering::Relaxed);
        }
        if view.created > 0 {
            if let Some(fan_out) = self.fan_out.get() {
                fan_out.created(view.created);
            }
        }
    }
}

impl Store {
    /// Installs the fan-out policy; events committed before it is set create no deliveries.
    /// Only the first call takes effect.
    pub fn set_fan_out(&self, fan_out: Arc<dyn FanOut>) {
        let _ = self.deliveries_index.fan_out.set(fan_out);
    }

    /// Fans a newly accepted event out into its deliveries, in the same batch.
    pub(super) fn fan_out_event(
        &self,
        b: &mut Batches,
        view: &mut BatchView,
        event: &Event,
        seq: u64,
    ) -> Result<(), StoreError> {
        let Some(fan_out) = self.deliveries_index.fan_out.get() else {
            return Ok(());
        };
        let now_ms = crate::domain::time::now_ms();
        for delivery in fan_out.deliveries_for(event, seq, now_ms) {
            view.created += 1;
            self.index_delivery(b, view, &delivery, None)?;
        }
        Ok(())
    }

    /// Writes `delivery` and keeps its indexes in step with the previous record (read from
    /// this batch first, then from the tree).
    pub(super) fn put_delivery(
        &self,
        b: &mut Batches,
        view: &mut BatchView,
        delivery: &Delivery,
    ) -> Result<(), StoreError> {
        let previous = match view.written.get(&delivery.id) {
            Some(d) => Some(d.clone()),
            None => self.delivery(&delivery.id)?,
        };
        self.index_delivery(b, view, delivery, previous)
    }

    /// Writes `delivery` over `previous` (`None`: a new record, nothing to read).
    fn index_delivery(
        &self,
        b: &mut Batches,
        view: &mut BatchView,
        delivery: &Delivery,
        previous: Option<Delivery>,
    ) -> Result<(), StoreError> {
        let id = delivery.id.as_str();
        if let Some(old) = &previous {
            if let Some(due) = old.due_at_ms() {
                b.deliveries_due.remove(due_key(old.channel, due, id));
            }
            b.deliveries_by_status.remove(status_key(old.status, id));
            view.deltas[old.status.index()] -= 1;
        } else {
            b.deliveries_by_event
                .insert(event_key(&delivery.event_id, id), &[]);
        }
        if let Some(due) = delivery.due_at_ms() {
            b.deliveries_due
                .insert(due_key(delivery.channel, due, id), &[]);
        }
        b.deliveries_by_status
            .insert(status_key(delivery.status, id), &[]);
        view.deltas[delivery.status.index()] += 1;
        b.deliveries.insert(id.as_bytes(), codec::encode(delivery)?);
        view.written.insert(delivery.id.clone(), delivery.clone());
        Ok(())
    }

    /// The delivery `id`, as last committed.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        self.trees
            .deliveries
            .get(id.as_bytes())?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// Ids of up to `limit` waiting deliveries of `channel` due at or before `now_ms`,
    /// earliest first.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn due_delivery_ids(
        &self,
        channel: Channel,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let start = vec![channel.index() as u8];
        let end = due_key(channel, now_ms.saturating_add(1), "");
        let mut out = Vec::new();
        for key in self
            .trees
            .deliveries_due
            .range(start..end)
            .keys()
            .take(limit)
        {
            let key = key?;
            out.push(String::from_utf8_lossy(&key[9..]).into_owned());
        }
        Ok(out)
    }

    /// Ids of up to `limit` deliveries with `status`, without reading the records.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn delivery_ids_with_status(
        &self,
        status: DeliveryStatus,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let prefix = [status.index() as u8];
        let mut out = Vec::new();
        for key in self
            .trees
            .deliveries_by_status
            .scan_prefix(prefix)
            .keys()
            .take(limit)
        {
            out.push(String::from_utf8_lossy(&key?[1..]).into_owned());
        }
        Ok(out)
    }

    /// Up to `limit` deliveries with `status` and id > `after`, in id order.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn deliveries_with_status(
        &self,
        status: DeliveryStatus,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let tag = status.index() as u8;
        let start = match after {
            Some(after) => {
                let mut k = status_key(status, after);
                k.push(0);
                k
            }
            None => vec![tag],
        };
        let mut out = Vec::new();
        for key in self.trees.deliveries_by_status.range(start..) {
            let (key, _) = key?;
            if key.first() != Some(&tag) || out.len() >= limit {
                break;
            }
            if let Some(d) = self.delivery(&String::from_utf8_lossy(&key[1..]))? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Up to `limit` deliveries with id > `after`, in id order (ids are time-ordered).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn deliveries_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let start = match after {
            Some(after) => {
                let mut k = after.as_bytes().to_vec();
                k.push(0);
                k
            }
            None => Vec::new(),
        };
        self.trees
            .deliveries
            .range(start..)
            .take(limit)
            .map(|kv| codec::decode(&kv?.1))
            .collect()
    }

    /// Every delivery of the event `event_id` (a handful: one per channel target).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn deliveries_of_event(&self, event_id: &str) -> Result<Vec<Delivery>, StoreError> {
        let mut prefix = event_id.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for key in self.trees.deliveries_by_event.scan_prefix(&prefix).keys() {
            let key = key?;
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if let Some(d) = self.delivery(&id)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The outbox event stored at `seq`.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn event_at(&self, seq: u64) -> Result<Option<Event>, StoreError> {
        self.trees
            .events
            .get(seq.to_be_bytes())?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// The sequence number of the newest event (0 when there is none).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn last_event_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .trees
            .events
            .last()?
            .map(|(k, _)| seq_of(&k))
            .unwrap_or(0))
    }

    /// A persisted setting's JSON text.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .trees
            .settings
            .get(key.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Deliveries per status, as of the last durable commit.
    pub fn delivery_counts(&self) -> [(DeliveryStatus, i64); 6] {
        DeliveryStatus::ALL.map(|s| {
            let count = self.deliveries_index.counts[s.index()].load(Ordering::Relaxed);
            (s, count)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_channel_then_time_then_id() {
        let w = Channel::Webhook;
        assert!(due_key(w, 5, "dlv_b") < due_key(w, 6, "dlv_a"));
        assert!(due_key(w, 5, "dlv_a") < due_key(w, 5, "dlv_b"));
        assert!(due_key(Channel::Telegram, 9, "x") < due_key(w, 1, "x"));
        assert!(due_key(w, -3, "x") == due_key(w, 0, "x"));
        assert_eq!(&due_key(w, 9, "dlv_1")[9..], b"dlv_1");
    }
}
