//! The store and its group committer, below HTTP: reopen keeps what was acknowledged,
//! events are deduplicated by `dedupe_key` and listed oldest first, many concurrent write
//! sets share flushes, and the retention sweep removes only the entries it found expired.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use paykeep::clock::{Clock, ManualClock};
use paykeep::domain::event::{Event, EventLevel, EventSource};
use paykeep::domain::idempotency::{
    Fingerprint, IdempotencyEntry, IdempotencyKey, KeyScope, StoredResponse,
};
use paykeep::domain::payment::{Payment, PaymentStatus, RefundStatus};
use paykeep::domain::time::now_ms;
use paykeep::domain::write_set::{WriteOp, WriteSet};
use paykeep::metrics::Metrics;
use paykeep::store::committer::{self, CommitPolicy, CommitterHandle};
use paykeep::store::{sweep, Durability, OpenOptions, Store};

/// The id of the payment of order `order-{tag}`.
fn pid(tag: &str) -> String {
    paykeep::domain::ids::payment_id("m_demo", &format!("order-{tag}"))
}

/// A payment of order `order-{tag}`, with the id that order's payment has.
fn payment(tag: &str, status: PaymentStatus) -> Payment {
    let order_no = format!("order-{tag}");
    Payment {
        id: paykeep::domain::ids::payment_id("m_demo", &order_no),
        merchant_id: "m_demo".into(),
        order_no,
        amount: 500,
        currency: "EUR".into(),
        status,
        payment_method: "pm_card_visa".into(),
        provider: "simulator".into(),
        provider_payment_id: None,
        failure_code: None,
        failure_message: None,
        attempt_count: 1,
        amount_refunded: 0,
        refund_status: RefundStatus::None,
        description: None,
        customer_email: None,
        metadata: BTreeMap::new(),
        created_at_ms: 1,
        updated_at_ms: 1,
        succeeded_at_ms: None,
    }
}

fn event(id: &str, dedupe_key: &str) -> Event {
    Event {
        id: id.into(),
        kind: "payment.succeeded".into(),
        level: EventLevel::Info,
        source: EventSource::Payment,
        title: "Order paid".into(),
        entity_type: "payment".into(),
        entity_id: "pay_1".into(),
        dedupe_key: dedupe_key.into(),
        payload: "{}".into(),
        created_at_ms: 1,
    }
}

fn policy() -> CommitPolicy {
    CommitPolicy {
        window: Duration::from_micros(500),
        batch_max: 1024,
    }
}

/// A `FlushAndSync` store in `dir` and its running committer.
fn open_with_committer(
    dir: &Path,
    metrics: Arc<Metrics>,
) -> (Arc<Store>, CommitterHandle, JoinHandle<()>) {
    let store = Arc::new(Store::open(dir, Durability::FlushAndSync).unwrap());
    let (committer, thread) = committer::start(Arc::clone(&store), policy(), metrics);
    (store, committer, thread)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_write_sets_survive_reopen_and_events_are_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_store, committer, thread) = open_with_committer(dir.path(), Arc::default());
        let first = WriteSet {
            ops: vec![
                WriteOp::Payment(payment("pay_1", PaymentStatus::Processing)),
                WriteOp::Event(event("evt_1", "dup")),
                WriteOp::Event(event("evt_2", "dup")),
            ],
        };
        committer.commit(first).await.unwrap();
        let second = WriteSet {
            ops: vec![
                WriteOp::Payment(payment("pay_1", PaymentStatus::Succeeded)),
                WriteOp::Event(event("evt_3", "dup")),
                WriteOp::Event(event("evt_4", "other")),
            ],
        };
        committer.commit(second).await.unwrap();
        drop(committer);
        thread.join().unwrap();
    }
    let store = Store::open(dir.path(), Durability::FlushAndSync).unwrap();
    let stored = store.payment(&pid("pay_1")).unwrap().unwrap();
    assert_eq!(stored.status, PaymentStatus::Succeeded);
    assert_eq!(
        store
            .payment_by_order("m_demo", "order-pay_1")
            .unwrap()
            .unwrap(),
        stored
    );
    assert!(
        store.processing_payment_ids().unwrap().is_empty(),
        "no longer processing"
    );
    let events = store.events_after(0, 10).unwrap();
    let ids: Vec<&str> = events.iter().map(|(_, e)| e.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["evt_1", "evt_4"],
        "one event per dedupe_key, oldest first"
    );
    assert!(events[0].0 < events[1].0);
    assert_eq!(store.events_after(events[0].0, 10).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_write_sets_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let (store, committer, thread) = open_with_committer(dir.path(), Arc::clone(&metrics));
    let tasks = (0..200).map(|i| {
        let committer = committer.clone();
        tokio::spawn(async move {
            let ops = vec![WriteOp::Payment(payment(
                &format!("pay_{i}"),
                PaymentStatus::Processing,
            ))];
            committer.commit(WriteSet { ops }).await
        })
    });
    for result in futures::future::join_all(tasks).await {
        result.unwrap().unwrap();
    }
    assert_eq!(store.processing_payment_ids().unwrap().len(), 200);
    let batches = metrics.store_commit_batch_size.get_sample_count();
    assert_eq!(metrics.store_commit_batch_size.get_sample_sum() as u64, 200);
    assert!(batches < 200, "200 write sets took {batches} flushes");
    drop(committer);
    thread.join().unwrap();
}

