//! Test harness: paykeep in-process on 127.0.0.1:0 with a temporary store, or the real
//! binary as a child process (for restarts and kill -9), and small HTTP helpers.

#![allow(dead_code)]

pub mod python;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paykeep::app::Running;
use paykeep::clock::{ManualClock, SharedClock, SystemClock};
use paykeep::config::Config;
use paykeep::store::{Durability, OpenOptions};
use serde_json::{json, Value};

pub const MERCHANT_KEY: &str = "sk_test_demo";
pub const OTHER_MERCHANT_KEY: &str = "sk_test_other";

/// A service running in this test's runtime.
pub struct Service {
    pub base: String,
    pub client: reqwest::Client,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

/// The embedded config on a free loopback port and a fresh temporary store.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::embedded().expect("embedded config");
    config.server.bind = "127.0.0.1:0".parse().expect("addr");
    config.store.data_dir = dir.join("db");
    config.shards.count = 2;
    // Channels in tests point at loopback fakes (DESIGN §3: set where targets are private);
    // the egress tests turn it off.
    config.notifications.allow_private_targets = true;
    config
}

/// Starts paykeep in-process with `adjust` applied to the test config.
pub async fn start(adjust: impl FnOnce(&mut Config)) -> Service {
    start_in(tempfile::tempdir().expect("tempdir"), adjust).await
}

/// Starts paykeep in-process on a store in `dir` (which a test may have filled first).
pub async fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> Service {
    start_on(dir, Arc::new(SystemClock), adjust).await
}

/// Starts paykeep in-process on `clock`: a test hands in a [`ManualClock`] and moves it
/// past a schedule (a retry, a sweep) instead of sleeping.
pub async fn start_on_clock(clock: Arc<ManualClock>, adjust: impl FnOnce(&mut Config)) -> Service {
    start_on(tempfile::tempdir().expect("tempdir"), clock, adjust).await
}

async fn start_on(
    dir: tempfile::TempDir,
    clock: SharedClock,
    adjust: impl FnOnce(&mut Config),
) -> Service {
    let mut config = test_config(dir.path());
    adjust(&mut config);
    config.validate().expect("valid test config");
    let store = OpenOptions::new(Durability::FlushAndSync);
    let running = paykeep::app::start_on_clock(config, store, clock, std::future::pending())
        .await
        .expect("service starts");
    Service {
        base: format!("http://{}", running.addr),
        client: reqwest::Client::new(),
        running: Some(running),
        _dir: dir,
    }
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `POST /v1/payments` as the demo merchant.
    pub async fn create(&self, key: Option<&str>, body: Value) -> Answer {
        create_at(&self.client, &self.base, MERCHANT_KEY, key, &body).await
    }

    /// `GET path` as the demo merchant.
    pub async fn get(&self, path: &str) -> Answer {
        get_at(&self.client, &self.base, MERCHANT_KEY, path).await
    }

    pub async fn shutdown(mut self) {
        // Close this client's keep-alive connections first, as a departing client would.
        self.client = reqwest::Client::new();
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }

    /// Asserts an RFC 9457 problem with `status` and `code`; returns its body.
    pub fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["code"], code, "body: {}", self.text);
        assert_eq!(body["status"], status);
        assert!(body["type"].as_str().is_some_and(|t| t.ends_with(code)));
        assert!(body["title"].is_string() && body["detail"].is_string());
        body
    }
}

pub async fn read(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Answer {
        status,
        headers,
        text,
    }
}

pub async fn create_at(
    client: &reqwest::Client,
    base: &str,
    api_key: &str,
    key: Option<&str>,
    body: &Value,
) -> Answer {
    let mut request = client
        .post(format!("{base}/v1/payments"))
        .bearer_auth(api_key)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    read(request.send().await.expect("request")).await
}

pub async fn get_at(client: &reqwest::Client, base: &str, api_key: &str, path: &str) -> Answer {
    let response = client
        .get(format!("{base}{path}"))
        .bearer_auth(api_key)
        .send()
        .await
        .expect("request");
    read(response).await
}

