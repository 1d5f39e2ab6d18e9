//! Operations endpoints and the OpenAPI document.

mod common;

use std::collections::BTreeSet;

use common::{order, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let svc = start(|_| {}).await;
    let health = svc.get("/healthz").await;
    assert_eq!(
        (health.status, health.json()["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = svc.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let body = ready.json();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["store"]["status"], "ok");
    assert_eq!(body["checks"]["shards"]["status"], "ok");
    assert_eq!(body["checks"]["shards"]["total"], 2);
    assert!(body["checks"]["store"]["latency_ms"].is_number());
    svc.create(Some("m-1"), order("metrics-1")).await;
    svc.create(Some("m-1"), order("metrics-1")).await;
    let metrics = svc.get("/metrics").await;
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    for name in [
        "http_requests_total{route=\"create_payment\",status=\"201\"} 2",
        "http_request_duration_seconds_bucket{route=\"create_payment\"",
        "payments_created_total{status=\"succeeded\"} 1",
        "idempotent_replays_total 1",
        "idempotency_conflicts_total 0",
        "store_commit_batch_size_count",
        "store_commit_duration_seconds_bucket",
    ] {
        assert!(
            metrics.text.contains(name),
            "missing {name} in\n{}",
            metrics.text
        );
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_exactly_the_routes() {
    let svc = start(|_| {}).await;
    let spec = svc.get("/openapi.json").await.json();
    assert_eq!(spec["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routes: BTreeSet<(String, String)> = paykeep::http::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, routes);
    // Every listed route answers something other than "no such route".
    for (method, path) in &routes {
        let url = svc.url(&path.replace("{payment_id}", "pay_x"));
        let request = svc
            .client
            .request(method.parse().unwrap(), url)
            .bearer_auth(common::MERCHANT_KEY);
        let answer = common::read(request.send().await.unwrap()).await;
        let no_route = answer.status == 404 && answer.text.contains("no such route");
        assert!(!no_route, "{method} {path} is not served");
    }
    svc.shutdown().await;
}

/// `provider_request_duration_seconds{operation,outcome}` (DESIGN §3): every pair present
/// at 0 from start-up; a charge observed under its outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_calls_are_timed_from_start_up() {
    let svc = start(|_| {}).await;
    let before = svc.get("/metrics").await.text;
    for (operation, outcome) in paykeep::provider::metrics::PROVIDER_REQUEST_LABELS {
        let series = format!(
            "provider_request_duration_seconds_count{{operation=\"{operation}\",outcome=\"{outcome}\"}} 0"
        );
        assert!(before.contains(&series), "missing {series} in\n{before}");
    }
    assert_eq!(svc.create(Some("m-2"), order("timed-1")).await.status, 201);
    let after = svc.get("/metrics").await.text;
    let charged =
        "provider_request_duration_seconds_count{operation=\"charge\",outcome=\"succeeded\"} 1";
    assert!(after.contains(charged), "missing {charged} in\n{after}");
    svc.shutdown().await;
}

/// The document is this instance's: `servers` is the address it is bound to (port 0 made
/// real), the currency enum and the amount maximum are its `[payments]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_is_built_from_this_instance() {
    let svc = start(|config| {
        config.payments.currencies = vec!["EUR".into(), "JPY".into()];
        config.payments.amount_minor_max = 777;
    })
    .await;
    let spec = svc.get("/openapi.json").await.json();
    assert_eq!(spec["servers"][0]["url"], svc.base.as_str());
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["Currency"]["enum"],
        serde_json::json!(["EUR", "JPY"])
    );
    assert_eq!(
        schemas["CreatePayment"]["properties"]["amount"]["maximum"],
        777
    );
    svc.shutdown().await;
}