/// An acknowledged write is read back at once, although the applier puts it in sled only
/// up to `APPLY_DELAY` later: point reads, the order index, the `processing` scan and the
/// event range all see it, and a staged removal hides what sled still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_are_read_back_before_sled_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let (store, committer, thread) = open_with_committer(dir.path(), Arc::default());
    let processing = WriteSet {
        ops: vec![WriteOp::Payment(payment(
            "pay_1",
            PaymentStatus::Processing,
        ))],
    };
    committer.commit(processing).await.unwrap();
    assert_eq!(
        store.payment(&pid("pay_1")).unwrap().unwrap().status,
        PaymentStatus::Processing
    );
    assert!(store
        .payment_by_order("m_demo", "order-pay_1")
        .unwrap()
        .is_some());
    assert_eq!(store.processing_payment_ids().unwrap(), vec![pid("pay_1")]);
    // Let the applier put the processing payment in sled, then replace it.
    tokio::time::sleep(paykeep::store::applier::APPLY_DELAY * 5).await;
    let succeeded = WriteSet {
        ops: vec![
            WriteOp::Payment(payment("pay_1", PaymentStatus::Succeeded)),
            WriteOp::Event(event("evt_1", "pay_1")),
        ],
    };
    committer.commit(succeeded).await.unwrap();
    assert_eq!(
        store.payment(&pid("pay_1")).unwrap().unwrap().status,
        PaymentStatus::Succeeded
    );
    assert!(
        store.processing_payment_ids().unwrap().is_empty(),
        "the staged removal hides sled's processing entry"
    );
    let events = store.events_after(0, 10).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1.id, "evt_1");
    drop(committer);
    thread.join().unwrap();
}

