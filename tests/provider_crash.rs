//! The real binary on `provider.kind = "stripe"` against `paykeep sandbox`, killed with
//! SIGKILL while provider calls time out: after a restart every acknowledged payment
//! resolves, and the sandbox's durable ledger shows no payment charged twice.

mod common;
mod provider_common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{get_at, order_with, spawn_binary, temp_data_dir, MERCHANT_KEY};
use provider_common::{list_all, spawn_sandbox};
use serde_json::Value;

const KEY: &str = "sk_test_sandbox";

/// Creates from `workers` tasks until `stop`; every third order uses `pm_sim_timeout`,
/// whose first provider call outlives paykeep's timeout. Returns the acknowledged ids with
/// the status they were acknowledged with.
async fn load(base: String, workers: usize, stop: Instant) -> Vec<(String, u16)> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks = (0..workers).map(|w| {
        let (base, acked) = (base.clone(), Arc::clone(&acked));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..10_000 {
                if Instant::now() >= stop {
                    break;
                }
                let method = if i % 3 == 0 {
                    "pm_sim_timeout"
                } else {
                    "pm_card_visa"
                };
                let request = client
                    .post(format!("{base}/v1/payments"))
                    .bearer_auth(MERCHANT_KEY)
                    .header("Idempotency-Key", format!("pc-{w}-{i}"))
                    .json(&order_with(&format!("pc-{w}-{i}"), method))
                    .timeout(Duration::from_secs(5));
                let Ok(response) = request.send().await else {
                    break;
                };
                let status = response.status().as_u16();
                let Ok(body) = response.json::<Value>().await else {
                    break;
                };
                if (200..300).contains(&status) {
                    let id = body["id"].as_str().unwrap_or_default().to_owned();
                    acked.lock().unwrap().push((id, status));
                }
            }
        })
    });
    futures::future::join_all(tasks).await;
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_provider_calls_time_out_charges_each_payment_once() {
    let sandbox_dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(
        sandbox_dir.path(),
        &["--secret-key", KEY, "--stall-ms", "800"],
    );
    let (_dir, data) = temp_data_dir();
    let env = [
        ("PAYKEEP_PROVIDER__KIND", "stripe"),
        ("PAYKEEP_PROVIDER__BASE_URL", sandbox.base.as_str()),
        ("PAYKEEP_PROVIDER__SECRET_KEY", KEY),
        ("PAYKEEP_PROVIDER__TIMEOUT_MS", "200"),
    ];
    let bin = spawn_binary(&data, &env);
    let run = tokio::spawn(load(
        bin.base.clone(),
        8,
        Instant::now() + Duration::from_secs(10),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    bin.kill9();
    let acked = run.await.unwrap();
    assert!(
        acked.len() > 20,
        "load ran before the kill ({} acks)",
        acked.len()
    );
    let timed_out = acked.iter().filter(|(_, status)| *status == 202).count();
    assert!(
        timed_out > 0,
        "some provider calls timed out before the kill"
    );

    let bin = spawn_binary(&data, &env);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut resolved = HashMap::new();
    for (id, _) in &acked {
        loop {
            let answer = get_at(
                &client,
                &bin.base,
                MERCHANT_KEY,
                &format!("/v1/payments/{id}"),
            )
            .await;
            assert_eq!(answer.status, 200, "acknowledged {id} is present");
            let payment = answer.json();
            if payment["status"] != "processing" {
                assert_eq!(payment["status"], "succeeded", "{payment}");
                resolved.insert(
                    payment["order_no"].as_str().unwrap().to_owned(),
                    payment["provider_payment_id"].as_str().unwrap().to_owned(),
                );
                break;
            }
            assert!(Instant::now() < deadline, "{id} still processing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut charges: HashMap<String, Vec<String>> = HashMap::new();
    for intent in list_all(&sandbox.base, KEY, "/v1/payment_intents", "").await {
        if intent["status"] == "succeeded" {
            // The payment key travels as metadata (DESIGN §2 "Provider"); one merchant here.
            assert_eq!(intent["metadata"]["merchant_id"], "m_demo", "{intent}");
            let order_no = intent["metadata"]["order_no"].as_str().unwrap().to_owned();
            charges
                .entry(order_no)
                .or_default()
                .push(intent["id"].as_str().unwrap().to_owned());
        }
    }
    for (order_no, intents) in &charges {
        assert_eq!(
            intents.len(),
            1,
            "{order_no} charged {} times",
            intents.len()
        );
    }
    for (order_no, provider_payment_id) in &resolved {
        assert_eq!(
            charges.get(order_no),
            Some(&vec![provider_payment_id.clone()]),
            "{order_no}"
        );
    }
    bin.kill9();
}
