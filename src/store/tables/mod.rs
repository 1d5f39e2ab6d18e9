//! The tables: one file per record type, each owning its keys, its index upkeep and its
//! reads. This file declares the trees once, encodes a write set's records before it
//! reaches the committer ([`PreparedWriteSet`]), and turns a group's write sets into
//! per-tree writes ([`Store`]'s `batches_for`), handing each write to the table that owns
//! it.
//! The layout, key by key: docs/durability.md, "Layout".

pub mod deliveries;
pub mod events;
pub mod idempotency;
pub mod journal;
pub mod merchant_events;
pub mod merchant_index;
pub mod payments;
pub mod reconciliations;
pub mod refunds;
pub mod replay_cache;
pub mod settings;
#[cfg(test)]
pub(crate) mod test_support;
pub mod webhook_endpoints;
pub mod webhook_events;

use std::cell::Cell;

use serde::{Deserialize, Serialize};

use crate::domain::write_set::{Listed, WriteOp, WriteSet};
use crate::store::engine::codec;
use crate::store::engine::tree::{self, Db};
use crate::store::engine::tree_batch;
use crate::store::{Store, StoreError};

/// Schema version kept in `meta` ([`crate::store::meta`]); a store of another version is
/// refused at open. 2: the log carries LSNs and the store's identity, which sled's `meta`
/// carries too. 3: payment ids follow from the payment key (no order index), and one
/// journal record per group holds its events, finished entries and settlements. 4: values
/// are compressed against the codec's built-in dictionary ([`crate::store::codec`]);
/// merchant webhook endpoints and the merchant event index (`merchant_events`), which a
/// store of version 3 lacks for the events it holds. 5: the merchants' lists of payments
/// and refunds, and events listed by chunks of one group ([`merchant_index`]). 6: the
/// codec's dictionary is a trained one, values from 64 bytes (a payment) are compressed, and
/// a fingerprint keeps 16 bytes of digest and 4 per member.
pub const SCHEMA_VERSION: u8 = 6;

/// Declares the sled trees once: a `Trees` struct of open trees and a `Batches` struct
/// with one [`tree_batch::TreeBatch`] per tree. Adding a tree is adding its name here; the
/// order is the order a group is staged in, records before the indexes that point at them.
/// A tree marked `[key_filtered]` answers reads of keys it never held from a filter
/// ([`crate::store::engine::key_filter`]): the random-keyed trees every new create reads.
macro_rules! trees {
    (@key_filtered key_filtered) => { true };
    (@key_filtered) => { false };
    ($($name:ident $([$filtered:ident])?),+ $(,)?) => {
        pub(crate) struct Trees {
            $(pub(crate) $name: tree::Tree,)+
        }

        /// Every tree's name, in declaration order.
        pub const TREE_NAMES: &[&str] = &[$(stringify!($name),)+];

        impl Trees {
            pub(crate) fn open(db: &Db) -> Result<Trees, StoreError> {
                Ok(Trees {
                    $($name: tree::Tree::new(
                        db.open_tree(stringify!($name))?,
                        trees!(@key_filtered $($filtered)?),
                    ),)+
                })
            }

            /// Every tree, in declaration order.
            pub(crate) fn all(&self) -> Vec<&tree::Tree> {
                vec![$(&self.$name,)+]
            }

            /// The tree a log record names.
            ///
            /// # Errors
            /// [`StoreError::Corrupt`] for a name that is no tree of this store.
            pub(crate) fn by_name(&self, name: &str) -> Result<&tree::Tree, StoreError> {
                match name {
                    $(stringify!($name) => Ok(&self.$name),)+
                    _ => Err(StoreError::Corrupt {
                        detail: format!("write-ahead log names an unknown tree {name:?}"),
                    }),
                }
            }
        }

        /// One batch per tree, filled from write sets.
        #[derive(Default)]
        pub(crate) struct Batches {
            $(pub(crate) $name: tree_batch::TreeBatch,)+
        }

        impl Batches {
            /// The log record of the group: the non-empty batches, in declaration order.
            pub(crate) fn into_record(self) -> GroupRecord {
                let mut trees = Vec::new();
                $(
                    if !self.$name.is_empty() {
                        trees.push((stringify!($name).to_owned(), self.$name));
                    }
                )+
                GroupRecord { trees }
            }
        }
    };
}

