//! Deliveries in the store: the fan-out hook the committer calls when it
//! accepts a new event, the index upkeep of every delivery write, and the reads the
//! dispatcher and the admin API need.
//!
//! Trees: `fanout` (first event sequence of a group commit → the [`FanOutPlan`]s of that
//! group's new events, with their sequences: what each event fans out to, written in the
//! event's batch, one key per group commit), `deliveries` (id → Delivery), `deliveries_due` (channel
//! tag ++ due_at_ms BE ++ id → ∅, only `pending` and `retry_scheduled`: per channel, so a
//! channel at its in-flight bound costs the dispatcher nothing however long its backlog),
//! `deliveries_by_status` (status tag ++ id → ∅).
//!
//! Why a plan: a payment's write set must stay small (the group commit is the payment
//! path), so the committer writes one compact record per group commit, not four keys per
//! delivery; the dispatcher expands plans into delivery records in its own commits, which
//! yield to payments when the committer is busy. A planned delivery is already a
//! delivery: it has its id, it is counted and listed as `pending`, and it survives a crash.
//!
//! The store stays generic: what an event fans out into is decided by a [`FanOut`]
//! installed at start-up (the notifier's settings).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::domain::delivery::{
    delivery_id, Channel, Delivery, DeliveryStatus, FanOutPlan, TARGETS_PER_EVENT_MAX,
};
use crate::domain::event::Event;
use crate::domain::webhook_endpoint::WebhookEndpoint;
use crate::store::{codec, Batches, Store, StoreError};

/// Plans read per admin lookup that must include planned deliveries (lists, one id): the
/// dispatcher expands plans within milliseconds, so only a backlog makes this many.
pub const PLAN_SCAN_MAX: usize = 4096;

