//! A write set: everything one state change writes, applied atomically by the committer
//! (record + idempotency entry + outbox events + deliveries). Pure data; the store encodes it.

use crate::domain::delivery::Delivery;
use crate::domain::event::Event;
use crate::domain::idempotency::{IdempotencyEntry, IdempotencyKey};
use crate::domain::payment::Payment;
use crate::domain::reconciliation::{Discrepancy, ReconciliationReport};
use crate::domain::refund::Refund;
use crate::domain::webhook::ProcessedWebhook;
use crate::domain::webhook_endpoint::WebhookEndpoint;

/// One write of a write set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Insert or replace the payment (and its order index, and the `processing` index).
    Payment(Payment),
    /// Insert or replace an idempotency entry.
    Idempotency {
        key: IdempotencyKey,
        entry: IdempotencyEntry,
    },
    /// Remove an idempotency entry (the retention sweep), if it is still the one created at
    /// `created_at_ms`: a header key used again after its removal holds a newer entry.
    RemoveIdempotency {
        key: IdempotencyKey,
        created_at_ms: i64,
    },
    /// Empty the list of expiring idempotency entries of the store's journal record
    /// `record` (its key): the idempotency sweep has gone through it.
    RemoveExpiring { record: Vec<u8> },
    /// Append an outbox event, unless one with its `dedupe_key` exists; the store fans it
    /// out into deliveries in the same batch.
    Event(Event),
    /// Insert or replace a refund (and its payment index; a succeeded one in the day index).
    Refund(Refund),
    /// Remember a provider webhook event as processed.
    WebhookEvent(ProcessedWebhook),
    /// Insert a reconciliation report.
    Reconciliation(Box<ReconciliationReport>),
    /// Insert or replace a discrepancy (a resolve replaces it).
    Discrepancy(Box<Discrepancy>),
    /// Insert or replace a delivery (and its due and status indexes).
    Delivery(Delivery),
    /// The fan-out plans of the events up to `through_seq` were expanded into
    /// deliveries: drop them.
    FanOutDone { through_seq: u64 },
    /// Insert or replace a persisted setting (`key` → JSON text).
    Setting { key: String, value: String },
    /// Remove an outbox event past `retention.events_days` (the retention sweep), with its
    /// `dedupe_key` entry if that still names it.
    RemoveEvent {
        seq: u64,
        id: String,
        dedupe_key: String,
    },
    /// Remove a finished delivery of a removed event, with its indexes.
    RemoveDelivery { id: String },
    /// Forget a provider webhook event id past `retention.webhook_event_ids_days`.
    RemoveWebhookEvent { id: String },
    /// Insert or replace a merchant's webhook endpoint.
    WebhookEndpoint(Box<WebhookEndpoint>),
    /// Remove a merchant's webhook endpoint.
    RemoveWebhookEndpoint { merchant_id: String, id: String },
    /// List a new payment or refund in its merchant's `list` (`GET /v1/payments`,
    /// `GET /v1/refunds`): pushed once, by the write set that creates the record.
    List {
        list: Listed,
        merchant_id: String,
        id: String,
        created_at_ms: i64,
    },
}

/// The records a write set lists itself ([`WriteOp::List`]); events are listed by the
/// store as it writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Payment,
    Refund,
}

/// The lists the store keeps per merchant, newest first (DESIGN §2, list routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MerchantList {
    /// Events of a merchant event type, listed by the store as they are written.
    Events,
    /// Payments, by creation time ([`WriteOp::List`]).
    Payments,
    /// Refunds, by creation time ([`WriteOp::List`]).
    Refunds,
}

/// Writes applied all together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    pub ops: Vec<WriteOp>,
}

impl WriteSet {
    pub fn push(&mut self, op: WriteOp) {
        self.ops.push(op);
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