trees!(
    payments[key_filtered],
    processing,
    idempotency[key_filtered],
    journal,
    journal_days,
    event_dedupe,
    refunds,
    refunds_by_payment,
    refunds_pending,
    provider_ids,
    webhook_events,
    reconciliations,
    discrepancies,
    deliveries,
    deliveries_due,
    deliveries_by_status,
    fanout,
    settings,
    webhook_endpoints,
    merchant_events,
    merchant_payments,
    merchant_refunds,
);

/// One group commit as logged in the write-ahead log: per tree, by name, its writes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    pub(crate) trees: Vec<(String, tree_batch::TreeBatch)>,
}

impl GroupRecord {
    /// Applies the writes to sled, tree by tree in the record's order (recovery).
    pub(crate) fn apply(&self, trees: &Trees) -> Result<(), StoreError> {
        for (name, batch) in &self.trees {
            batch.apply(trees.by_name(name)?)?;
        }
        Ok(())
    }
}

impl Store {
    /// Turns a group's write sets into one batch per tree, each write handed to the table
    /// that owns it; returns the batches, the number of new outbox events, and the
    /// deliveries' view of the group. `lsn`: the log record's LSN (it names the group's
    /// journal record). Called only by the committer thread.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub(crate) fn batches_for(
        &self,
        write_sets: &[&PreparedWriteSet],
        lsn: u64,
    ) -> Result<(Batches, usize, deliveries::BatchView), StoreError> {
        let mut b = Batches::default();
        let mut view = deliveries::BatchView::default();
        let mut clock = self.journal_clock.lock().map_err(|_| StoreError::Failed)?;
        let committed_at_ms = self.clock.now_ms().max(clock.committed_at_ms);
        let mut journal = journal::JournalBatch::new(committed_at_ms, clock.next_seq);
        let mut events = events::EventWrites::new(clock.next_seq);
        let mut by_merchant = merchant_events::MerchantEvents::default();
        let mut payment_list = merchant_index::ListBatch::default();
        let mut refund_list = merchant_index::ListBatch::default();
        for prepared in write_sets {
            let ws = &prepared.write_set;
            let transitions = transition_ids(ws);
            for (op, value) in ws.ops.iter().zip(&prepared.values) {
                match op {
                    WriteOp::Payment(p) => {
                        payments::put(&mut b, &mut journal.record, p, encoded(value)?)
                    }
                    WriteOp::Idempotency { key, entry } => {
                        idempotency::put(&mut b, &mut journal.record, key, entry, encoded(value)?)
                    }
                    WriteOp::RemoveIdempotency { key, created_at_ms } => {
                        self.remove_expired(&mut b, key, *created_at_ms)?
                    }
                    WriteOp::RemoveExpiring { record } => {
                        journal.clear_expiring(&self.trees.journal, record)?
                    }
                    WriteOp::Event(e) => {
                        let transition = transitions.contains(&e.entity_id.as_str());
                        if let Some(seq) = events.put(self, &mut b, &mut journal, e, transition)? {
                            let merchant_id = e.merchant_id();
                            if let Some(merchant_id) = &merchant_id {
                                by_merchant.put(e, merchant_id, seq);
                            }
                            self.fan_out_event(&mut view, e, merchant_id.as_deref(), seq)?;
                        }
                    }
                    WriteOp::RemoveEvent {
                        seq,
                        id,
                        dedupe_key,
                    } => {
                        let journal = (&mut journal, &mut by_merchant);
                        events::remove(self, &mut b, journal, *seq, id, dedupe_key)?
                    }
                    WriteOp::Refund(r) => {
                        refunds::put_refund(&mut b, &mut journal.record, r, encoded(value)?)
                    }
                    WriteOp::WebhookEvent(w) => webhook_events::put_webhook(&mut b, w)?,
                    WriteOp::RemoveWebhookEvent { id } => b.webhook_events.remove(id.as_bytes()),
                    WriteOp::Reconciliation(r) => reconciliations::put_reconciliation(&mut b, r)?,
                    WriteOp::Discrepancy(d) => reconciliations::put_discrepancy(&mut b, d)?,
                    WriteOp::Delivery(d) => self.put_delivery(&mut b, &mut view, d)?,
                    WriteOp::RemoveDelivery { id } => {
                        self.remove_delivery(&mut b, &mut view, id)?
                    }
                    WriteOp::FanOutDone { through_seq } => {
                        self.forget_plans(&mut b, &mut view, *through_seq)?
                    }
                    WriteOp::Setting { key, value } => settings::put(&mut b, key, value),
                    WriteOp::WebhookEndpoint(e) => webhook_endpoints::put(&mut b, e)?,
                    WriteOp::RemoveWebhookEndpoint { merchant_id, id } => {
                        webhook_endpoints::remove(&mut b, merchant_id, id)
                    }
                    WriteOp::List {
                        list,
                        merchant_id,
                        id,
                        created_at_ms,
                    } => {
                        let item = merchant_index::Item {
                            time_ms: u64::try_from(*created_at_ms).unwrap_or(0),
                            seq: 0,
                            id: id.clone(),
                        };
                        match list {
                            Listed::Payment => payment_list.put(merchant_id, item),
                            Listed::Refund => refund_list.put(merchant_id, item),
                        }
                    }
                }
            }
        }
        by_merchant.into_writes(&mut b, lsn)?;
        payment_list.into_writes(&mut b.merchant_payments, lsn)?;
        refund_list.into_writes(&mut b.merchant_refunds, lsn)?;
        if let Some(key) = journal.into_writes(lsn, &mut b.journal)? {
            let day = refunds::day_of_ms(committed_at_ms);
            if clock.last_day.is_none_or(|last| day > last) {
                b.journal_days.insert(day.to_be_bytes(), key);
                clock.last_day = Some(day);
            }
        }
        clock.next_seq = events.next_seq;
        clock.committed_at_ms = committed_at_ms;
        self.write_plans(&mut b, &mut view)?;
        Ok((b, events.written, view))
    }
}