/// A create body for `order_no` with `pm_card_visa`.
pub fn order(order_no: &str) -> Value {
    json!({"order_no": order_no, "amount": 1999, "currency": "USD", "payment_method": "pm_card_visa"})
}

/// `order` with another payment method.
pub fn order_with(order_no: &str, payment_method: &str) -> Value {
    json!({"order_no": order_no, "amount": 1999, "currency": "USD", "payment_method": payment_method})
}

/// Polls `GET /v1/payments/{id}` until `status` or the deadline.
pub async fn wait_for_status(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    status: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let answer = get_at(client, base, MERCHANT_KEY, &format!("/v1/payments/{id}")).await;
        if answer.status == 200 && answer.json()["status"] == status {
            return answer.json();
        }
        assert!(
            Instant::now() < deadline,
            "payment {id} not {status}: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real `paykeep` binary as a child process.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
    pub base: String,
}

/// Starts `paykeep serve --bind 127.0.0.1:0 --data-dir data_dir` with extra environment
/// variables, and waits for its "listening" line.
pub fn spawn_binary(data_dir: &Path, env: &[(&str, &str)]) -> Binary {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paykeep"));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    let (child, addr) = spawn_listening(command);
    Binary {
        child,
        addr,
        base: format!("http://{addr}"),
    }
}

/// Spawns `command` (stdout piped) and waits for its "listening on http://ADDR" line, as
/// `paykeep serve` and `paykeep sandbox` print it.
pub fn spawn_listening(mut command: Command) -> (Child, SocketAddr) {
    let mut child = command.spawn().expect("spawn paykeep");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read listening line");
    let addr: SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}

impl Binary {
    /// kill -9.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        self.child.wait().expect("wait")
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn temp_data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    (dir, path)
}

/// Unique creates from `workers` tasks until `stop` (or until the server goes away);
/// returns every acknowledged (2xx) create as (idempotency key, request body, response text).
pub async fn create_load(
    base: String,
    workers: usize,
    stop: Instant,
) -> Vec<(String, Value, String)> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks = (0..workers).map(|w| {
        let (base, acked) = (base.clone(), Arc::clone(&acked));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..100_000 {
                if Instant::now() >= stop {
                    break;
                }
                let key = format!("crash-{w}-{i}");
                let body = order(&key);
                let request = client
                    .post(format!("{base}/v1/payments"))
                    .bearer_auth(MERCHANT_KEY)
                    .header("Idempotency-Key", &key)
                    .json(&body)
                    .timeout(Duration::from_secs(5));
                let Ok(response) = request.send().await else {
                    break;
                };
                let status = response.status().as_u16();
                let Ok(text) = response.text().await else {
                    break;
                };
                if (200..300).contains(&status) {
                    acked.lock().unwrap().push((key, body, text));
                }
            }
        })
    });
    futures::future::join_all(tasks).await;
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

/// Asserts that every acknowledged create (as [`create_load`] returns them) is present and
/// identical at `base`, and that its key replays it: nothing acknowledged was lost.
pub async fn assert_acknowledged_present(base: &str, acked: &[(String, Value, String)]) {
    let client = reqwest::Client::new();
    for (key, body, text) in acked {
        let acknowledged: Value = serde_json::from_str(text).expect("an acknowledged body");
        let id = acknowledged["id"].as_str().expect("an id");
        let read = get_at(&client, base, MERCHANT_KEY, &format!("/v1/payments/{id}")).await;
        assert_eq!(read.status, 200, "acknowledged {id} is present");
        assert_eq!(&read.text, text, "acknowledged {id} is identical");
        let replay = create_at(&client, base, MERCHANT_KEY, Some(key), body).await;
        assert!(replay.replayed(), "{id}: {}", replay.text);
        assert_eq!(
            &replay.text, text,
            "the idempotency entry of {id} survived too"
        );
    }
}
