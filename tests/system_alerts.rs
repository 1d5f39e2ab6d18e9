//! Issue 17, item 4: the service's own system alerts, raised by their real conditions and
//! sent through the outbox: the provider (a `paykeep sandbox`) stopped, a channel answering
//! 401, a sink answering 410; each raised once and not repeated within its window. Plus the
//! metrics alerts depend on: every family of deploy/ present at start-up, the gauges moving
//! with a stuck payment, the sandbox's own `/metrics`.

mod common;
mod provider_common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use paykeep::config::Config;
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{order, start, Service};

const ADMIN: &str = "admin_demo_token";

/// Alerts checked every 50 ms, one per cause per hour.
fn fast_alerts(c: &mut Config) {
    c.alerts.check_interval = Duration::from_millis(50);
    c.alerts.window = Duration::from_secs(3600);
}

/// Every outbox event, oldest first.
async fn events(svc: &Service) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = String::from("0");
    loop {
        let page: Value = svc
            .client
            .get(svc.url(&format!("/admin/events?limit=100&after={after}")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        if page["has_more"] != true {
            return out;
        }
        after = page["next_after"].as_str().unwrap().to_owned();
    }
}

async fn of_type(svc: &Service, kind: &str) -> Vec<Value> {
    events(svc)
        .await
        .into_iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

/// Waits until an event of `kind` exists; returns every one of that kind.
async fn wait_for_event(svc: &Service, kind: &str, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let found = of_type(svc, kind).await;
        if !found.is_empty() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} event within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that `kind` stays at exactly one event (per `entity_id`) over 20 more checks.
async fn assert_not_repeated(svc: &Service, kind: &str) {
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let found = of_type(svc, kind).await;
    let causes: BTreeSet<String> = found
        .iter()
        .map(|e| e["entity_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(found.len(), causes.len(), "{kind} repeated: {found:#?}");
}

async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample line `series` (name and labels exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn admin_post(svc: &Service, path: &str) -> Value {
    let answer = svc
        .client
        .post(svc.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().await.unwrap()
}

async fn sink(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_string("{}"))
        .mount(&server)
        .await;
    server
}

/// Bodies the sink received that mention `needle`.
async fn received_with(server: &MockServer, needle: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains(needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_unavailable_when_the_sandbox_stops_once_per_window() {
    let sandbox_dir = tempfile::tempdir().unwrap();
    let sandbox = provider_common::spawn_sandbox(sandbox_dir.path(), &[]);
    let sandbox_base = sandbox.base.clone();
    let hook = sink(200).await;
    let hook_url = format!("{}/hooks/ops", hook.uri());
    let provider_url = sandbox.base.clone();
    let svc = start(move |c| {
        fast_alerts(c);
        c.alerts.provider_failing = Duration::from_secs(1);
        c.provider.kind = paykeep::config::ProviderKind::Stripe;
        c.provider.base_url = provider_url;
        c.provider.secret_key = "sk_test_sandbox".into();
        c.provider.timeout = Duration::from_millis(500);
        c.notifications.webhook.enabled = true;
        c.notifications.webhook.url = hook_url;
        c.notifications.webhook.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into();
    })
    .await;
    let paid = svc.create(None, order("alert-ok-1")).await;
    assert_eq!(paid.status, 201, "{}", paid.text);
    // The sandbox counts what it was asked on its own /metrics.
    let sandbox_metrics = metrics(&sandbox_base).await;
    assert_eq!(
        sample(
            &sandbox_metrics,
            "sandbox_requests_total{operation=\"create_payment_intent\",status=\"200\"}"
        ),
        Some(1.0),
        "{sandbox_metrics}"
    );
    assert!(sandbox_metrics.contains("paykeep_build_info{version=\""));
    drop(sandbox);
    let stuck = svc.create(None, order("alert-stuck-1")).await;
    assert_eq!(stuck.status, 202, "{}", stuck.text);
    assert_eq!(stuck.json()["status"], "processing");
    let text = metrics(&svc.base).await;
    assert_eq!(sample(&text, "payments_processing"), Some(1.0), "{text}");

    let raised = wait_for_event(&svc, "system.provider_unavailable", Duration::from_secs(15)).await;
    assert_eq!(raised[0]["level"], "critical");
    assert_eq!(raised[0]["source"], "system");
    assert_not_repeated(&svc, "system.provider_unavailable").await;
    assert_eq!(of_type(&svc, "system.provider_unavailable").await.len(), 1);
    // Delivered through the outbox to the operator channel.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received_with(&hook, "system.provider_unavailable").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the alert never reached the channel"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_paused_when_a_channel_answers_401_once_per_window() {
    let slack = sink(401).await;
    let hook = sink(200).await;
    let (slack_url, hook_url) = (
        format!("{}/services/T0/B0/X", slack.uri()),
        format!("{}/hooks/ops", hook.uri()),
    );
    let svc = start(move |c| {
        fast_alerts(c);
        c.notifications.slack.enabled = true;
        c.notifications.slack.webhook_url = slack_url;
        c.notifications.webhook.enabled = true;
        c.notifications.webhook.url = hook_url;
        c.notifications.webhook.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into();
    })
    .await;
    admin_post(&svc, "/admin/notifications/test").await;
    let raised = wait_for_event(&svc, "system.channel_paused", Duration::from_secs(15)).await;
    assert_eq!(raised[0]["entity_id"], "slack");
    assert_eq!(raised[0]["level"], "warning");
    // The alert itself is paused on slack too; it is not raised again.
    admin_post(&svc, "/admin/notifications/test").await;
    assert_not_repeated(&svc, "system.channel_paused").await;
    assert_eq!(of_type(&svc, "system.channel_paused").await.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while received_with(&hook, "system.channel_paused").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the alert never reached the webhook channel"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = metrics(&svc.base).await;
    assert!(
        sample(&text, "notification_deliveries{status=\"paused\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_when_a_sink_answers_410_once_per_window() {
    let gone = sink(410).await;
    let url = format!("{}/hooks/gone", gone.uri());
    let svc = start(move |c| {
        fast_alerts(c);
        c.alerts.dead_letters_max = std::num::NonZeroU64::new(2).expect("non-zero");
        c.notifications.webhook.enabled = true;
        c.notifications.webhook.url = url;
        c.notifications.webhook.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into();
    })
    .await;
    for _ in 0..2 {
        admin_post(&svc, "/admin/notifications/test").await;
    }
    // Two dead letters are not more than two.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received_with(&gone, "notification.test").await < 2 {
        assert!(Instant::now() < deadline, "the sink was not called twice");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(of_type(&svc, "system.dead_letters").await.is_empty());
    admin_post(&svc, "/admin/notifications/test").await;
    let raised = wait_for_event(&svc, "system.dead_letters", Duration::from_secs(15)).await;
    assert_eq!(raised[0]["level"], "warning");
    // The alert's own delivery dies at the sink too, and more follow: still one alert.
    admin_post(&svc, "/admin/notifications/test").await;
    assert_not_repeated(&svc, "system.dead_letters").await;
    assert_eq!(of_type(&svc, "system.dead_letters").await.len(), 1);
    assert!(received_with(&gone, "system.dead_letters").await >= 1);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_system_alert_while_alert_enabled_is_off() {
    let slack = sink(401).await;
    let slack_url = format!("{}/services/T0/B0/X", slack.uri());
    let svc = start(move |c| {
        fast_alerts(c);
        c.notifications.alert_enabled = false;
        c.notifications.slack.enabled = true;
        c.notifications.slack.webhook_url = slack_url;
    })
    .await;
    admin_post(&svc, "/admin/notifications/test").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while slack
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "slack was never called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(of_type(&svc, "system.channel_paused").await.is_empty());
    svc.shutdown().await;
}

/// Metric names an alert rule or a dashboard panel reads, from the PromQL of `text`: the
/// identifiers left once strings, label matchers, ranges, groupings and PromQL words are
/// taken out.
fn promql_metrics(expr: &str) -> BTreeSet<String> {
    let mut cleaned = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            _ => cleaned.push(c),
        }
    }
    // `by (a, b)` groupings name labels.
    let mut words = Vec::new();
    let mut skip_group = false;
    for token in
        cleaned.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '(' || c == ')'))
    {
        for part in token.split_inclusive(['(', ')']) {
            let word = part.trim_end_matches(['(', ')']);
            if skip_group {
                if part.ends_with(')') {
                    skip_group = false;
                }
                continue;
            }
            if word == "by" || word == "without" {
                skip_group = true;
                continue;
            }
            words.push(word.to_owned());
        }
    }
    const PROMQL: &[&str] = &[
        "sum",
        "rate",
        "increase",
        "delta",
        "histogram_quantile",
        "min_over_time",
        "count",
        "max",
        "min",
        "and",
        "or",
        "unless",
        "offset",
        "bool",
    ];
    words
        .into_iter()
        .filter(|w| w.contains('_') || w.chars().any(|c| c.is_ascii_alphabetic()))
        .filter(|w| !w.is_empty() && !w.chars().next().unwrap().is_ascii_digit())
        .filter(|w| !PROMQL.contains(&w.as_str()))
        .collect()
}

fn deploy_exprs() -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let rules = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml")).unwrap();
    let mut exprs = Vec::new();
    let mut block: Option<String> = None;
    for line in rules.lines() {
        let trimmed = line.trim_start();
        if let Some(current) = block.as_mut() {
            if line.starts_with("          ") && !trimmed.starts_with("for:") {
                current.push(' ');
                current.push_str(trimmed);
                continue;
            }
            exprs.push(block.take().unwrap());
        }
        if let Some(rest) = trimmed.strip_prefix("expr:") {
            let rest = rest.trim();
            if rest == "|" {
                block = Some(String::new());
            } else {
                exprs.push(rest.to_owned());
            }
        }
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/deploy/grafana/paykeep.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_deploy_reads_is_exposed_from_start_up() {
    let svc = start(|_| {}).await;
    let text = metrics(&svc.base).await;
    for series in [
        "payments_processing",
        "refunds_pending",
        "outbox_oldest_undelivered_seconds",
        "notification_delivery_failure_total{channel=\"slack\",retryable=\"false\"}",
        "notification_delivery_success_total{channel=\"telegram\"}",
        "reconciliation_discrepancies_total{type=\"amount_mismatch\"}",
        "payments_created_total{status=\"failed\"}",
        "http_requests_total{route=\"create_payment\",status=\"500\"}",
        "provider_webhooks_total{outcome=\"invalid_signature\"}",
        "refunds_created_total{status=\"pending\"}",
    ] {
        assert_eq!(sample(&text, series), Some(0.0), "{series} at 0 in\n{text}");
    }
    assert_eq!(sample(&text, "paykeep_store_ready"), Some(1.0));
    let version = format!(
        "paykeep_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &version), Some(1.0), "{text}");
    let exposed: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .flat_map(|name| ["", "_bucket", "_count", "_sum"].map(|suffix| format!("{name}{suffix}")))
        .collect();
    // Scraped by Prometheus itself, and issue 14's histogram (not this issue's).
    let elsewhere = [
        "up",
        "provider_request_duration_seconds_count",
        "provider_request_duration_seconds_bucket",
    ];
    let mut read = BTreeSet::new();
    for expr in deploy_exprs() {
        read.extend(promql_metrics(&expr));
    }
    assert!(read.len() >= 15, "parsed {read:?}");
    for name in &read {
        assert!(
            exposed.contains(name) || elsewhere.contains(&name.as_str()),
            "deploy/ reads {name}, which /metrics does not expose at start-up"
        );
    }
    svc.shutdown().await;
}

#[test]
fn zero_or_absurd_alert_thresholds_stop_start_up_naming_the_key() {
    for (key, env, value) in [
        (
            "alerts.provider_failing_s",
            "PAYKEEP_ALERTS__PROVIDER_FAILING_S",
            "0",
        ),
        (
            "alerts.dead_letters_max",
            "PAYKEEP_ALERTS__DEAD_LETTERS_MAX",
            "0",
        ),
        (
            "alerts.dead_letters_max",
            "PAYKEEP_ALERTS__DEAD_LETTERS_MAX",
            "99999999999",
        ),
        ("alerts.window_s", "PAYKEEP_ALERTS__WINDOW_S", "0"),
        (
            "alerts.check_interval_ms",
            "PAYKEEP_ALERTS__CHECK_INTERVAL_MS",
            "86400000",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_paykeep"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("db"))
            .env(env, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env}={value}: {stderr}");
        assert!(
            stderr.contains(key),
            "{env}={value} does not name {key}: {stderr}"
        );
        assert!(
            !dir.path().join("db").exists(),
            "nothing started before validation"
        );
    }
}
