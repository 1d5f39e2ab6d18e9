//! Issue 17, item 3, on the real binary as an operator runs it, stderr to a file: an
//! `X-Request-Id` on every answer (the client's when valid, a new one said so in
//! `X-Request-Id-Replaced` when not), one access-log line per request with that id, the id on
//! the shard's lines of the request, a line when a `processing` payment resolves, JSON
//! fields at the top level, no ANSI codes in a file, and the start-up line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// `paykeep serve` with `--log-format format`, stderr into `log`.
fn spawn(data: &Path, log: &Path, format: &str) -> (Child, String) {
    let file = std::fs::File::create(log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_paykeep"));
    command
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            format,
            "--data-dir",
        ])
        .arg(data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(file);
    let (child, addr) = common::spawn_listening(command);
    (child, format!("http://{addr}"))
}

fn stop(mut child: Child, log: &PathBuf) -> String {
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::read_to_string(log).unwrap()
}

async fn get(base: &str, path: &str, request_id: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(id) = request_id {
        request = request.header("X-Request-Id", id);
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn create(base: &str, order_no: &str, method: &str, request_id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/payments"))
        .bearer_auth(common::MERCHANT_KEY)
        .header("X-Request-Id", request_id)
        .json(&common::order_with(order_no, method))
        .send()
        .await
        .unwrap()
}

fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_carries_the_clients_request_id() {
    let (_dir, data) = common::temp_data_dir();
    let log = data.with_extension("log");
    let (child, base) = spawn(&data, &log, "json");

    let created = create(&base, "req-id-1", "pm_card_visa", "client-req-17").await;
    assert_eq!(created.status(), 201);
    assert_eq!(
        header(&created, "x-request-id").as_deref(),
        Some("client-req-17")
    );
    assert_eq!(header(&created, "x-request-id-replaced"), None);

    let transient = create(&base, "req-id-2", "pm_sim_transient", "transient-req-17").await;
    assert_eq!(transient.status(), 202);
    let payment: Value = transient.json().await.unwrap();
    let payment_id = payment["id"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    common::wait_for_status(
        &client,
        &base,
        &payment_id,
        "succeeded",
        Duration::from_secs(10),
    )
    .await;

    let too_long = "r".repeat(129);
    let replaced = get(&base, "/healthz", Some(&too_long)).await;
    let new_id = header(&replaced, "x-request-id").unwrap();
    assert_ne!(new_id, too_long);
    assert_eq!(new_id.len(), 26, "a ULID: {new_id}");
    assert_eq!(
        header(&replaced, "x-request-id-replaced").as_deref(),
        Some("too_long")
    );
    let spaced = get(&base, "/healthz", Some("has a space")).await;
    assert_eq!(
        header(&spaced, "x-request-id-replaced").as_deref(),
        Some("not_visible_ascii")
    );
    let longest = "L".repeat(128);
    let kept = get(&base, "/healthz", Some(&longest)).await;
    assert_eq!(header(&kept, "x-request-id"), Some(longest.clone()));
    let unsent = get(&base, "/no/such/route", None).await;
    assert_eq!(unsent.status(), 404);
    assert_eq!(header(&unsent, "x-request-id").map(|id| id.len()), Some(26));
    assert_eq!(header(&unsent, "x-request-id-replaced"), None);
    // Let the last lines be written.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let logged = stop(child, &log);
    let lines = json_lines(&logged);
    let started = lines
        .iter()
        .find(|l| l["message"] == "paykeep started")
        .unwrap_or_else(|| panic!("no start-up line in {logged}"));
    assert_eq!(started["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(started["provider"], "simulator");
    assert_eq!(started["data_dir"], data.display().to_string());
    assert!(started["shards"].as_u64().unwrap() >= 1);
    assert!(started["addr"].as_str().unwrap().starts_with("127.0.0.1:"));

    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "paykeep::access")
        .collect();
    let by_id = |id: &str| -> Vec<&Value> {
        access
            .iter()
            .copied()
            .filter(|l| l["request_id"] == id)
            .collect()
    };
    let create_lines = by_id("client-req-17");
    assert_eq!(
        create_lines.len(),
        1,
        "one access line per request: {logged}"
    );
    let line = create_lines[0];
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "create_payment");
    assert_eq!(line["status"], 201);
    assert_eq!(line["merchant_id"], "m_demo");
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(
        line.get("fields").is_none(),
        "fields at the top level: {line}"
    );
    let health = by_id(&new_id);
    assert_eq!(health.len(), 1);
    assert_eq!(health[0]["route"], "healthz");
    assert_eq!(health[0]["merchant_id"], "");
    assert_eq!(by_id(&longest).len(), 1);
    assert!(access
        .iter()
        .any(|l| l["route"] == "unmatched" && l["status"] == 404));
    // Seven requests, seven lines, plus the polls of wait_for_status.
    assert!(access.len() >= 7);

    // The shard's warning about the unresolved charge is the request's.
    let shard_line = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("provider call unresolved"))
        })
        .unwrap_or_else(|| panic!("no unresolved-charge warning in {logged}"));
    assert_eq!(
        shard_line["span"]["request_id"], "transient-req-17",
        "{shard_line}"
    );
    assert_eq!(shard_line["span"]["merchant_id"], "m_demo", "{shard_line}");
    // And its way out.
    let resolved = lines
        .iter()
        .find(|l| l["message"] == "processing payment resolved")
        .unwrap_or_else(|| panic!("no resolved line in {logged}"));
    assert_eq!(resolved["payment_id"], payment_id.as_str());
    assert_eq!(resolved["status"], "succeeded");
    assert!(
        !logged.contains(common::MERCHANT_KEY),
        "the merchant key reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_log_in_a_file_has_no_ansi_codes() {
    let (_dir, data) = common::temp_data_dir();
    let log = data.with_extension("log");
    let (child, base) = spawn(&data, &log, "text");
    let created = create(&base, "text-1", "pm_card_visa", "text-req-17").await;
    assert_eq!(created.status(), 201);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logged = stop(child, &log);
    assert!(
        !logged.contains('\u{1b}'),
        "ANSI escape in a file: {logged:?}"
    );
    let line = logged
        .lines()
        .find(|l| l.contains("paykeep::access"))
        .unwrap_or_else(|| panic!("no access line: {logged}"));
    for field in [
        "request_id=text-req-17",
        "method=POST",
        "route=\"create_payment\"",
        "status=201",
        "merchant_id=\"m_demo\"",
        "duration_ms=",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    assert!(logged.contains("paykeep started"), "{logged}");
}
