//! kill -9 of the real binary with undelivered events: after a restart every event is
//! delivered (at least once; receivers deduplicate on webhook-id).

mod common;
mod notify_support;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{spawn_binary, temp_data_dir};
use notify_support::{pay, WEBHOOK_SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_events_survive_kill_9_and_are_all_delivered_after_restart() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&sink)
        .await;
    let (_dir, data) = temp_data_dir();
    let url = sink.uri();
    let env = [
        ("PAYKEEP_NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "true"),
        ("PAYKEEP_NOTIFICATIONS__WEBHOOK__ENABLED", "true"),
        ("PAYKEEP_NOTIFICATIONS__WEBHOOK__URL", url.as_str()),
        ("PAYKEEP_NOTIFICATIONS__WEBHOOK__SECRET", WEBHOOK_SECRET),
        ("PAYKEEP_NOTIFICATIONS__RETRY_SCHEDULE_S", "[1]"),
        ("PAYKEEP_NOTIFICATIONS__JITTER_RATIO", "0"),
    ];
    let client = reqwest::Client::new();
    let bin = spawn_binary(&data, &env);
    let mut payments = BTreeSet::new();
    for i in 0..20 {
        payments.insert(pay(&client, &bin.base, &format!("k9-{i}")).await);
    }
    bin.kill9();
    assert!(
        !sink.received_requests().await.unwrap().is_empty(),
        "the endpoint was failing before the kill"
    );
    sink.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&sink)
        .await;
    let bin = spawn_binary(&data, &env);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let requests = sink.received_requests().await.unwrap();
        let delivered: BTreeSet<String> = requests
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .filter_map(|b| {
                b["data"]["payload"]["payment_id"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        if delivered == payments {
            let ids: HashSet<&str> = requests
                .iter()
                .filter_map(|r| r.headers.get("webhook-id")?.to_str().ok())
                .collect();
            assert_eq!(ids.len(), 20, "one webhook-id per event");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivered {} of 20",
            delivered.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The sink sees a request before paykeep commits its outcome: wait for the last commit.
    let within = Duration::from_secs(10);
    let ds =
        notify_support::wait_deliveries(&client, &bin.base, "status=delivered", within, |ds| {
            ds.len() >= 20
        })
        .await;
    assert_eq!(ds.len(), 20);
    bin.kill9();
}
