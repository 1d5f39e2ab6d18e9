//! `idempotency.retention_s`: header-key entries are swept after it; orders stay unique.

mod common;

use std::time::Duration;

use common::{order, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_keys_are_swept_after_retention_and_orders_stay_unique() {
    let svc = start(|c| c.idempotency.retention_s = 1).await;
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

    tokio::time::sleep(Duration::from_millis(3500)).await;

    // The key is free again: it may name another order now.
    let reused = svc.create(Some("short-lived"), order("ret-2")).await;
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
