//! A panic inside a channel's notifier restarts the actor (its Supervisor) and loses
//! nothing: the delivery lives in the store, is found interrupted, and is retried. This
//! binary holds one test, because the injected panic is process-wide.

mod common;
mod notify_support;

use std::time::Duration;

use paykeep::domain::delivery::Channel;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use notify_support::{all_with, fast_retries, pay, wait_deliveries, webhook_to};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_notifier_is_restarted_and_its_delivery_retried() {
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
    paykeep::notify::fault::inject_panics(Channel::Webhook, 1);
    pay(&svc.client, &svc.base, "panic-1").await;
    let ds = wait_deliveries(
        &svc.client,
        &svc.base,
        "",
        Duration::from_secs(20),
        all_with("delivered", 1),
    )
    .await;
    let outcomes: Vec<&str> = ds[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["interrupted", "delivered"]);
    assert_eq!(sink.received_requests().await.unwrap().len(), 1);
    let metrics = svc.get("/metrics").await.text;
    assert!(
        metrics.contains("notifier_restarts_total{channel=\"webhook\"} 1"),
        "{metrics}"
    );
    // The restarted actor keeps working, and payments never noticed.
    pay(&svc.client, &svc.base, "panic-2").await;
    wait_deliveries(
        &svc.client,
        &svc.base,
        "",
        Duration::from_secs(20),
        all_with("delivered", 2),
    )
    .await;
    svc.shutdown().await;
}
