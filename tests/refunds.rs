//! Every refund rule of DESIGN §2 "Refunds", over real HTTP: partial and repeated refunds up
//! to the amount, the window, the fee, the default key and header keys, concurrency on one
//! payment, a transient provider refund, and a pending refund resumed after kill -9.

mod common;
mod provider_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{
    create_at, get_at, order, order_with, spawn_binary, start, start_in, temp_data_dir,
    wait_for_status, MERCHANT_KEY, OTHER_MERCHANT_KEY,
};
use paykeep::domain::payment::{Payment, PaymentStatus, RefundStatus};
use paykeep::domain::time::{now_ms, DAY_MS};
use paykeep::domain::write_set::{WriteOp, WriteSet};
use paykeep::metrics::Metrics;
use paykeep::store::committer::{self, CommitPolicy};
use paykeep::store::{Durability, Store};
use provider_common::{refund, refund_at};
use serde_json::{json, Value};

fn body(amount: u64, operator: &str) -> Value {
    json!({"amount": amount, "reason": "damaged", "operator_id": operator})
}

/// Creates a paid order and returns its payment id.
async fn paid(svc: &common::Service, order_no: &str) -> String {
    let answer = svc.create(None, order(order_no)).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json()["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_refunds_add_up_to_the_amount_and_no_further() {
    let svc = start(|_| {}).await;
    let id = paid(&svc, "r-1").await;
    let first = refund(&svc.client, &svc.base, &id, None, &body(500, "alice")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let r1 = first.json();
    assert!(r1["id"].as_str().unwrap().starts_with("re_"));
    assert_eq!(r1["object"], "refund");
    assert_eq!(r1["payment_id"], id.as_str());
    assert_eq!(r1["status"], "succeeded");
    assert_eq!(r1["amount"], 500);
    assert_eq!(r1["reason"], "damaged");
    assert_eq!(r1["operator_id"], "alice");
    assert!(r1["provider_refund_id"]
        .as_str()
        .unwrap()
        .starts_with("re_sim_"));
    assert!(r1["created_at"].as_str().unwrap().ends_with('Z'));
    let payment = svc.get(&format!("/v1/payments/{id}")).await.json();
    assert_eq!(payment["amount_refunded"], 500);
    assert_eq!(payment["refund_status"], "partial");
    assert_eq!(payment["refunds"][0], r1);

    let second = refund(&svc.client, &svc.base, &id, None, &body(1499, "alice")).await;
    assert_eq!(second.status, 201, "{}", second.text);
    let over = refund(&svc.client, &svc.base, &id, None, &body(1, "bob")).await;
    let problem = over.problem(422, "refund_exceeds_payment");
    assert_eq!(problem["payment_id"], id.as_str());
    let payment = svc.get(&format!("/v1/payments/{id}")).await.json();
    assert_eq!(payment["amount_refunded"], 1999);
    assert_eq!(payment["refund_status"], "full");
    assert_eq!(payment["refunds"].as_array().unwrap().len(), 2);
    let by_order = svc.get("/v1/payments?order_no=r-1").await.json();
    assert_eq!(by_order["refunds"], payment["refunds"]);
    let metrics = svc.get("/metrics").await.text;
    assert!(
        metrics.contains("refunds_created_total{status=\"succeeded\"} 2"),
        "{metrics}"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_key_is_payment_operator_and_amount() {
    let svc = start(|_| {}).await;
    let id = paid(&svc, "r-2").await;
    let first = refund(&svc.client, &svc.base, &id, None, &body(100, "alice")).await;
    assert_eq!(first.status, 201);
    let again = refund(&svc.client, &svc.base, &id, None, &body(100, "alice")).await;
    assert!(again.replayed(), "a double click replays");
    assert_eq!(again.text, first.text);
    let mut other_reason = body(100, "alice");
    other_reason["reason"] = json!("other");
    let reuse = refund(&svc.client, &svc.base, &id, None, &other_reason).await;
    assert_eq!(
        reuse.problem(422, "idempotency_key_reused")["fields"],
        json!(["reason"])
    );
    let bob = refund(&svc.client, &svc.base, &id, None, &body(100, "bob")).await;
    assert_eq!(bob.status, 201);
    assert_ne!(
        bob.json()["id"],
        first.json()["id"],
        "another operator, another refund"
    );
    let payment = svc.get(&format!("/v1/payments/{id}")).await.json();
    assert_eq!(payment["amount_refunded"], 200);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_keys_replay_refuse_other_requests_and_other_orders() {
    let svc = start(|_| {}).await;
    let id = paid(&svc, "r-3").await;
    let other = paid(&svc, "r-3b").await;
    let first = refund(&svc.client, &svc.base, &id, Some("rk-1"), &body(300, "a")).await;
    assert_eq!(first.status, 201);
    let again = refund(&svc.client, &svc.base, &id, Some("rk-1"), &body(300, "a")).await;
    assert!(again.replayed());
    assert_eq!(again.text, first.text);
    let changed = refund(&svc.client, &svc.base, &id, Some("rk-1"), &body(301, "a")).await;
    assert_eq!(
        changed.problem(422, "idempotency_key_reused")["fields"],
        json!(["amount"])
    );
    let elsewhere = refund(
        &svc.client,
        &svc.base,
        &other,
        Some("rk-1"),
        &body(300, "a"),
    )
    .await;
    elsewhere.problem(422, "idempotency_key_reused");
    // The same header key on the order's create is another request (another path).
    let create = svc.create(Some("rk-1"), order("r-3")).await;
    assert_eq!(
        create.problem(422, "idempotency_key_reused")["fields"],
        json!(["path"])
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_unrefundable_payments() {
    let svc = start(|_| {}).await;
    let id = paid(&svc, "r-4").await;
    let declined = svc
        .create(None, order_with("r-4d", "pm_card_chargeDeclined"))
        .await
        .json();
    let failed_id = declined["id"].as_str().unwrap();
    refund(&svc.client, &svc.base, failed_id, None, &body(1, "a"))
        .await
        .problem(422, "payment_not_refundable");
    for (bad, field) in [
        (json!({"amount": 0, "operator_id": "a"}), "amount"),
        (json!({"amount": 5}), "operator_id"),
        (
            json!({"amount": 5, "operator_id": "a", "extra": 1}),
            "extra",
        ),
        (json!({"amount": "5", "operator_id": "a"}), "amount"),
    ] {
        let answer = refund(&svc.client, &svc.base, &id, Some("bad-1"), &bad).await;
        assert_eq!(
            answer.problem(400, "invalid_request")["fields"],
            json!([field])
        );
    }
    // 400 stored nothing: the key is free for a corrected body.
    let ok = refund(&svc.client, &svc.base, &id, Some("bad-1"), &body(5, "a")).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    refund(&svc.client, &svc.base, "pay_nope", None, &body(1, "a"))
        .await
        .problem(404, "not_found");
    let theirs = refund_at(
        &svc.client,
        &svc.base,
        OTHER_MERCHANT_KEY,
        &id,
        None,
        &body(1, "a"),
    )
    .await;
    theirs.problem(404, "not_found");
    let unauthorized = refund_at(
        &svc.client,
        &svc.base,
        "sk_nope_nope",
        &id,
        None,
        &body(1, "a"),
    )
    .await;
    unauthorized.problem(401, "unauthorized");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fee_is_kept_by_the_merchant() {
    let svc = start(|c| c.payments.refund_fee_minor = 50).await;
    let id = paid(&svc, "r-5").await;
    refund(&svc.client, &svc.base, &id, None, &body(50, "a"))
        .await
        .problem(422, "refund_below_fee");
    let full = refund(&svc.client, &svc.base, &id, None, &body(1999, "a")).await;
    assert_eq!(full.status, 201, "{}", full.text);
    let r = full.json();
    assert_eq!(
        (r["amount"].as_u64(), r["fee"].as_u64()),
        (Some(1999), Some(50))
    );
    assert_eq!(r["amount_returned"], 1949);
    let payment = svc.get(&format!("/v1/payments/{id}")).await.json();
    assert_eq!(payment["amount_refunded"], 1999);
    assert_eq!(payment["refund_status"], "full");
    svc.shutdown().await;
}

/// A succeeded payment written straight into a fresh store, `age_ms` ago.
async fn store_with_old_payment(dir: &std::path::Path, age_ms: i64) -> String {
    let store = Arc::new(Store::open(&dir.join("db"), Durability::FlushOnly).unwrap());
    let policy = CommitPolicy {
        window: Duration::ZERO,
        batch_max: 16,
    };
    let (handle, thread) = committer::start(Arc::clone(&store), policy, Arc::new(Metrics::new()));
    let at = now_ms() - age_ms;
    let id = paykeep::domain::ids::payment_id("m_demo", "old-1");
    let payment = Payment {
        id: id.clone(),
        merchant_id: "m_demo".into(),
        order_no: "old-1".into(),
        amount: 1000,
        currency: "USD".into(),
        status: PaymentStatus::Succeeded,
        payment_method: "pm_card_visa".into(),
        provider: "simulator".into(),
        provider_payment_id: Some("pi_sim_old".into()),
        failure_code: None,
        failure_message: None,
        attempt_count: 1,
        amount_refunded: 0,
        refund_status: RefundStatus::None,
        description: None,
        customer_email: None,
        metadata: BTreeMap::new(),
        created_at_ms: at,
        updated_at_ms: at,
        succeeded_at_ms: Some(at),
    };
    handle
        .commit(WriteSet {
            ops: vec![WriteOp::Payment(payment)],
        })
        .await
        .unwrap();
    drop(handle);
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_close_after_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let id = store_with_old_payment(dir.path(), 2 * DAY_MS + 60_000).await;
    let svc = start_in(dir, |c| {
        c.payments.refund_window = std::time::Duration::from_secs(2 * 86_400)
    })
    .await;
    let late = refund(&svc.client, &svc.base, &id, None, &body(1, "a")).await;
    late.problem(422, "refund_window_expired");
    svc.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let id = store_with_old_payment(dir.path(), 2 * DAY_MS - 60_000).await;
    let svc = start_in(dir, |c| {
        c.payments.refund_window = std::time::Duration::from_secs(2 * 86_400)
    })
    .await;
    let in_time = refund(&svc.client, &svc.base, &id, None, &body(1, "a")).await;
    assert_eq!(in_time.status, 201, "{}", in_time.text);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refunds_of_one_payment_never_exceed_it() {
    let svc = start(|_| {}).await;
    let id = paid(&svc, "r-6").await;
    let tasks = (0..12).map(|i| {
        let (client, base, id) = (svc.client.clone(), svc.base.clone(), id.clone());
        tokio::spawn(async move {
            let key = format!("conc-{i}");
            refund(&client, &base, &id, Some(&key), &body(500, "ops")).await
        })
    });
    let answers: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let created = answers.iter().filter(|a| a.status == 201).count();
    let refused = answers
        .iter()
        .filter(|a| a.status == 422 && a.json()["code"] == "refund_exceeds_payment")
        .count();
    assert_eq!(
        (created, refused),
        (3, 9),
        "1999 holds three refunds of 500"
    );
    let payment = svc.get(&format!("/v1/payments/{id}")).await.json();
    assert_eq!(payment["amount_refunded"], 1500);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_provider_refund_is_pending_then_succeeds_in_the_background() {
    let svc = start(|_| {}).await;
    let created = svc
        .create(None, order_with("r-7", "pm_sim_transient"))
        .await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    wait_for_status(
        &svc.client,
        &svc.base,
        &id,
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    let pending = refund(&svc.client, &svc.base, &id, Some("t-1"), &body(700, "a")).await;
    assert_eq!(pending.status, 202, "{}", pending.text);
    assert_eq!(pending.json()["status"], "pending");
    // A pending refund holds its amount.
    refund(&svc.client, &svc.base, &id, None, &body(1300, "a"))
        .await
        .problem(422, "refund_exceeds_payment");
    let payment = wait_refunded(&svc.client, &svc.base, &id, 700).await;
    assert_eq!(payment["refunds"][0]["status"], "succeeded");
    let replay = refund(&svc.client, &svc.base, &id, Some("t-1"), &body(700, "a")).await;
    assert_eq!(
        replay.text, pending.text,
        "the key replays its first answer"
    );
    svc.shutdown().await;
}

async fn wait_refunded(client: &reqwest::Client, base: &str, id: &str, amount: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let answer = get_at(client, base, MERCHANT_KEY, &format!("/v1/payments/{id}")).await;
        if answer.status == 200 && answer.json()["amount_refunded"] == amount {
            return answer.json();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not refunded: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_refund_resumes_after_kill_9() {
    let (_dir, data) = temp_data_dir();
    let env = [("PAYKEEP_PROVIDER__TIMEOUT_MS", "300")];
    let client = reqwest::Client::new();
    let bin = spawn_binary(&data, &env);
    let created = create_at(
        &client,
        &bin.base,
        MERCHANT_KEY,
        None,
        &order_with("r-8", "pm_sim_timeout"),
    )
    .await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    wait_for_status(
        &client,
        &bin.base,
        &id,
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    let pending = provider_common::refund(&client, &bin.base, &id, None, &body(900, "a")).await;
    assert_eq!(pending.status, 202, "{}", pending.text);
    bin.kill9();

    let bin = spawn_binary(&data, &env);
    let payment = wait_refunded(&client, &bin.base, &id, 900).await;
    assert_eq!(payment["refunds"][0]["id"], pending.json()["id"]);
    assert_eq!(payment["refund_status"], "partial");
    let replay = provider_common::refund(&client, &bin.base, &id, None, &body(900, "a")).await;
    assert_eq!(replay.text, pending.text);
    bin.kill9();
}
