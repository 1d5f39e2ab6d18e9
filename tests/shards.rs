//! Sharded actors: one request at a time per payment key, other keys unaffected by a slow
//! one, bounded queues answering 503 with Retry-After.

mod common;

use std::time::{Duration, Instant};

use common::{order, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_provider_call_on_one_key_does_not_delay_the_other_keys_of_its_shard() {
    // One shard, every charge takes 600 ms: eight keys run side by side, not one after another.
    let svc = start(|c| {
        c.shards.count = 1;
        c.provider.latency = Duration::from_millis(600);
    })
    .await;
    let started = Instant::now();
    let creates = (0..8).map(|i| svc.create(None, order(&format!("slow-{i}"))));
    let answers = futures::future::join_all(creates).await;
    let elapsed = started.elapsed();
    assert!(answers.iter().all(|a| a.status == 201));
    assert!(
        elapsed < Duration::from_millis(2400),
        "8 keys took {elapsed:?}; serial would be 4.8 s"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_of_one_key_run_one_at_a_time() {
    // Two different keys on the same order: the second runs after the first finished and
    // sees the paid order.
    let svc = start(|c| c.provider.latency = Duration::from_millis(300)).await;
    let (a, b) = tokio::join!(svc.create(Some("k-a"), order("serial")), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        svc.create(Some("k-b"), order("serial")).await
    });
    assert_eq!(a.status, 201);
    let problem = b.problem(409, "order_already_paid");
    assert_eq!(problem["payment_id"], a.json()["id"]);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_key_answers_503_with_retry_after_instead_of_queueing_without_bound() {
    let svc = start(|c| {
        c.shards.count = 1;
        c.provider.latency = Duration::from_millis(2000);
    })
    .await;
    let waiting = paykeep::shard::queue::KEY_WAITING_MAX;
    let creates = (0..waiting + 40).map(|_| svc.create(Some("flood"), order("flood")));
    let answers = futures::future::join_all(creates).await;
    let overloaded: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(
        !overloaded.is_empty(),
        "some requests beyond the bound are refused"
    );
    for answer in &overloaded {
        answer.problem(503, "overloaded");
        assert_eq!(answer.header("retry-after"), Some("1"));
    }
    let ok = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(
        ok + overloaded.len(),
        answers.len(),
        "every other request got the one result"
    );
    assert!(ok <= waiting + 1);
    svc.shutdown().await;
}
