//! Helpers of the notification tests: the service with fast retries and channels pointed
//! at loopback fakes (wiremock), admin requests, and polling for delivery states.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use paykeep::app::Running;
use paykeep::clock::ManualClock;
use paykeep::config::Config;
use serde_json::Value;

use crate::common::{self, read, Answer};

pub const ADMIN_TOKEN: &str = "admin_demo_token";

/// A loopback fake that answers every POST with 200.
pub async fn ok_sink() -> wiremock::MockServer {
    let sink = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&sink)
        .await;
    sink
}
/// The Standard Webhooks test-vector secret.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Retries after 1 s without jitter, so fault sequences finish quickly.
pub fn fast_retries(config: &mut Config) {
    config.notifications.retry_schedule = vec![Duration::from_secs(1)];
    config.notifications.jitter_ratio = 0.0;
}

/// The signed-webhook channel on `url`.
pub fn webhook_to(config: &mut Config, url: &str) {
    config.notifications.webhook.enabled = true;
    config.notifications.webhook.url = url.to_owned();
    config.notifications.webhook.secret = WEBHOOK_SECRET.to_owned();
}

/// A service on a data directory the caller keeps (for restarts).
pub struct Svc {
    pub base: String,
    pub client: reqwest::Client,
    running: Option<Running>,
}

pub async fn start_in(dir: &Path, adjust: impl FnOnce(&mut Config)) -> Svc {
    let mut config = common::test_config(dir);
    adjust(&mut config);
    config.validate().expect("valid test config");
    let running = paykeep::app::start(config, std::future::pending())
        .await
        .expect("service starts");
    Svc {
        base: format!("http://{}", running.addr),
        client: reqwest::Client::new(),
        running: Some(running),
    }
}

impl Svc {
    pub async fn shutdown(mut self) {
        self.client = reqwest::Client::new();
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

pub async fn admin(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let mut request = client
        .request(method.parse().expect("method"), format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(body);
    }
    read(request.send().await.expect("request")).await
}

/// Every delivery (all pages).
pub async fn all_deliveries(client: &reqwest::Client, base: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = format!("/admin/deliveries?limit=500{sep}{query}{after}");
        let page = admin(client, base, "GET", &path, None).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let page = page.json();
        out.extend(page["data"].as_array().cloned().unwrap_or_default());
        if page["has_more"] != true {
            return out;
        }
        after = format!(
            "&after={}",
            page["next_after"].as_str().expect("next_after")
        );
    }
}

/// Polls until `check` holds for the deliveries matching `query`, or panics at `within`.
pub async fn wait_deliveries(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    within: Duration,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let deliveries = all_deliveries(client, base, query).await;
        if check(&deliveries) {
            return deliveries;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never matched: {}",
            serde_json::to_string_pretty(&deliveries).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`wait_deliveries`] on a manual clock: after each look that does not match, the clock
/// moves `step` on, so retries come due without the test waiting out their schedule.
pub async fn wait_deliveries_moving(
    clock: &ManualClock,
    step: Duration,
    client: &reqwest::Client,
    base: &str,
    query: &str,
    within: Duration,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let check_or_move = |deliveries: &[Value]| {
        let matched = check(deliveries);
        if !matched {
            clock.advance(step);
        }
        matched
    };
    wait_deliveries(client, base, query, within, check_or_move).await
}

/// Every delivery has `status` (and there is at least `count`).
pub fn all_with(status: &str, count: usize) -> impl Fn(&[Value]) -> bool + '_ {
    move |ds: &[Value]| ds.len() >= count && ds.iter().all(|d| d["status"] == status)
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn ms(text: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(
        text.as_str().expect("a time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A create that must succeed; returns the payment id.
pub async fn pay(client: &reqwest::Client, base: &str, order_no: &str) -> String {
    let answer = common::create_at(
        client,
        base,
        common::MERCHANT_KEY,
        None,
        &common::order(order_no),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json()["id"].as_str().expect("id").to_owned()
}
