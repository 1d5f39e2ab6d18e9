//! `idempotency.retention_s`: header-key entries are swept after it; orders stay unique.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{order, start_on_clock};
use paykeep::clock::ManualClock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_keys_are_swept_after_retention_and_orders_stay_unique() {
    let clock = Arc::new(ManualClock::starting_now());
    let svc = start_on_clock(Arc::clone(&clock), |c| {
        c.idempotency.retention = Duration::from_secs(1)
    })
    .await;
    let first = svc.create(Some("short-lived"), order("ret-1")).await;
    assert_eq!(first.status, 201);
    svc.create(Some("short-lived"), order("ret-2"))
        .await
        .problem(422, "idempotency_key_reused");
    let no_header = svc.create(None, order("ret-3")).await;
    assert_eq!(no_header.status, 201);
    let cached = svc.create(Some("cached-key"), order("ret-4")).await;
    assert_eq!(cached.status, 201);
    // Answered from the replay cache, which the sweep must empty as well.
    assert!(svc
        .create(Some("cached-key"), order("ret-4"))
        .await
        .replayed());

    // Well past the retention (and past every commit's time, which the store stamps from
    // the wall clock): the sweep, asleep on the clock, wakes and removes the header keys.
    clock.advance(Duration::from_secs(3600));

    // The key is free again: it may name another order now (once the sweep has run; until
    // then it is still taken, which stores nothing).
    let deadline = Instant::now() + Duration::from_secs(10);
    let reused = loop {
        let answer = svc.create(Some("short-lived"), order("ret-2")).await;
        if answer.status != 422 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(reused.status, 201, "{}", reused.text);
    assert!(!reused.replayed());
    // The first order is still paid: a create with the old key is now a new key on it.
    let problem = svc
        .create(Some("short-lived-2"), order("ret-1"))
        .await
        .problem(409, "order_already_paid");
    assert_eq!(problem["payment_id"], first.json()["id"]);
    // The same request after the sweep is a new key on a paid order, not a replay.
    svc.create(Some("cached-key"), order("ret-4"))
        .await
        .problem(409, "order_already_paid");
    // The order key (no header) is never swept.
    let replay = svc.create(None, order("ret-3")).await;
    assert!(replay.replayed());
    assert_eq!(replay.text, no_header.text);
    svc.shutdown().await;
}
