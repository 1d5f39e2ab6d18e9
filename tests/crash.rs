//! The real binary, restarted and killed with SIGKILL: every acknowledged payment survives,
//! identical, and `processing` payments resume with the same provider key.

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_acknowledged_present, create_at, create_load, get_at, order, order_with, spawn_binary,
    temp_data_dir, wait_for_status, Answer, Binary, MERCHANT_KEY,
};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_payments_and_idempotency_entries() {
    let (_dir, data) = temp_data_dir();
    let client = reqwest::Client::new();
    let bin = spawn_binary(&data, &[]);
    let paid = create_on(&client, &bin, Some("r-1"), &order("restart-1")).await;
    let declined = create_on(
        &client,
        &bin,
        None,
        &order_with("restart-2", "pm_card_chargeDeclined"),
    )
    .await;
    assert_eq!((paid.status, declined.status), (201, 201));
    assert!(bin.terminate().success(), "SIGTERM exits cleanly");

    let bin = spawn_binary(&data, &[]);
    let replay = create_on(&client, &bin, Some("r-1"), &order("restart-1")).await;
    assert!(replay.replayed());
    assert_eq!(replay.text, paid.text);
    let replay = create_on(
        &client,
        &bin,
        None,
        &order_with("restart-2", "pm_card_chargeDeclined"),
    )
    .await;
    assert_eq!(replay.text, declined.text);
    let id = paid.json()["id"].as_str().unwrap().to_owned();
    let read = get_at(
        &client,
        &bin.base,
        MERCHANT_KEY,
        &format!("/v1/payments/{id}"),
    )
    .await;
    assert_eq!(read.text, paid.text);
    let other_order = create_on(&client, &bin, Some("r-1"), &order("restart-3")).await;
    other_order.problem(422, "idempotency_key_reused");
    bin.kill9();
}

/// DESIGN §2: same key, same fingerprint → the first response. A finished request is
/// answered from its stored response before the body is validated again, so tightening
/// the rules (here: USD no longer accepted, amounts capped below this one) changes no
/// answer already given; a new order under the new rules is refused and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_keeps_its_answer_after_the_rules_tighten() {
    let (_dir, data) = temp_data_dir();
    let client = reqwest::Client::new();
    let bin = spawn_binary(&data, &[]);
    let by_header = create_on(&client, &bin, Some("t-1"), &order("tight-1")).await;
    let by_order = create_on(&client, &bin, None, &order("tight-2")).await;
    assert_eq!((by_header.status, by_order.status), (201, 201));
    assert!(bin.terminate().success(), "SIGTERM exits cleanly");

    let tighter = [
        ("PAYKEEP_PAYMENTS__CURRENCIES", "[\"EUR\"]"),
        ("PAYKEEP_PAYMENTS__AMOUNT_MINOR_MAX", "100"),
    ];
    let bin = spawn_binary(&data, &tighter);
    let replay = create_on(&client, &bin, Some("t-1"), &order("tight-1")).await;
    assert!(replay.replayed());
    assert_eq!((replay.status, replay.text), (201, by_header.text));
    let replay = create_on(&client, &bin, None, &order("tight-2")).await;
    assert!(replay.replayed());
    assert_eq!((replay.status, replay.text), (201, by_order.text));
    let new_order = create_on(&client, &bin, Some("t-3"), &order("tight-3")).await;
    new_order.problem(400, "invalid_request");
    let absent = get_at(
        &client,
        &bin.base,
        MERCHANT_KEY,
        "/v1/payments?order_no=tight-3",
    )
    .await;
    assert_eq!(absent.status, 404);
    bin.kill9();
}

/// `POST /v1/payments` to `bin` as the demo merchant.
async fn create_on(
    client: &reqwest::Client,
    bin: &Binary,
    key: Option<&str>,
    body: &Value,
) -> Answer {
    create_at(client, &bin.base, MERCHANT_KEY, key, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_concurrent_creates_loses_no_acknowledged_payment() {
    let (_dir, data) = temp_data_dir();
    let bin = spawn_binary(&data, &[]);
    let base = bin.base.clone();
    let load = tokio::spawn(create_load(
        base,
        16,
        Instant::now() + Duration::from_secs(10),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    bin.kill9();
    let acked = load.await.unwrap();
    assert!(
        acked.len() > 50,
        "load ran before the kill ({} acks)",
        acked.len()
    );
    let logged = wal_segments(&data);
    assert!(
        logged.iter().any(|(_, len)| *len > 0),
        "the kill left a write-ahead log for recovery: {logged:?}"
    );

    let bin = spawn_binary(&data, &[]);
    let retired = wal_segments(&data);
    assert!(
        logged
            .iter()
            .all(|old| !retired.iter().any(|new| new.0 == old.0)),
        "recovery applied and retired the segments it found: {logged:?} then {retired:?}"
    );
    assert_acknowledged_present(&bin.base, &acked).await;
    let client = reqwest::Client::new();
    let ready = get_at(&client, &bin.base, MERCHANT_KEY, "/readyz").await;
    assert_eq!(ready.status, 200);
    bin.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processing_payment_found_at_start_up_resumes_with_the_same_provider_key() {
    let (_dir, data) = temp_data_dir();
    let env = [("PAYKEEP_PROVIDER__TIMEOUT_MS", "300")];
    let client = reqwest::Client::new();
    let bin = spawn_binary(&data, &env);
    let first = create_at(
        &client,
        &bin.base,
        MERCHANT_KEY,
        Some("p-1"),
        &order_with("resume-1", "pm_sim_timeout"),
    )
    .await;
    assert_eq!(first.status, 202, "{}", first.text);
    bin.kill9();

    let bin = spawn_binary(&data, &env);
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let done = wait_for_status(
        &client,
        &bin.base,
        &id,
        "succeeded",
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(done["attempt_count"], 1);
    let expected = paykeep::provider::simulator::Simulator::provider_payment_id(
        &paykeep::domain::provider_key::charge_key("m_demo", "resume-1", 1),
    );
    assert_eq!(
        done["provider_payment_id"], expected,
        "same provider idempotency key"
    );
    let replay = create_at(
        &client,
        &bin.base,
        MERCHANT_KEY,
        Some("p-1"),
        &order_with("resume-1", "pm_sim_timeout"),
    )
    .await;
    assert_eq!(
        replay.text, first.text,
        "the key replays its first response"
    );
    bin.kill9();
}

#[test]
fn an_invalid_config_value_stops_start_up_naming_the_key() {
    let (_dir, data) = temp_data_dir();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_paykeep"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("PAYKEEP_STORE__COMMIT_BATCH_MAX", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("store.commit_batch_max"), "{stderr}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_paykeep"))
        .args(["serve", "--bind", "0.0.0.0:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("demo"),
        "demo keys refused off loopback: {stderr}"
    );
}

/// Segment files of the write-ahead log in `data` (`wal/`), with their sizes.
fn wal_segments(data: &std::path::Path) -> Vec<(std::ffi::OsString, u64)> {
    let mut segments: Vec<_> = std::fs::read_dir(data.join("wal"))
        .map(|entries| {
            entries
                .map(|e| {
                    let e = e.unwrap();
                    (e.file_name(), e.metadata().unwrap().len())
                })
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    segments
}
