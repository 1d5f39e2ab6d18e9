//! `POST /v1/provider/webhooks` over real HTTP, with the Stripe-format samples of
//! `data/stripe_events/`: signatures (bad, stale, missing → 400 and a critical
//! `payment.webhook_failed` event), dedupe by event id, sync from the source of truth (an
//! out-of-order event cannot move a payment backwards), pending refunds resumed by
//! `charge.refunded`, and the sandbox's signed events resolving a payment whose charge
//! calls keep timing out — delivered twice, and out of order.

mod common;
mod provider_common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{order, order_with, start, wait_for_status, Answer};
use paykeep::domain::event::{kind, Event, EventLevel};
use paykeep::provider::signature;
use paykeep::store::{Durability, Store};
use provider_common::{refund, spawn_sandbox_at};
use serde_json::{json, Value};

const SECRET: &str = "whsec_demo_secret";

fn sample(name: &str) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("data/stripe_events/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn now_s() -> i64 {
    paykeep::domain::time::now_ms() / 1000
}

async fn deliver(svc: &common::Service, body: &str, signature: Option<String>) -> Answer {
    let mut request = svc
        .client
        .post(svc.url("/v1/provider/webhooks"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    common::read(request.send().await.unwrap()).await
}

async fn deliver_signed(svc: &common::Service, event: &Value) -> Answer {
    let body = event.to_string();
    let header = signature::header(SECRET, now_s(), body.as_bytes());
    deliver(svc, &body, Some(header)).await
}

/// The outbox events of a stopped service's store.
fn outbox(db: &Path) -> Vec<Event> {
    let store = Store::open(db, Durability::FlushOnly).unwrap();
    store
        .events_after(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stale_or_missing_signatures_are_400_with_a_critical_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let data_dir = db.clone();
    let svc = start(move |c| c.store.data_dir = data_dir).await;
    let body = sample("payment_intent.succeeded").to_string();
    let forged = signature::header("whsec_wrong", now_s(), body.as_bytes());
    let stale = signature::header(SECRET, now_s() - 301, body.as_bytes());
    for (header, reason) in [
        (Some(forged), "signature_mismatch"),
        (Some(stale), "stale_timestamp"),
        (None, "missing_signature"),
        (Some("t=abc".to_owned()), "malformed_signature"),
    ] {
        let answer = deliver(&svc, &body, header).await;
        let problem = answer.problem(400, "invalid_signature");
        assert!(!answer.text.contains(SECRET), "no secret in {problem}");
        let _ = reason;
    }
    // A tampered body with a signature of the original fails too.
    let good = signature::header(SECRET, now_s(), body.as_bytes());
    let tampered = body.replace("1999", "1");
    deliver(&svc, &tampered, Some(good))
        .await
        .problem(400, "invalid_signature");
    svc.shutdown().await;
    let alerts: Vec<Event> = outbox(&db)
        .into_iter()
        .filter(|e| e.kind == kind::PAYMENT_WEBHOOK_FAILED)
        .collect();
    assert!(alerts.iter().all(|e| e.level == EventLevel::Critical));
    for reason in [
        "signature_mismatch",
        "stale_timestamp",
        "missing_signature",
        "malformed_signature",
    ] {
        assert!(
            alerts.iter().any(|e| e.payload.contains(reason)),
            "an alert for {reason}: {alerts:?}"
        );
    }
    assert!(alerts.iter().all(|e| !e.payload.contains(SECRET)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sync_from_the_provider_never_backwards_and_once_per_id() {
    let svc = start(|_| {}).await;
    let paid = svc.create(None, order("wh-1")).await.json();
    let (id, pi) = (
        paid["id"].as_str().unwrap(),
        paid["provider_payment_id"].as_str().unwrap(),
    );
    // A stale "payment failed" for a payment the provider says succeeded changes nothing.
    let mut failed = sample("payment_intent.payment_failed");
    failed["data"]["object"]["id"] = json!(pi);
    failed["data"]["object"]["metadata"] =
        json!({"merchant_id": "m_demo", "order_no": "wh-1", "attempt": "1"});
    let answer = deliver_signed(&svc, &failed).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json(), json!({"received": true}));
    let now = svc.get(&format!("/v1/payments/{id}")).await.json();
    assert_eq!(now["status"], "succeeded");
    assert_eq!(now["updated_at"], paid["updated_at"]);
    // The same event id again: a duplicate, nothing done.
    let again = deliver_signed(&svc, &failed).await;
    assert_eq!(again.json(), json!({"received": true, "duplicate": true}));
    // Several v1 signatures (a rolled secret): one match is enough.
    let mut other = sample("payment_intent.succeeded");
    other["data"]["object"]["id"] = json!(pi);
    let body = other.to_string();
    let t = now_s();
    let header = format!(
        "t={t},v1={},v1={}",
        signature::compute("whsec_old", t, body.as_bytes()),
        signature::compute(SECRET, t, body.as_bytes())
    );
    assert_eq!(deliver(&svc, &body, Some(header)).await.status, 200);
    // An event about a PaymentIntent the provider does not know is acknowledged and ignored.
    let mut unknown = sample("payment_intent.succeeded");
    unknown["id"] = json!("evt_unknown_intent");
    assert_eq!(deliver_signed(&svc, &unknown).await.status, 200);
    let metrics = svc.get("/metrics").await.text;
    for line in [
        "provider_webhooks_total{outcome=\"applied\"} 2",
        "provider_webhooks_total{outcome=\"duplicate\"} 1",
        "provider_webhooks_total{outcome=\"ignored\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charge_refunded_resumes_a_pending_refund() {
    let svc = start(|c| c.provider.timeout = Duration::from_millis(300)).await;
    let created = svc
        .create(None, order_with("wh-2", "pm_sim_timeout"))
        .await
        .json();
    let id = created["id"].as_str().unwrap().to_owned();
    let paid = wait_for_status(
        &svc.client,
        &svc.base,
        &id,
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    let pending = refund(
        &svc.client,
        &svc.base,
        &id,
        None,
        &json!({"amount": 500, "operator_id": "op"}),
    )
    .await;
    assert_eq!(pending.status, 202, "{}", pending.text);
    let mut event = sample("charge.refunded");
    event["data"]["object"]["payment_intent"] = paid["provider_payment_id"].clone();
    let answer = deliver_signed(&svc, &event).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let payment = svc.get(&format!("/v1/payments/{id}")).await.json();
    assert_eq!(payment["refunds"][0]["status"], "succeeded", "{payment}");
    assert_eq!(payment["amount_refunded"], 500);
    svc.shutdown().await;
}

/// A free loopback port for a server started later (the sandbox, whose URL paykeep needs
/// before the sandbox can be told paykeep's).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn sandbox_events_resolve_stuck_payments(mode: &str) {
    let sandbox_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (data_dir, provider_url) = (db.clone(), base.clone());
    let svc = start(move |c| {
        c.store.data_dir = data_dir;
        c.provider.kind = paykeep::config::ProviderKind::Stripe;
        c.provider.base_url = provider_url;
        c.provider.secret_key = "sk_test_sandbox".into();
        c.provider.timeout = Duration::from_millis(200);
    })
    .await;
    let bind = format!("127.0.0.1:{port}");
    let hook = svc.url("/v1/provider/webhooks");
    let _sandbox = spawn_sandbox_at(
        &bind,
        sandbox_dir.path(),
        &[
            "--stall-ms",
            "3000",
            "--webhook-url",
            &hook,
            "--webhook-mode",
            mode,
        ],
    );
    let slow = [
        svc.create(None, order_with("wh-slow-1", "pm_sim_slow"))
            .await,
        svc.create(None, order_with("wh-slow-2", "pm_sim_slow"))
            .await,
    ];
    let declined = svc
        .create(None, order_with("wh-declined", "pm_card_chargeDeclined"))
        .await
        .json();
    assert_eq!(declined["status"], "failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ids = Vec::new();
    for created in &slow {
        assert_eq!(
            created.status, 202,
            "charge calls time out: {}",
            created.text
        );
        let id = created.json()["id"].as_str().unwrap().to_owned();
        loop {
            let payment = svc.get(&format!("/v1/payments/{id}")).await.json();
            if payment["status"] == "succeeded" {
                assert!(payment["provider_payment_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("pi_"));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "webhook never resolved {id}: {payment}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ids.push(id);
    }
    // Give the duplicate or held deliveries time to arrive before stopping.
    tokio::time::sleep(Duration::from_millis(700)).await;
    svc.shutdown().await;
    let events = outbox(&db);
    for id in &ids {
        let succeeded = events
            .iter()
            .filter(|e| e.kind == kind::PAYMENT_SUCCEEDED && &e.entity_id == id)
            .count();
        assert_eq!(succeeded, 1, "one payment.succeeded for {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_events_delivered_twice_resolve_a_stuck_payment_once() {
    sandbox_events_resolve_stuck_payments("duplicate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_events_delivered_out_of_order_resolve_stuck_payments() {
    sandbox_events_resolve_stuck_payments("out-of-order").await;
}
