//! Every idempotency rule of DESIGN §2, over real HTTP.

mod common;

use std::time::Duration;

use common::{order, order_with, start, wait_for_status, OTHER_MERCHANT_KEY};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_same_request_replays_the_first_response() {
    let svc = start(|_| {}).await;
    let first = svc.create(Some("key-1"), order("o-1")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert!(!first.replayed());
    let payment = first.json();
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["object"], "payment");
    assert_eq!(payment["attempt_count"], 1);
    assert!(payment["id"].as_str().unwrap().starts_with("pay_"));
    let again = svc.create(Some("key-1"), order("o-1")).await;
    assert_eq!(again.status, 201);
    assert!(again.replayed());
    assert_eq!(again.text, first.text, "replay is byte-identical");
    let metrics = svc.get("/metrics").await.text;
    assert!(metrics.contains("idempotent_replays_total 1"), "{metrics}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_other_request_is_422_naming_the_fields() {
    let svc = start(|_| {}).await;
    assert_eq!(svc.create(Some("key-2"), order("o-2")).await.status, 201);
    let mut changed = order("o-2");
    changed["amount"] = json!(5);
    changed["currency"] = json!("EUR");
    let answer = svc.create(Some("key-2"), changed).await;
    let problem = answer.problem(422, "idempotency_key_reused");
    assert_eq!(problem["fields"], json!(["amount", "currency"]));
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("amount, currency"));
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_for_another_order_is_422() {
    let svc = start(|_| {}).await;
    assert_eq!(svc.create(Some("key-3"), order("o-3a")).await.status, 201);
    let answer = svc.create(Some("key-3"), order("o-3b")).await;
    let problem = answer.problem(422, "idempotency_key_reused");
    assert_eq!(problem["fields"], json!(["order_no"]));
    let lookup = svc.get("/v1/payments?order_no=o-3b").await;
    lookup.problem(404, "not_found");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_header_the_order_is_the_key() {
    let svc = start(|_| {}).await;
    let first = svc.create(None, order("o-4")).await;
    assert_eq!(first.status, 201);
    let again = svc.create(None, order("o-4")).await;
    assert!(again.replayed());
    assert_eq!(again.text, first.text);
    let mut changed = order("o-4");
    changed["payment_method"] = json!("pm_card_chargeDeclined");
    let problem = svc
        .create(None, changed)
        .await
        .problem(422, "idempotency_key_reused");
    assert_eq!(problem["fields"], json!(["payment_method"]));
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_store_nothing_and_the_key_stays_free() {
    let svc = start(|_| {}).await;
    let mut bad = order("o-5");
    bad["amount"] = json!(0);
    svc.create(Some("key-5"), bad)
        .await
        .problem(400, "invalid_request");
    let unauthorized = svc
        .client
        .post(svc.url("/v1/payments"))
        .bearer_auth("sk_wrong_key")
        .header("Idempotency-Key", "key-5")
        .json(&order("o-5"))
        .send()
        .await
        .unwrap();
    let unauthorized = common::read(unauthorized).await;
    unauthorized.problem(401, "unauthorized");
    assert_eq!(unauthorized.header("www-authenticate"), Some("Bearer"));
    svc.get("/v1/payments?order_no=o-5")
        .await
        .problem(404, "not_found");
    let corrected = svc.create(Some("key-5"), order("o-5")).await;
    assert_eq!(corrected.status, 201, "{}", corrected.text);
    assert!(!corrected.replayed());
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_is_a_result_and_a_new_key_starts_a_new_attempt() {
    let svc = start(|_| {}).await;
    let declined = svc
        .create(Some("try-1"), order_with("o-6", "pm_card_chargeDeclined"))
        .await;
    assert_eq!(declined.status, 201);
    let failed = declined.json();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["failure_code"], "card_declined");
    let replay = svc
        .create(Some("try-1"), order_with("o-6", "pm_card_chargeDeclined"))
        .await;
    assert!(replay.replayed());
    assert_eq!(replay.text, declined.text);
    let funds = svc
        .create(
            Some("try-2"),
            order_with("o-6", "pm_card_chargeDeclinedInsufficientFunds"),
        )
        .await;
    assert_eq!(funds.json()["failure_code"], "insufficient_funds");
    assert_eq!(funds.json()["attempt_count"], 2);
    let retry = svc.create(Some("try-3"), order("o-6")).await;
    assert_eq!(retry.status, 201);
    let paid = retry.json();
    assert_eq!(paid["id"], failed["id"], "same payment, new attempt");
    assert_eq!(paid["attempt_count"], 3);
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["failure_code"], json!(null));
    // A new attempt may not change what the order costs.
    let lookup = svc.get("/v1/payments?order_no=o-6").await;
    assert_eq!(lookup.json()["status"], "succeeded");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_refuses_a_new_key_and_never_charges_twice() {
    let svc = start(|_| {}).await;
    let paid = svc.create(Some("pay-a"), order("o-7")).await.json();
    let problem = svc
        .create(Some("pay-b"), order("o-7"))
        .await
        .problem(409, "order_already_paid");
    assert_eq!(problem["payment_id"], paid["id"]);
    let problem = svc
        .create(None, order("o-7"))
        .await
        .problem(409, "order_already_paid");
    assert_eq!(problem["payment_id"], paid["id"]);
    let metrics = svc.get("/metrics").await.text;
    assert!(
        metrics.contains("provider_calls_total{outcome=\"succeeded\"} 1"),
        "{metrics}"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_attempt_must_keep_amount_and_currency() {
    let svc = start(|_| {}).await;
    svc.create(Some("m-1"), order_with("o-8", "pm_card_chargeDeclined"))
        .await;
    let mut other = order("o-8");
    other["amount"] = json!(1);
    let problem = svc
        .create(Some("m-2"), other)
        .await
        .problem(422, "order_mismatch");
    assert_eq!(problem["fields"], json!(["amount"]));
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_error_answers_202_and_resolves_in_the_background() {
    let svc = start(|_| {}).await;
    let first = svc
        .create(Some("t-1"), order_with("o-9", "pm_sim_transient"))
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    let payment = first.json();
    assert_eq!(payment["status"], "processing");
    let id = payment["id"].as_str().unwrap();
    let done = wait_for_status(
        &svc.client,
        &svc.base,
        id,
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        done["attempt_count"], 1,
        "the retry reused the attempt and its provider key"
    );
    let replay = svc
        .create(Some("t-1"), order_with("o-9", "pm_sim_transient"))
        .await;
    assert_eq!(
        replay.status, 202,
        "the first response is replayed as it was"
    );
    assert_eq!(replay.text, first.text);
    let metrics = svc.get("/metrics").await.text;
    assert!(
        metrics.contains("provider_calls_total{outcome=\"retryable\"} 1"),
        "{metrics}"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_leaves_processing_and_the_retry_uses_the_same_provider_key() {
    let svc = start(|c| c.provider.timeout = Duration::from_millis(200)).await;
    let first = svc
        .create(Some("to-1"), order_with("o-10", "pm_sim_timeout"))
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let done = wait_for_status(
        &svc.client,
        &svc.base,
        &id,
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    // The simulator derives the charge id from the provider idempotency key: the same id
    // means the retry named the charge the timed-out call made.
    let expected = paykeep::provider::simulator::Simulator::provider_payment_id(
        &paykeep::domain::provider_key::charge_key("m_demo", "o-10", 1),
    );
    assert_eq!(done["provider_payment_id"], expected);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_for_a_running_one_with_its_key_and_gets_its_result() {
    let svc = start(|c| c.provider.latency = Duration::from_millis(300)).await;
    let (a, b) = tokio::join!(svc.create(Some("w-1"), order("o-11")), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        svc.create(Some("w-1"), order("o-11")).await
    });
    assert_eq!((a.status, b.status), (201, 201));
    assert_eq!(a.text, b.text);
    assert!(
        !a.replayed() && b.replayed(),
        "the second waited and got the first's result"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_in_flight_wait_a_waiting_request_gets_409_with_retry_after() {
    let svc = start(|c| {
        c.provider.latency = Duration::from_millis(1500);
        c.idempotency.in_flight_wait = Duration::from_millis(200);
    })
    .await;
    let (a, b) = tokio::join!(svc.create(Some("w-2"), order("o-12")), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        svc.create(Some("w-2"), order("o-12")).await
    });
    assert_eq!(a.status, 201);
    b.problem(409, "idempotency_key_in_use");
    assert_eq!(b.header("retry-after"), Some("1"));
    let later = svc.create(Some("w-2"), order("o-12")).await;
    assert!(later.replayed());
    assert_eq!(later.text, a.text);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_identical_creates_make_one_payment() {
    let svc = start(|c| c.provider.latency = Duration::from_millis(20)).await;
    let requests = (0..64).map(|_| svc.create(Some("same"), order("o-13")));
    let answers = futures::future::join_all(requests).await;
    assert!(answers.iter().all(|a| a.status == 201), "all 201");
    let first = &answers[0].text;
    assert!(
        answers.iter().all(|a| &a.text == first),
        "one payment, one body"
    );
    assert_eq!(answers.iter().filter(|a| !a.replayed()).count(), 1);
    let metrics = svc.get("/metrics").await.text;
    assert!(
        metrics.contains("provider_calls_total{outcome=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("payments_created_total{status=\"succeeded\"} 1"),
        "{metrics}"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchants_see_only_their_own_payments() {
    let svc = start(|_| {}).await;
    let payment = svc.create(Some("iso"), order("o-14")).await.json();
    let id = payment["id"].as_str().unwrap();
    let own = svc.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(own.status, 200);
    assert_eq!(own.json(), payment);
    let other = common::get_at(
        &svc.client,
        &svc.base,
        OTHER_MERCHANT_KEY,
        &format!("/v1/payments/{id}"),
    )
    .await;
    other.problem(404, "not_found");
    let other = common::get_at(
        &svc.client,
        &svc.base,
        OTHER_MERCHANT_KEY,
        "/v1/payments?order_no=o-14",
    )
    .await;
    other.problem(404, "not_found");
    // The same order number is another order for another merchant.
    let theirs = common::create_at(
        &svc.client,
        &svc.base,
        OTHER_MERCHANT_KEY,
        Some("iso"),
        &order("o-14"),
    )
    .await;
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.json()["id"], payment["id"]);
    svc.shutdown().await;
}