/// Another store open on the same directory is refused (after the retry that covers
/// sled's late release of a dropped store's lock), so two writers never share a log.
#[test]
fn a_directory_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _open = Store::open(dir.path(), Durability::FlushOnly).unwrap();
    let error = Store::open(dir.path(), Durability::FlushOnly)
        .err()
        .expect("a second store on the same directory");
    assert!(
        matches!(error, paykeep::store::StoreError::InUse { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("in use"), "{error}");
}

fn entry(order_no: &str, created_at_ms: i64, finished: bool) -> IdempotencyEntry {
    IdempotencyEntry {
        order_no: order_no.into(),
        fingerprint: Fingerprint::new("POST", "/v1/payments", &serde_json::json!({})),
        response: finished.then(|| StoredResponse {
            status: 201,
            body: "{}".into(),
        }),
        created_at_ms,
    }
}

fn header_key(value: &str) -> IdempotencyKey {
    IdempotencyKey {
        merchant_id: "m_demo".into(),
        scope: KeyScope::Header(value.into()),
    }
}

/// A header-key entry is listed for the sweep by the journal record of the group that
/// finished it (an entry still in flight is not listed, and stays). The sweep removes the
/// entries of records committed before its cutoff, empties those records' lists, and leaves
/// alone a key that holds a newer entry by the time the removal commits (a header key may
/// be used again once swept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_only_the_entries_it_found_expired() {
    let dir = tempfile::tempdir().unwrap();
    // The journal dates groups on the store's clock: moved, not slept on.
    let clock = Arc::new(ManualClock::starting_now());
    let options = OpenOptions {
        clock: clock.clone(),
        ..OpenOptions::new(Durability::FlushAndSync)
    };
    let store = Arc::new(Store::open_with(dir.path(), options).unwrap());
    let (committer, thread) =
        committer::start(Arc::clone(&store), policy(), Arc::new(Metrics::new()));
    let old = clock.now_ms();
    let (gone, reused, fresh, in_flight) = (
        header_key("gone"),
        header_key("reused"),
        header_key("fresh"),
        header_key("in-flight"),
    );
    for finished in [false, true] {
        let ops = vec![
            WriteOp::Idempotency {
                key: gone.clone(),
                entry: entry("o-1", old, finished),
            },
            WriteOp::Idempotency {
                key: reused.clone(),
                entry: entry("o-2", old, finished),
            },
        ];
        committer.commit(WriteSet { ops }).await.unwrap();
    }
    let unfinished = WriteOp::Idempotency {
        key: in_flight.clone(),
        entry: entry("o-4", old, false),
    };
    committer
        .commit(WriteSet {
            ops: vec![unfinished],
        })
        .await
        .unwrap();
    // The sweep's cutoff is by commit time: let the groups above age past a 1 s retention.
    clock.advance(Duration::from_millis(1_100));
    let recent = WriteOp::Idempotency {
        key: fresh.clone(),
        entry: entry("o-3", clock.now_ms(), true),
    };
    committer
        .commit(WriteSet { ops: vec![recent] })
        .await
        .unwrap();

    let expired = store
        .expired_idempotency_keys(&[], clock.now_ms() - 1_000, 512)
        .unwrap();
    assert_eq!(
        expired.records.len(),
        1,
        "only the finishing group lists entries; the fresh one is not due"
    );
    assert_eq!(expired.entries.len(), 2, "each finished entry listed once");
    // `reused` now holds a newer entry, as a key used again after an earlier removal does.
    let again = WriteOp::Idempotency {
        key: reused.clone(),
        entry: entry("o-9", clock.now_ms(), true),
    };
    committer
        .commit(WriteSet { ops: vec![again] })
        .await
        .unwrap();

    let mut after = Vec::new();
    let retention = Duration::from_secs(1);
    let listed = sweep::sweep_once(&store, &committer, retention, &mut after, clock.now_ms())
        .await
        .unwrap();
    assert_eq!(listed, 2);
    assert_eq!(store.idempotency(&gone).unwrap(), None);
    assert_eq!(store.idempotency(&reused).unwrap().unwrap().order_no, "o-9");
    assert_eq!(store.idempotency(&fresh).unwrap().unwrap().order_no, "o-3");
    assert_eq!(
        store.idempotency(&in_flight).unwrap().unwrap().order_no,
        "o-4",
        "an entry in flight is never swept"
    );
    let left = store
        .expired_idempotency_keys(&[], clock.now_ms() - 1_000, 512)
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    drop(committer);
    thread.join().unwrap();
}

