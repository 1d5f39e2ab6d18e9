//! Recovery through the write-ahead log, below the committer: a group logged but only partly
//! applied to sled is completed at open, and checkpoints retire sealed segments without
//! losing anything.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::domain::event::{Event, EventLevel, EventSource};
use crate::domain::payment::Payment;
use crate::domain::test_fixtures::paid_payment;
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::store::tables::PreparedWriteSet;
use crate::store::{codec, wal, Durability, OpenOptions, Store};

/// The payment of order `order-{tag}`, under the id that order's payment has.
fn payment(tag: &str) -> Payment {
    let order_no = format!("order-{tag}");
    let id = crate::domain::ids::payment_id("m_demo", &order_no);
    paid_payment(&id, "m_demo", &order_no, 500, 1)
}

fn event(id: &str) -> Event {
    Event {
        id: format!("evt_{id}"),
        kind: "payment.succeeded".into(),
        level: EventLevel::Info,
        source: EventSource::Payment,
        title: "Order paid".into(),
        entity_type: "payment".into(),
        entity_id: id.into(),
        dedupe_key: format!("payment.succeeded:{id}"),
        payload: "{}".into(),
        created_at_ms: 1,
    }
}

fn write_set(id: &str) -> WriteSet {
    WriteSet {
        ops: vec![WriteOp::Payment(payment(id)), WriteOp::Event(event(id))],
    }
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir.join(wal::DIR)).unwrap().count()
}

#[test]
fn a_group_logged_but_applied_in_part_is_completed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Durability::FlushAndSync).unwrap();
    let ws = write_set("pay_1");
    let lsn = store.wal.lock().unwrap().position().1 + 1;
    let prepared = PreparedWriteSet::new(ws).unwrap();
    let (batches, _, _) = store.batches_for(&[&prepared], lsn).unwrap();
    let record = batches.into_record();
    store
        .wal
        .lock()
        .unwrap()
        .append(&codec::encode_plain(&record).unwrap(), true)
        .unwrap();
    // The process dies after the first tree of the group reached sled.
    let (name, first) = &record.trees[0];
    assert_eq!(name, "payments");
    first.apply(store.trees.by_name(name).unwrap()).unwrap();
    assert!(store.payment(&payment("pay_1").id).unwrap().is_some());
    assert!(
        store.events_after(0, 10).unwrap().is_empty(),
        "the event is not in sled yet"
    );
    // A failed store takes no checkpoint, so sled keeps the partial group and the log keeps
    // the record: what a crash at this instant leaves behind.
    store.failed.store(true, Ordering::Release);
    drop(store);
    assert_eq!(segments(dir.path()), 1, "the log survives a failed store");

    let store = Store::open(dir.path(), Durability::FlushAndSync).unwrap();
    assert_eq!(
        store.payment_by_order("m_demo", "order-pay_1").unwrap(),
        Some(payment("pay_1")),
        "the order index was completed from the log"
    );
    let events = store.events_after(0, 10).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, event("pay_1"));
    assert_eq!(
        segments(dir.path()),
        1,
        "recovered segments retired, one new one"
    );
}

#[test]
fn checkpoints_retire_sealed_segments_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // One byte: every group seals its segment and asks for a checkpoint.
    let options = OpenOptions {
        segment_bytes: 1,
        ..OpenOptions::new(Durability::FlushAndSync)
    };
    let store = Store::open_with(dir.path(), options).unwrap();
    let ids: Vec<String> = (0..40).map(|i| format!("pay_{i}")).collect();
    for id in &ids {
        let prepared = PreparedWriteSet::new(write_set(id)).unwrap();
        store.commit_group(&[&prepared]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while segments(dir.path()) > 1 {
        assert!(
            Instant::now() < deadline,
            "sealed segments were never retired"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(store);
    assert_eq!(
        segments(dir.path()),
        1,
        "a clean stop leaves only the current segment"
    );

    let store = Store::open(dir.path(), Durability::FlushAndSync).unwrap();
    for id in &ids {
        let expected = payment(id);
        assert_eq!(store.payment(&expected.id).unwrap(), Some(expected), "{id}");
    }
    assert_eq!(store.events_after(0, 100).unwrap().len(), ids.len());
}
