//! Helpers of the provider-side tests (refunds, sandbox, webhooks, reconciliation): refund
//! requests, the `paykeep sandbox` child process, signed webhook deliveries.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::common::{read, Answer, MERCHANT_KEY};

/// `POST /v1/payments/{payment_id}/refunds` with `api_key`.
pub async fn refund_at(
    client: &reqwest::Client,
    base: &str,
    api_key: &str,
    payment_id: &str,
    key: Option<&str>,
    body: &Value,
) -> Answer {
    let mut request = client
        .post(format!("{base}/v1/payments/{payment_id}/refunds"))
        .bearer_auth(api_key)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    read(request.send().await.expect("request")).await
}

/// A refund as the demo merchant.
pub async fn refund(
    client: &reqwest::Client,
    base: &str,
    payment_id: &str,
    key: Option<&str>,
    body: &Value,
) -> Answer {
    refund_at(client, base, MERCHANT_KEY, payment_id, key, body).await
}

/// `paykeep sandbox` as a child process.
pub struct Sandbox {
    pub child: Child,
    pub addr: SocketAddr,
    pub base: String,
}

/// Starts `paykeep sandbox --bind 127.0.0.1:0 --data-dir data_dir` with extra arguments and
/// waits for its "listening" line.
pub fn spawn_sandbox(data_dir: &Path, args: &[&str]) -> Sandbox {
    spawn_sandbox_at("127.0.0.1:0", data_dir, args)
}

/// [`spawn_sandbox`] on a chosen address.
pub fn spawn_sandbox_at(bind: &str, data_dir: &Path, args: &[&str]) -> Sandbox {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paykeep"));
    command
        .args(["sandbox", "--bind", bind, "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let (child, addr) = crate::common::spawn_listening(command);
    Sandbox {
        child,
        addr,
        base: format!("http://{addr}"),
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every object of a sandbox list at `path` (with `extra` query pairs), read with the API
/// key `key`, paging with `starting_after`.
pub async fn list_all(base: &str, key: &str, path: &str, extra: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1_000 {
        let mut url = format!("{base}{path}?limit=100{extra}");
        if let Some(a) = &after {
            url.push_str(&format!("&starting_after={a}"));
        }
        let page: Value = client
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().unwrap().clone();
        after = data.last().map(|o| o["id"].as_str().unwrap().to_owned());
        out.extend(data);
        if page["has_more"] != true {
            return out;
        }
    }
    panic!("too many pages");
}