/// `[retention]`: events older than the period go with their finished deliveries, an old
/// event with a delivery still in flight stays, young events stay, old webhook ids go; a
/// payment, its order and idempotency entry, and a refund are never swept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_sweep_removes_only_what_aged_out() {
    use paykeep::domain::delivery::{delivery_id, Channel, Delivery, DeliveryStatus};
    use paykeep::domain::webhook::ProcessedWebhook;
    use paykeep::store::retention::{self, Retention};

    const DAY_MS: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let (store, committer, thread) = open_with_committer(dir.path(), Arc::default());
    let now = now_ms();
    let aged = |id: &str, days: i64| Event {
        created_at_ms: now - days * DAY_MS,
        ..event(id, &format!("dedupe:{id}"))
    };
    let delivery = |event: &str, seq: u64, status: DeliveryStatus| Delivery {
        status,
        next_attempt_at_ms: None,
        ..Delivery::new(
            delivery_id(event, 0),
            (event, seq, "payment.succeeded"),
            Channel::Webhook,
            String::new(),
            now - 40 * DAY_MS,
        )
    };
    let paid = payment("pay_kept", PaymentStatus::Succeeded);
    let key = IdempotencyKey {
        merchant_id: "m_demo".into(),
        scope: KeyScope::Order(paid.order_no.clone()),
    };
    let entry = IdempotencyEntry {
        order_no: paid.order_no.clone(),
        fingerprint: Fingerprint::new("POST", "/v1/payments", &serde_json::json!({})),
        response: None,
        created_at_ms: now - 400 * DAY_MS,
    };
    let refund = paykeep::domain::refund::Refund {
        id: "re_kept".into(),
        payment_id: paid.id.clone(),
        merchant_id: "m_demo".into(),
        amount: 100,
        fee: 0,
        currency: "EUR".into(),
        status: paykeep::domain::refund::RefundState::Succeeded,
        reason: None,
        operator_id: "op".into(),
        provider_refund_id: None,
        failure_code: None,
        failure_message: None,
        idempotency_key: key.clone(),
        created_at_ms: now - 400 * DAY_MS,
        updated_at_ms: now - 400 * DAY_MS,
        succeeded_at_ms: Some(now - 400 * DAY_MS),
    };
    let webhook = |id: &str, days: i64| ProcessedWebhook {
        id: id.into(),
        kind: "payment_intent.succeeded".into(),
        received_at_ms: now - days * DAY_MS,
    };
    let ops = vec![
        WriteOp::Payment(paid.clone()),
        WriteOp::Idempotency {
            key: key.clone(),
            entry,
        },
        WriteOp::Refund(refund),
        WriteOp::Event(aged("evt_old_delivered", 31)),
        WriteOp::Event(aged("evt_old_in_flight", 31)),
        WriteOp::Event(aged("evt_old_bare", 31)),
        WriteOp::Event(aged("evt_young", 29)),
        WriteOp::WebhookEvent(webhook("evt_prov_old", 31)),
        WriteOp::WebhookEvent(webhook("evt_prov_young", 1)),
    ];
    committer.commit(WriteSet { ops }).await.unwrap();
    let ops = vec![
        WriteOp::Delivery(delivery("evt_old_delivered", 1, DeliveryStatus::Delivered)),
        WriteOp::Delivery(delivery(
            "evt_old_in_flight",
            2,
            DeliveryStatus::RetryScheduled,
        )),
    ];
    committer.commit(WriteSet { ops }).await.unwrap();

    let thirty_days = Duration::from_secs(30 * 86_400);
    let periods = Retention {
        events: thirty_days,
        webhook_event_ids: thirty_days,
    };
    let mut cursor = retention::Cursor::default();
    let swept = retention::sweep_once(&store, &committer, periods, &mut cursor, now)
        .await
        .unwrap();
    assert_eq!(
        (swept.events, swept.deliveries, swept.webhook_ids),
        (2, 1, 1)
    );
    let left: Vec<String> = store
        .events_after(0, 10)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.id)
        .collect();
    assert_eq!(left, ["evt_old_in_flight", "evt_young"]);
    assert!(store
        .deliveries_of_event("evt_old_delivered")
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .deliveries_of_event("evt_old_in_flight")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.webhook_event("evt_prov_old").unwrap(), None);
    assert!(store.webhook_event("evt_prov_young").unwrap().is_some());
    assert_eq!(store.payment(&paid.id).unwrap(), Some(paid.clone()));
    assert!(store
        .payment_by_order("m_demo", &paid.order_no)
        .unwrap()
        .is_some());
    assert!(store.idempotency(&key).unwrap().is_some());
    assert!(store.refund("re_kept").unwrap().is_some());
    // A second pass finds nothing more; the kept event's dedupe key still guards it.
    let again = retention::sweep_once(&store, &committer, periods, &mut cursor, now)
        .await
        .unwrap();
    assert_eq!(again, retention::Swept::default());
    drop(committer);
    thread.join().unwrap();
}
