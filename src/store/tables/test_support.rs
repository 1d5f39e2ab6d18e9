//! What the tables' unit tests share: a store on a temporary directory, committed to
//! directly (no committer thread), and records to write.

use crate::domain::event::{Event, EventLevel, EventSource};
use crate::domain::ids::payment_id;
use crate::domain::payment::{Payment, PaymentStatus};
use crate::domain::test_fixtures::paid_payment;
use crate::domain::time::now_ms;
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::store::tables::PreparedWriteSet;
use crate::store::{Durability, Store};

/// A new store in a temporary directory (dropped with it).
pub(crate) fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::FlushOnly).expect("open");
    (dir, store)
}

/// Commits `ops` as one write set in a group of its own.
pub(crate) fn commit(store: &Store, ops: Vec<WriteOp>) {
    store
        .commit_group(&[&PreparedWriteSet::new(WriteSet { ops }).expect("encode")])
        .expect("commit");
}

/// The payment of `m_demo`'s order `order_no` with `status`, under its derived id.
pub(crate) fn payment(order_no: &str, status: PaymentStatus) -> Payment {
    let now = now_ms();
    let mut p = paid_payment(
        &payment_id("m_demo", order_no),
        "m_demo",
        order_no,
        500,
        now,
    );
    p.status = status;
    if status != PaymentStatus::Succeeded {
        p.succeeded_at_ms = None;
    }
    p
}

/// An event about `entity_id` with `dedupe_key`.
pub(crate) fn event(id: &str, entity_id: &str, dedupe_key: &str) -> Event {
    Event {
        id: id.into(),
        kind: "payment.succeeded".into(),
        level: EventLevel::Info,
        source: EventSource::Payment,
        title: "Order paid".into(),
        entity_type: "payment".into(),
        entity_id: entity_id.into(),
        dedupe_key: dedupe_key.into(),
        payload: "{}".into(),
        created_at_ms: now_ms(),
    }
}