/// A write set with its records already encoded ([`codec::encode`]: bincode, and zstd
/// against the codec's dictionary). Encoding is most of what a group costs the committer
/// thread, the store's one serial stage; done here, by [`PreparedWriteSet::new`] on the
/// thread that hands the write set in, it runs on every core at once and while the
/// committer syncs the previous group.
pub struct PreparedWriteSet {
    pub(crate) write_set: WriteSet,
    /// Per op, in order: the encoded record of a payment, idempotency entry or refund,
    /// moved into the group's batches when it is committed (a group is laid out once: a
    /// failed commit fails the store).
    values: Vec<Cell<Option<Vec<u8>>>>,
}

impl PreparedWriteSet {
    /// Encodes the records of `write_set`.
    ///
    /// # Errors
    /// [`StoreError::Codec`] if a record does not encode (never for paykeep's own).
    pub fn new(write_set: WriteSet) -> Result<PreparedWriteSet, StoreError> {
        let values = write_set
            .ops
            .iter()
            .map(|op| {
                match op {
                    WriteOp::Payment(p) => codec::encode(p).map(Some),
                    WriteOp::Idempotency { entry, .. } => codec::encode(entry).map(Some),
                    WriteOp::Refund(r) => codec::encode(r).map(Some),
                    _ => Ok(None),
                }
                .map(Cell::new)
            })
            .collect::<Result<_, _>>()?;
        Ok(PreparedWriteSet { write_set, values })
    }

    /// The write set itself.
    pub fn write_set(&self) -> &WriteSet {
        &self.write_set
    }
}

/// The encoded record [`PreparedWriteSet::new`] made for an op that stores one, moved out.
fn encoded(value: &Cell<Option<Vec<u8>>>) -> Result<Vec<u8>, StoreError> {
    value.take().ok_or_else(|| StoreError::Codec {
        detail: "a record of the write set was not encoded".to_owned(),
    })
}

/// Ids of the payments and refunds a write set writes: an event about one of them is that
/// record's transition.
fn transition_ids(ws: &WriteSet) -> Vec<&str> {
    ws.ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Payment(p) => Some(p.id.as_str()),
            WriteOp::Refund(r) => Some(r.id.as_str()),
            _ => None,
        })
        .collect()
}
