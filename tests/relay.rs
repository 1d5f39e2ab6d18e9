//! The outbox relay to NATS JetStream (issue 18), against a real `nats-server -js` on a
//! loopback port: every event once in the stream, in commit order (so in order per
//! payment), after 1,000 creates and refunds, after kill -9 of paykeep, of nats-server and
//! of both; payments unaffected while the broker is away, the backlog drained after; and
//! bad input (unreachable or wrong `relay.url`, a stream with other subjects, a broker
//! without JetStream) leaves start-up working, `/readyz` ready with the relay degraded
//! and why, and nothing lost.

mod common;
mod relay_support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{create_at, get_at, order, spawn_binary, temp_data_dir, MERCHANT_KEY};
use futures::StreamExt;
use relay_support::{free_port, read_stream, NatsServer, StreamedEvent};
use serde_json::{json, Value};

const STREAM: &str = "PAYKEEP_EVENTS";
const PREFIX: &str = "paykeep.events";
const ADMIN_TOKEN: &str = "admin_demo_token";

fn relay_on(config: &mut paykeep::config::Config, url: &str) {
    config.relay.kind = "nats".to_owned();
    config.relay.url = url.to_owned();
}

fn relay_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PAYKEEP_RELAY__KIND", "nats".to_owned()),
        ("PAYKEEP_RELAY__URL", url.to_owned()),
    ]
}

/// Every outbox event, oldest first, through `GET /admin/events`.
async fn outbox(base: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let page = get_at(
            &client,
            base,
            ADMIN_TOKEN,
            &format!("/admin/events?limit=100&after={after}"),
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.text);
        let page = page.json();
        out.extend(page["data"].as_array().expect("data").iter().cloned());
        if page["has_more"] != true {
            return out;
        }
        after = page["next_after"].as_str().expect("next_after").to_owned();
    }
}

async fn readyz(base: &str) -> Value {
    let answer = get_at(&reqwest::Client::new(), base, MERCHANT_KEY, "/readyz").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json()
}