/// Decides which deliveries a new event creates. Called by the committer thread inside a
/// group commit, so it must be pure computation: no I/O, no waiting.
pub trait FanOut: Send + Sync {
    /// The (channel, target) of each delivery of `event`, given the settings now and, for
    /// a merchant's event, that merchant's webhook endpoints as committed.
    fn targets_for(&self, event: &Event, endpoints: &[WebhookEndpoint]) -> Vec<(Channel, String)>;
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
pub(crate) struct BatchView {
    written: HashMap<String, Delivery>,
    deltas: [i64; 6],
    created: usize,
    /// The plans of the events this batch accepted, written as one record at its end.
    plans: Vec<(u64, FanOutPlan)>,
}

/// The value of a `fanout` record: planned events, in sequence order.
type PlanGroup = Vec<(u64, FanOutPlan)>;

/// `deliveries_due` key: the channel, the due time (big-endian, so a range scan yields the
/// earliest first), then the id.
fn due_key(channel: Channel, due_at_ms: i64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + id.len());
    key.push(channel.tag());
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

impl DeliveryIndex {
    /// Counts every delivery by status, planned ones as `pending` (once, at open).
    pub(crate) fn load_counts(
        &self,
        by_status: &super::tree::Tree,
        fanout: &super::tree::Tree,
    ) -> Result<(), StoreError> {
        for key in by_status.iter().keys() {
            let key = key?;
            if let Some(count) = key.first().and_then(|t| self.counts.get(usize::from(*t))) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        for value in fanout.iter().values() {
            let group: PlanGroup = codec::decode(&value?)?;
            let targets: usize = group.iter().map(|(_, p)| p.targets.len()).sum();
            self.counts[DeliveryStatus::Pending.index()]
                .fetch_add(targets as i64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// After a durable commit: apply the batch's count deltas and report new deliveries.
    pub(crate) fn committed(&self, view: BatchView) {
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

    /// Fans a newly accepted event out into its deliveries: its plan joins the batch's
    /// plan record ([`Store::write_plans`]). `merchant_id`: the merchant whose event it
    /// is, whose endpoints the fan-out is given (read from the committed endpoints, so the
    /// deliveries to them are in the event's own batch, DESIGN §1).
    pub(crate) fn fan_out_event(
        &self,
        view: &mut BatchView,
        event: &Event,
        merchant_id: Option<&str>,
        seq: u64,
    ) -> Result<(), StoreError> {
        let Some(fan_out) = self.deliveries_index.fan_out.get() else {
            return Ok(());
        };
        let endpoints = match merchant_id {
            Some(merchant_id) => self.webhook_endpoints(merchant_id)?,
            None => Vec::new(),
        };
        let mut targets = fan_out.targets_for(event, &endpoints);
        if targets.is_empty() {
            return Ok(());
        }
        targets.truncate(TARGETS_PER_EVENT_MAX);
        let plan = FanOutPlan {
            event_id: event.id.clone(),
            event_kind: event.kind.clone(),
            created_at_ms: event.created_at_ms,
            targets,
        };
        view.created += plan.targets.len();
        view.deltas[DeliveryStatus::Pending.index()] += plan.targets.len() as i64;
        view.plans.push((seq, plan));
        Ok(())
    }

    /// Writes the batch's plans as one record keyed by the first planned sequence.
    pub(crate) fn write_plans(
        &self,
        b: &mut Batches,
        view: &mut BatchView,
    ) -> Result<(), StoreError> {
        let Some((first, _)) = view.plans.first() else {
            return Ok(());
        };
        let key = first.to_be_bytes();
        b.fanout.insert(key, codec::encode(&view.plans)?);
        Ok(())
    }

    /// Drops every planned event with a sequence ≤ `through_seq` once its deliveries are
    /// written (in the same write set, so they are never counted or listed twice).
    /// Expansion goes oldest first, so these are a prefix of the plans.
    pub(crate) fn forget_plans(
        &self,
        b: &mut Batches,
        view: &mut BatchView,
        through_seq: u64,
    ) -> Result<(), StoreError> {
        for kv in self.trees.fanout.range(..=through_seq.to_be_bytes()) {
            let (key, value) = kv?;
            let mut group: PlanGroup = codec::decode(&value)?;
            let kept = group.split_off(group.partition_point(|(seq, _)| *seq <= through_seq));
            let dropped: usize = group.iter().map(|(_, p)| p.targets.len()).sum();
            view.deltas[DeliveryStatus::Pending.index()] -= dropped as i64;
            if kept.is_empty() {
                b.fanout.remove(key.to_vec());
            } else {
                b.fanout.insert(key.to_vec(), codec::encode(&kept)?);
            }
        }
        Ok(())
    }

    /// Writes `delivery` and keeps its indexes in step with the previous record (read from
    /// this batch first, then from the tree).
    pub(crate) fn put_delivery(
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

    /// Removes the delivery `id` and its index entries (the retention sweep; a no-op for a
    /// delivery that is not there).
    pub(crate) fn remove_delivery(
        &self,
        b: &mut Batches,
        view: &mut BatchView,
        id: &str,
    ) -> Result<(), StoreError> {
        let previous = match view.written.remove(id) {
            Some(d) => Some(d),
            None => self.delivery(id)?,
        };
        let Some(old) = previous else {
            return Ok(());
        };
        if let Some(due) = old.due_at_ms() {
            b.deliveries_due.remove(due_key(old.channel, due, id));
        }
        b.deliveries_by_status.remove(status_key(old.status, id));
        view.deltas[old.status.index()] -= 1;
        b.deliveries.remove(id.as_bytes());
        Ok(())
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
        }
        if let Some(due) = delivery.due_at_ms() {
            b.deliveries_due
                .insert(due_key(delivery.channel, due, id), []);
        }
        b.deliveries_by_status
            .insert(status_key(delivery.status, id), []);
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
        let start = vec![channel.tag()];
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

    /// Up to `limit` deliveries with `status` and id > `after`, in id order (`pending`
    /// includes planned deliveries).
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
        if status == DeliveryStatus::Pending {
            out = self.with_planned(out, after, limit)?;
        }
        Ok(out)
    }

    /// Up to `limit` deliveries with id > `after`, in id order (ids are time-ordered),
    /// planned ones included.
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
        let records = self
            .trees
            .deliveries
            .range(start..)
            .take(limit)
            .map(|kv| codec::decode(&kv?.1))
            .collect::<Result<Vec<Delivery>, StoreError>>()?;
        self.with_planned(records, after, limit)
    }

    /// `records` merged with the planned deliveries after `after`, first `limit` by id.
    fn with_planned(
        &self,
        mut records: Vec<Delivery>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        for (seq, plan) in self.plans(PLAN_SCAN_MAX)? {
            records.extend(
                plan.deliveries(seq)
                    .into_iter()
                    .filter(|d| after.is_none_or(|a| d.id.as_str() > a)),
            );
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        records.truncate(limit);
        Ok(records)
    }

    /// Up to `limit` fan-out plans not yet expanded, oldest first, with their event
    /// sequence numbers.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn plans(&self, limit: usize) -> Result<Vec<(u64, FanOutPlan)>, StoreError> {
        let mut out = Vec::new();
        for value in self.trees.fanout.iter().values() {
            if out.len() >= limit {
                break;
            }
            let group: PlanGroup = codec::decode(&value?)?;
            out.extend(group.into_iter().take(limit - out.len()));
        }
        Ok(out)
    }

    /// The delivery `id`, recorded or still planned.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn delivery_or_planned(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        if let Some(d) = self.delivery(id)? {
            return Ok(Some(d));
        }
        for (seq, plan) in self.plans(PLAN_SCAN_MAX)? {
            if let Some(d) = plan.deliveries(seq).into_iter().find(|d| d.id == id) {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// Every delivery of the event `event_id` (one per channel target), recorded or planned.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn deliveries_of_event(&self, event_id: &str) -> Result<Vec<Delivery>, StoreError> {
        let first = delivery_id(event_id, 0);
        let prefix = &first.as_bytes()[..first.len() - 3];
        let mut out = Vec::new();
        for kv in self.trees.deliveries.scan_prefix(prefix) {
            let d: Delivery = codec::decode(&kv?.1)?;
            if d.event_id == event_id {
                out.push(d);
            }
        }
        for (seq, plan) in self.plans(PLAN_SCAN_MAX)? {
            if plan.event_id == event_id {
                out.extend(plan.deliveries(seq));
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
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
    use crate::domain::write_set::WriteOp;
    use crate::store::tables::test_support::{self, commit};
    use crate::store::Durability;

    struct TwoTargets;

    impl FanOut for TwoTargets {
        fn targets_for(&self, _event: &Event, _: &[WebhookEndpoint]) -> Vec<(Channel, String)> {
            vec![
                (Channel::Telegram, "7".into()),
                (Channel::Webhook, String::new()),
            ]
        }
        fn created(&self, _count: usize) {}
    }

    /// An event about `pay_1` created at 1 s, so its deliveries' times are fixed.
    fn event(id: &str, dedupe_key: &str) -> Event {
        Event {
            created_at_ms: 1_000,
            ..test_support::event(id, "pay_1", dedupe_key)
        }
    }

    fn pending(store: &Store) -> i64 {
        store.delivery_counts()[DeliveryStatus::Pending.index()].1
    }

    #[test]
    fn an_event_is_planned_in_its_batch_and_expanded_later() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::FlushOnly).unwrap();
        store.set_fan_out(Arc::new(TwoTargets));
        let e = event("evt_01aaaaaaaaaaaaaaaaaaaaaaaa", "k1");
        commit(
            &store,
            vec![
                WriteOp::Event(e.clone()),
                WriteOp::Event(event("evt_2", "k1")),
            ],
        );
        commit(&store, vec![WriteOp::Event(event("evt_3", "k1"))]);
        let plans = store.plans(10).unwrap();
        assert_eq!(plans.len(), 1, "duplicates by dedupe_key plan nothing");
        assert_eq!(pending(&store), 2);
        let listed = store.deliveries_after(None, 10).unwrap();
        let ids: Vec<&str> = listed.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "dlv_01aaaaaaaaaaaaaaaaaaaaaaaa000",
                "dlv_01aaaaaaaaaaaaaaaaaaaaaaaa001"
            ]
        );
        assert!(listed.iter().all(|d| d.status == DeliveryStatus::Pending));
        assert!(store.delivery(ids[0]).unwrap().is_none());
        assert_eq!(
            store.delivery_or_planned(ids[1]).unwrap().unwrap().channel,
            Channel::Webhook
        );
        assert_eq!(store.deliveries_of_event(&e.id).unwrap().len(), 2);
        let (seq, plan) = plans.into_iter().next().unwrap();
        let mut ops: Vec<WriteOp> = plan
            .deliveries(seq)
            .into_iter()
            .map(WriteOp::Delivery)
            .collect();
        ops.push(WriteOp::FanOutDone { through_seq: seq });
        commit(&store, ops);
        assert!(store.plans(10).unwrap().is_empty());
        assert_eq!(pending(&store), 2, "expanded, not counted twice");
        assert_eq!(
            store
                .deliveries_with_status(DeliveryStatus::Pending, None, 10)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            store.due_delivery_ids(Channel::Webhook, 1_000, 10).unwrap(),
            vec![ids[1].to_owned()]
        );
        assert_eq!(store.deliveries_of_event(&e.id).unwrap().len(), 2);
        drop(store);
        let store = Store::open(dir.path(), Durability::FlushOnly).unwrap();
        assert_eq!(pending(&store), 2, "counts are rebuilt at open");
    }

    #[test]
    fn a_group_record_is_trimmed_as_its_events_are_expanded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::FlushOnly).unwrap();
        store.set_fan_out(Arc::new(TwoTargets));
        commit(
            &store,
            vec![
                WriteOp::Event(event("evt_a", "a")),
                WriteOp::Event(event("evt_b", "b")),
            ],
        );
        commit(&store, vec![WriteOp::Event(event("evt_c", "c"))]);
        assert_eq!(
            store.trees.fanout.key_count(),
            2,
            "one record per group commit"
        );
        assert_eq!(pending(&store), 6);
        let plans = store.plans(10).unwrap();
        let (first_seq, first) = &plans[0];
        let mut ops: Vec<WriteOp> = first
            .deliveries(*first_seq)
            .into_iter()
            .map(WriteOp::Delivery)
            .collect();
        ops.push(WriteOp::FanOutDone {
            through_seq: *first_seq,
        });
        commit(&store, ops);
        let left: Vec<String> = store
            .plans(10)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p.event_id)
            .collect();
        assert_eq!(left, vec!["evt_b", "evt_c"]);
        assert_eq!(pending(&store), 6);
        assert_eq!(store.deliveries_after(None, 10).unwrap().len(), 6);
        commit(
            &store,
            vec![WriteOp::FanOutDone {
                through_seq: u64::MAX,
            }],
        );
        assert!(store.plans(10).unwrap().is_empty());
        assert_eq!(pending(&store), 2);
    }

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
