//! Bad input: 400 problem+json naming the field, nothing stored, nothing panics.

mod common;

use common::{order, start, MERCHANT_KEY};
use serde_json::{json, Value};

/// Sends a raw body with an optional key; asserts 400 naming `field` and that the order
/// `o-bad` was not stored.
async fn refused(svc: &common::Service, body: &str, key: Option<&str>, field: Option<&str>) {
    let mut request = svc
        .client
        .post(svc.url("/v1/payments"))
        .bearer_auth(MERCHANT_KEY)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let answer = common::read(request.send().await.unwrap()).await;
    let problem = answer.problem(400, "invalid_request");
    if let Some(field) = field {
        assert_eq!(problem["fields"], json!([field]), "{}", answer.text);
        assert!(problem["detail"]
            .as_str()
            .unwrap()
            .contains(field.split('.').next().unwrap()));
    }
    svc.get("/v1/payments?order_no=o-bad")
        .await
        .problem(404, "not_found");
}

fn with(field: &str, value: Value) -> String {
    let mut body = order("o-bad");
    body[field] = value;
    body.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_mistyped_bodies_name_the_field() {
    let svc = start(|_| {}).await;
    refused(&svc, "{\"order_no\": \"o-bad\",", None, None).await;
    refused(&svc, "[1, 2]", None, None).await;
    refused(&svc, "", None, None).await;
    refused(&svc, &with("amount", json!("1999")), None, Some("amount")).await;
    refused(&svc, &with("amount", json!(19.99)), None, Some("amount")).await;
    refused(&svc, &with("amount", json!(-1)), None, Some("amount")).await;
    refused(&svc, &with("amount", json!(0)), None, Some("amount")).await;
    refused(
        &svc,
        &with("amount", json!(100_000_001u64)),
        None,
        Some("amount"),
    )
    .await;
    refused(&svc, &with("amount", json!(u64::MAX)), None, Some("amount")).await;
    refused(
        &svc,
        &with("currency", json!("XXX")),
        None,
        Some("currency"),
    )
    .await;
    refused(
        &svc,
        &with("currency", json!("usd")),
        None,
        Some("currency"),
    )
    .await;
    refused(&svc, &with("currency", json!(840)), None, Some("currency")).await;
    refused(
        &svc,
        &with("payment_method", json!("")),
        None,
        Some("payment_method"),
    )
    .await;
    refused(&svc, &with("surprise", json!(true)), None, Some("surprise")).await;
    refused(
        &svc,
        &with("metadata", json!({"k": 1})),
        None,
        Some("metadata.k"),
    )
    .await;
    refused(
        &svc,
        &with("customer_email", json!("no-at-sign")),
        None,
        Some("customer_email"),
    )
    .await;
    let mut missing = order("o-bad");
    missing.as_object_mut().unwrap().remove("currency");
    refused(&svc, &missing.to_string(), None, Some("currency")).await;
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_ids_and_bad_keys_are_refused() {
    let svc = start(|_| {}).await;
    let long_order = json!({"order_no": "x".repeat(65), "amount": 1, "currency": "USD", "payment_method": "pm_card_visa"});
    refused(&svc, &long_order.to_string(), None, Some("order_no")).await;
    refused(&svc, &with("order_no", json!("")), None, Some("order_no")).await;
    refused(
        &svc,
        &with("order_no", json!("tab\there")),
        None,
        Some("order_no"),
    )
    .await;
    refused(
        &svc,
        &with("payment_method", json!("p".repeat(256))),
        None,
        Some("payment_method"),
    )
    .await;
    let many: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("k{i}"), json!("v"))).collect();
    refused(
        &svc,
        &with("metadata", Value::Object(many)),
        None,
        Some("metadata"),
    )
    .await;
    let body = order("o-bad").to_string();
    refused(&svc, &body, Some(&"k".repeat(256)), Some("Idempotency-Key")).await;
    refused(&svc, &body, Some(""), Some("Idempotency-Key")).await;
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413() {
    let svc = start(|c| c.server.body_limit_bytes = std::num::NonZeroU64::new(1024).unwrap()).await;
    let mut body = order("o-bad");
    body["description"] = json!("d".repeat(2000));
    let answer = svc.create(None, body).await;
    answer.problem(413, "payload_too_large");
    svc.get("/v1/payments?order_no=o-bad")
        .await
        .problem(404, "not_found");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_payment_ids_and_routes_are_problems() {
    let svc = start(|_| {}).await;
    svc.get("/v1/payments/pay_doesnotexist")
        .await
        .problem(404, "not_found");
    svc.get("/v1/payments/not-an-id")
        .await
        .problem(404, "not_found");
    svc.get(&format!("/v1/payments/pay_{}", "a".repeat(300)))
        .await
        .problem(404, "not_found");
    // Without `order_no` the route lists (tests/merchant_lists.rs); an empty one is refused.
    assert_eq!(svc.get("/v1/payments").await.json()["object"], "list");
    svc.get("/v1/payments?order_no=")
        .await
        .problem(400, "invalid_request");
    svc.get("/v1/payments?order=x")
        .await
        .problem(400, "invalid_request");
    svc.get("/v1/nothing").await.problem(404, "not_found");
    let answer = common::read(
        svc.client
            .delete(svc.url("/v1/payments"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer.problem(405, "method_not_allowed");
    svc.shutdown().await;
}
