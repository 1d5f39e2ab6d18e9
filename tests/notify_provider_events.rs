//! The provider side's events reach the notifiers through the same outbox: a refund's
//! `refund.succeeded` passes the order gate, a forged webhook's critical
//! `payment.webhook_failed` passes the alert gate, each delivered once to the channel.

mod common;
mod notify_support;

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use notify_support::{fast_retries, webhook_to};

/// Webhook deliveries received by `sink`, as (event type, body).
async fn received(sink: &MockServer, want: usize) -> Vec<Value> {
    for _ in 0..200 {
        let bodies: Vec<Value> = sink
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect();
        if bodies.len() >= want {
            return bodies;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {want} deliveries arrived");
}

fn types(bodies: &[Value]) -> Vec<String> {
    let mut types: Vec<String> = bodies
        .iter()
        .map(|b| b["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    types.sort();
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_and_webhook_alert_events_are_delivered_through_the_outbox() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&sink)
        .await;
    let svc = common::start(|c| {
        fast_retries(c);
        webhook_to(c, &sink.uri());
    })
    .await;
    let paid = svc
        .create(Some("refund-evt"), common::order("refund-evt"))
        .await;
    let id = paid.json()["id"].as_str().unwrap().to_owned();
    let refund = svc
        .client
        .post(svc.url(&format!("/v1/payments/{id}/refunds")))
        .bearer_auth(common::MERCHANT_KEY)
        .json(&json!({"amount": 500, "reason": "damaged", "operator_id": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refund.status().as_u16(), 201);
    let forged = svc
        .client
        .post(svc.url("/v1/provider/webhooks"))
        .header("Stripe-Signature", "t=1,v1=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 400);

    let bodies = received(&sink, 3).await;
    assert_eq!(
        types(&bodies),
        vec![
            "payment.succeeded",
            "payment.webhook_failed",
            "refund.succeeded"
        ]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.received_requests().await.unwrap().len(),
        3,
        "each event once"
    );
    svc.shutdown().await;
}
