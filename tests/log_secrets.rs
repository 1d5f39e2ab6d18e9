//! Secrets never reach a log line (DESIGN §3), in any encoding: the real binary at
//! `RUST_LOG=trace`, its Telegram channel pointed at a loopback fake that answers every
//! `sendMessage` with 400 and the bot token echoed raw, percent-encoded and in base64.
//! Whatever logs it — the channel's verdict, the HTTP client's trace lines with the request
//! path — stderr holds no form of the token, nor of the admin token or a merchant key.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "7012345678:AAH-sEcReT_t0ken~part";

fn forms(secret: &str) -> Vec<String> {
    vec![
        secret.to_owned(),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        STANDARD.encode(secret),
        URL_SAFE.encode(secret),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_carries_a_secret_in_any_form() {
    let telegram = MockServer::start().await;
    let echo = forms(TOKEN).join(" | ");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"ok": false, "error_code": 400, "description": format!("Bad Request: {echo}")}),
        ))
        .mount(&telegram)
        .await;
    let (_dir, data) = common::temp_data_dir();
    let log_path = data.with_extension("log");
    std::fs::create_dir_all(&data).unwrap();
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_paykeep"));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "trace")
        .env("PAYKEEP_NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "true")
        .env("PAYKEEP_NOTIFICATIONS__TELEGRAM__ENABLED", "true")
        .env(
            "PAYKEEP_NOTIFICATIONS__TELEGRAM__API_BASE_URL",
            telegram.uri(),
        )
        .env("PAYKEEP_NOTIFICATIONS__TELEGRAM__BOT_TOKEN", TOKEN)
        .env("PAYKEEP_NOTIFICATIONS__TELEGRAM__CHAT_IDS", "[\"5\"]")
        .stdout(Stdio::piped())
        .stderr(log);
    let (mut child, addr) = common::spawn_listening(command);
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let created = common::create_at(
        &client,
        &base,
        common::MERCHANT_KEY,
        Some("log-secrets-1"),
        &common::order("log-secrets-1"),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let deadline = Instant::now() + Duration::from_secs(20);
    while telegram
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the channel was never called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the verdict be logged.
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let mut logged = String::new();
    std::fs::File::open(&log_path)
        .unwrap()
        .read_to_string(&mut logged)
        .unwrap();
    assert!(logged.lines().count() > 10, "trace logging ran: {logged}");
    for secret in [TOKEN, "admin_demo_token", common::MERCHANT_KEY] {
        for form in forms(secret) {
            assert!(
                !logged.contains(&form),
                "the log carries {form:?} (a form of {secret:?})"
            );
        }
    }
    assert!(
        logged.contains("[redacted]"),
        "the token was logged, redacted"
    );
}