/// Waits until `/readyz` says the relay is ok with nothing left to publish.
async fn wait_drained(base: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let ready = readyz(base).await;
        let relay = &ready["checks"]["relay"];
        if relay["status"] == "ok" && relay["lag_events"] == 0 {
            return relay.clone();
        }
        assert!(Instant::now() < deadline, "relay not drained: {relay}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the relay is degraded with `lag` events waiting, and returns its check.
async fn wait_degraded_with_lag(base: &str, lag: u64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let relay = readyz(base).await["checks"]["relay"].clone();
        if relay["status"] == "degraded" && relay["lag_events"] == lag {
            return relay;
        }
        assert!(
            Instant::now() < deadline,
            "relay not degraded with {lag} waiting: {relay}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the outbox holds `count` events (refunds finish in the background).
async fn wait_outbox(base: &str, count: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let events = outbox(base).await;
        if events.len() >= count {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "outbox holds {} of {count}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the relay shows `status` and returns its check.
async fn wait_relay_status(base: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let relay = readyz(base).await["checks"]["relay"].clone();
        if relay["status"] == status {
            return relay;
        }
        assert!(Instant::now() < deadline, "relay never {status}: {relay}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The contract: the stream holds exactly the outbox's events, once each, as the event
/// object, on `{prefix}.{type}` with `Nats-Msg-Id` = event id, in commit order; so a
/// consumer sees each payment's events in the order they were committed.
fn assert_exactly_once_in_order(streamed: &[StreamedEvent], outbox: &[Value]) {
    let mut seen = HashSet::new();
    for message in streamed {
        assert!(
            seen.insert(message.message_id.clone()),
            "event {} is in the stream twice",
            message.message_id
        );
    }
    let by_id: HashMap<&str, &Value> = outbox
        .iter()
        .map(|e| (e["id"].as_str().expect("id"), e))
        .collect();
    assert_eq!(
        streamed.len(),
        outbox.len(),
        "the stream holds every outbox event"
    );
    for message in streamed {
        let event = by_id
            .get(message.message_id.as_str())
            .unwrap_or_else(|| panic!("{} is not an outbox event", message.message_id));
        assert_eq!(&message.body, *event, "the message is the event object");
        assert_eq!(
            message.subject,
            format!("{PREFIX}.{}", event["type"].as_str().expect("type"))
        );
    }
    let sequence = |m: &StreamedEvent| -> u64 {
        m.body["sequence"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("sequence")
    };
    for pair in streamed.windows(2) {
        assert!(
            sequence(&pair[0]) < sequence(&pair[1]),
            "stream order is commit order: {} before {}",
            sequence(&pair[0]),
            sequence(&pair[1])
        );
    }
    // What a consumer cares about, said outright: per payment, commit order.
    let mut last_of_payment: HashMap<String, u64> = HashMap::new();
    for message in streamed {
        let Some(payment) = message.body["payload"]["payment_id"].as_str() else {
            continue;
        };
        let seq = sequence(message);
        if let Some(before) = last_of_payment.insert(payment.to_owned(), seq) {
            assert!(before < seq, "payment {payment}: {before} then {seq}");
        }
    }
}

async fn refund(client: &reqwest::Client, base: &str, payment_id: &str, operator: &str) {
    let answer = client
        .post(format!("{base}/v1/payments/{payment_id}/refunds"))
        .bearer_auth(MERCHANT_KEY)
        .json(&json!({"amount": 500, "reason": "damaged", "operator_id": operator}))
        .send()
        .await
        .expect("refund");
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
}

/// `count` creates from `workers` tasks (orders `{prefix}-{i}`); the payment ids.
async fn creates(base: &str, prefix: &str, count: usize, workers: usize) -> Vec<String> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks = (0..workers).map(|_| {
        let (base, prefix, next) = (base.to_owned(), prefix.to_owned(), next.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return ids;
                }
                let answer = create_at(
                    &client,
                    &base,
                    MERCHANT_KEY,
                    None,
                    &order(&format!("{prefix}-{i}")),
                )
                .await;
                assert_eq!(answer.status, 201, "{}", answer.text);
                ids.push(answer.json()["id"].as_str().expect("id").to_owned());
            }
        })
    });
    let mut ids = Vec::new();
    for task in futures::future::join_all(tasks).await {
        ids.extend(task.expect("worker"));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_creates_and_refunds_are_in_the_stream_once_each_in_order() {
    let nats = NatsServer::start();
    let svc = common::start(|c| relay_on(c, &nats.url())).await;
    let ids = creates(&svc.base, "rel", 1000, 16).await;
    // Two partial refunds on every fourth payment, each after the payment's own event.
    let refunds = ids.iter().step_by(4).map(|id| {
        let (base, id) = (svc.base.clone(), id.clone());
        async move {
            let client = reqwest::Client::new();
            refund(&client, &base, &id, "alice").await;
            refund(&client, &base, &id, "bob").await;
        }
    });
    futures::stream::iter(refunds)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    wait_outbox(&svc.base, 1000 + 2 * 250, Duration::from_secs(30)).await;
    let relay = wait_drained(&svc.base, Duration::from_secs(60)).await;
    let outbox = outbox(&svc.base).await;
    assert_eq!(
        outbox.len(),
        1000 + 2 * 250,
        "one event per create and refund"
    );
    assert_eq!(
        relay["published_through_seq"],
        outbox.last().unwrap()["sequence"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    );
    let js = nats.jetstream().await;
    let streamed = read_stream(&js, STREAM).await;
    assert_exactly_once_in_order(&streamed, &outbox);
    // The stream the relay created keeps duplicates out for at least two minutes.
    let info = js.get_stream(STREAM).await.unwrap();
    assert!(info.cached_info().config.duplicate_window >= Duration::from_secs(120));
    assert_eq!(
        info.cached_info().config.subjects,
        vec![format!("{PREFIX}.>")]
    );
    let metrics = svc.get("/metrics").await.text;
    assert!(metrics.contains("relay_published_total 1500"), "{metrics}");
    assert!(metrics.contains("relay_lag_events 0"), "{metrics}");
    assert!(
        metrics.contains("relay_oldest_unpublished_seconds 0"),
        "{metrics}"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_of_paykeep_then_of_nats_then_of_both_leaves_every_event_once_in_order() {
    let mut nats = NatsServer::start();
    let (_dir, data) = temp_data_dir();
    let env = relay_env(&nats.url());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // A duplicate window of 1 s, and restarts after it has passed: what keeps the stream
    // exact is the relay resuming right after the stream's last message, not the window.
    nats.jetstream()
        .await
        .create_stream(async_nats::jetstream::stream::Config {
            name: STREAM.to_owned(),
            subjects: vec![format!("{PREFIX}.>")],
            duplicate_window: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();

    // 1. kill -9 paykeep mid-load (its stored cursor is behind the stream), restart.
    let bin = spawn_binary(&data, &env);
    let load = tokio::spawn(common::create_load(
        bin.base.clone(),
        8,
        Instant::now() + Duration::from_secs(3),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    bin.kill9();
    let acked_first = load.await.unwrap();
    assert!(!acked_first.is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bin = spawn_binary(&data, &env);
    wait_drained(&bin.base, Duration::from_secs(60)).await;
    let js = nats.jetstream().await;
    assert_exactly_once_in_order(&read_stream(&js, STREAM).await, &outbox(&bin.base).await);

    // 2. kill -9 nats-server for 10 s under load: payments go on, latency unharmed.
    let before = timed_creates(&bin.base, "before", Duration::from_secs(2)).await;
    nats.kill9();
    let outage = tokio::spawn(timed_creates_owned(
        bin.base.clone(),
        "outage",
        Duration::from_secs(10),
    ));
    let degraded = wait_relay_status(&bin.base, "degraded", Duration::from_secs(8)).await;
    assert!(
        degraded["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{degraded}"
    );
    assert_eq!(readyz(&bin.base).await["status"], "ready");
    let during = outage.await.unwrap();
    let lag = readyz(&bin.base).await["checks"]["relay"]["lag_events"]
        .as_u64()
        .unwrap();
    assert!(lag > 0, "the backlog grew while the broker was away");
    let (p50_before, p50_during) = (percentile(&before, 0.5), percentile(&during, 0.5));
    assert!(
        p50_during <= p50_before * 3 + Duration::from_millis(20),
        "create latency p50 {p50_before:?} before, {p50_during:?} with the broker away"
    );
    nats.restart();
    wait_drained(&bin.base, Duration::from_secs(60)).await;
    let js = nats.jetstream().await;
    assert_exactly_once_in_order(&read_stream(&js, STREAM).await, &outbox(&bin.base).await);

    // 3. kill -9 both under load, restart both.
    let load = tokio::spawn(common::create_load(
        bin.base.clone(),
        8,
        Instant::now() + Duration::from_secs(3),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nats.kill9();
    bin.kill9();
    let _ = load.await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nats.restart();
    let bin = spawn_binary(&data, &env);
    wait_drained(&bin.base, Duration::from_secs(60)).await;
    let js = nats.jetstream().await;
    assert_exactly_once_in_order(&read_stream(&js, STREAM).await, &outbox(&bin.base).await);
}

async fn timed_creates_owned(base: String, prefix: &'static str, run: Duration) -> Vec<Duration> {
    timed_creates(&base, prefix, run).await
}

/// Unique creates from 4 workers for `run`; each one's latency. Every create must succeed.
async fn timed_creates(base: &str, prefix: &str, run: Duration) -> Vec<Duration> {
    let stop = Instant::now() + run;
    let tasks = (0..4).map(|w| {
        let (base, prefix) = (base.to_owned(), prefix.to_owned());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut out = Vec::new();
            let mut i = 0;
            while Instant::now() < stop {
                let started = Instant::now();
                let answer = create_at(
                    &client,
                    &base,
                    MERCHANT_KEY,
                    None,
                    &order(&format!("{prefix}-{w}-{i}")),
                )
                .await;
                assert_eq!(answer.status, 201, "{}", answer.text);
                out.push(started.elapsed());
                i += 1;
            }
            out
        })
    });
    let mut out = Vec::new();
    for task in futures::future::join_all(tasks).await {
        out.extend(task.unwrap());
    }
    out
}

fn percentile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_url_degrades_then_the_backlog_drains_when_the_broker_comes() {
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let svc = common::start(|c| relay_on(c, &url)).await;
    creates(&svc.base, "early", 20, 4).await;
    let relay = wait_degraded_with_lag(&svc.base, 20, Duration::from_secs(10)).await;
    let reason = relay["reason"].as_str().unwrap();
    assert!(reason.contains("cannot connect"), "{reason}");
    assert!(reason.contains(&url), "the reason names the url: {reason}");
    assert_eq!(readyz(&svc.base).await["status"], "ready");
    let metrics = svc.get("/metrics").await.text;
    assert!(metrics.contains("relay_lag_events 20"), "{metrics}");
    // Nothing was lost: the broker arrives and gets all of it.
    let nats = NatsServer::start_on(port, true);
    wait_drained(&svc.base, Duration::from_secs(30)).await;
    let streamed = read_stream(&nats.jetstream().await, STREAM).await;
    assert_exactly_once_in_order(&streamed, &outbox(&svc.base).await);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_url_and_a_peer_that_is_not_nats_degrade_with_their_reason() {
    for (url, expected) in [
        ("not a url at all".to_owned(), "cannot connect"),
        (
            format!("nats://127.0.0.1:{}", idle_listener_port()),
            "cannot connect",
        ),
    ] {
        let svc = common::start(|c| relay_on(c, &url)).await;
        creates(&svc.base, "wrong", 3, 1).await;
        let relay = wait_degraded_with_lag(&svc.base, 3, Duration::from_secs(15)).await;
        let reason = relay["reason"].as_str().unwrap();
        assert!(reason.contains(expected), "{url}: {reason}");
        assert_eq!(readyz(&svc.base).await["status"], "ready");
        svc.shutdown().await;
    }
}

/// A port where something accepts connections and never speaks (not a NATS server).
fn idle_listener_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_other_subjects_degrades_and_loses_nothing() {
    let nats = NatsServer::start();
    let js = nats.jetstream().await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: STREAM.to_owned(),
        subjects: vec!["orders.>".to_owned()],
        ..Default::default()
    })
    .await
    .unwrap();
    let svc = common::start(|c| relay_on(c, &nats.url())).await;
    creates(&svc.base, "foreign", 5, 1).await;
    let relay = wait_degraded_with_lag(&svc.base, 5, Duration::from_secs(10)).await;
    let reason = relay["reason"].as_str().unwrap();
    assert!(
        reason.contains(STREAM) && reason.contains("orders.>") && reason.contains("subjects"),
        "{reason}"
    );
    assert_eq!(readyz(&svc.base).await["status"], "ready");
    // The operator fixes the stream: the backlog goes out, nothing lost.
    js.update_stream(async_nats::jetstream::stream::Config {
        name: STREAM.to_owned(),
        subjects: vec!["orders.>".to_owned(), format!("{PREFIX}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    wait_drained(&svc.base, Duration::from_secs(30)).await;
    let streamed = read_stream(&js, STREAM).await;
    assert_exactly_once_in_order(&streamed, &outbox(&svc.base).await);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_jetstream_answers_errors_and_the_relay_says_why() {
    let nats = NatsServer::start_on(free_port(), false);
    let svc = common::start(|c| relay_on(c, &nats.url())).await;
    creates(&svc.base, "nojs", 2, 1).await;
    let relay = wait_degraded_with_lag(&svc.base, 2, Duration::from_secs(15)).await;
    let reason = relay["reason"].as_str().unwrap();
    assert!(reason.contains("JetStream"), "{reason}");
    assert_eq!(readyz(&svc.base).await["status"], "ready");
    svc.shutdown().await;
}

#[tokio::test]
async fn with_the_relay_off_readyz_says_off_and_the_metrics_are_at_zero() {
    let svc = common::start(|_| {}).await;
    let ready = readyz(&svc.base).await;
    assert_eq!(ready["checks"]["relay"]["status"], "off");
    let metrics = svc.get("/metrics").await.text;
    for line in [
        "relay_published_total 0",
        "relay_lag_events 0",
        "relay_oldest_unpublished_seconds 0",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restored_from_an_older_copy_gets_the_lost_tail_again_once() {
    let nats = NatsServer::start();
    let (_dir, data) = temp_data_dir();
    let env = relay_env(&nats.url());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bin = spawn_binary(&data, &env);
    creates(&bin.base, "restored", 40, 4).await;
    wait_drained(&bin.base, Duration::from_secs(30)).await;
    // Past the cursor's write interval: the stored cursor says all 40 are in the stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(bin.terminate().success());
    // The broker comes back from an older copy: the stream holds only the first 25 events
    // (and paykeep's stored cursor is past them).
    let js = nats.jetstream().await;
    let before = read_stream(&js, STREAM).await;
    assert_eq!(before.len(), 40);
    js.delete_stream(STREAM).await.unwrap();
    js.create_stream(async_nats::jetstream::stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![format!("{PREFIX}.>")],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap();
    for message in &before[..25] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            message.message_id.as_str(),
        );
        js.publish_with_headers(
            message.subject.clone(),
            headers,
            message.body.to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let bin = spawn_binary(&data, &env);
    wait_drained(&bin.base, Duration::from_secs(30)).await;
    assert_exactly_once_in_order(&read_stream(&js, STREAM).await, &outbox(&bin.base).await);
}

#[test]
fn the_log_says_a_cause_once_a_minute_not_once_a_retry() {
    let (_dir, data) = temp_data_dir();
    let log = tempfile::NamedTempFile::new().unwrap();
    let url = format!("nats://127.0.0.1:{}", free_port());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_paykeep"));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .env("PAYKEEP_RELAY__KIND", "nats")
        .env("PAYKEEP_RELAY__URL", &url)
        .stdout(std::process::Stdio::piped())
        .stderr(log.reopen().unwrap());
    let (mut child, _addr) = common::spawn_listening(command);
    // The retry schedule tries about ten times in these 5 s.
    std::thread::sleep(Duration::from_secs(5));
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(log.path()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("relay degraded"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("cannot connect"), "{}", lines[0]);
}
