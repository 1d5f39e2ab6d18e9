//! Notification benchmarks (plain harness: `cargo bench --bench notify`).
//!
//! 1. Delivery throughput: paid orders whose events go to the signed-webhook channel,
//!    pacing off, against a loopback sink that answers 200 at once; reports deliveries per
//!    second at the sink and event → delivered latency (the event's `created_at` to the
//!    sink's receipt), p50 and p99.
//! 2. The create benchmark with no channel enabled and with all six enabled (pacing on, as
//!    in production) against the same sink, at saturation (`PAYKEEP_BENCH_CONCURRENCY`
//!    clients) and at light load (`PAYKEEP_BENCH_LIGHT_CONCURRENCY`, default 4), with the
//!    group committer's mean commit time and batch size.
//!
//! Each scenario runs three times on a fresh store; the median run is reported.
//! `PAYKEEP_BENCH_ORDERS` (default 2000) and `PAYKEEP_BENCH_CONCURRENCY` (default 32)
//! size the runs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paykeep::config::Config;
use paykeep::domain::time::now_ms;
use serde_json::{json, Value};
use warp::Filter;

const RUNS: usize = 3;

/// What the sink saw: (receipt time ms, event created_at ms) per webhook request, and a
/// count of all requests.
#[derive(Default)]
struct Seen {
    webhook: Vec<(i64, i64)>,
    total: usize,
}

/// A loopback server answering every POST with 200 and a body every classifier accepts.
async fn start_sink() -> (SocketAddr, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = Arc::clone(&seen);
    let route = warp::post()
        .and(warp::path::full())
        .and(warp::body::bytes())
        .map(move |path: warp::path::FullPath, body: bytes::Bytes| {
            let received = now_ms();
            let mut seen = record.lock().expect("sink lock");
            seen.total += 1;
            if path.as_str() == "/hook" {
                let created = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|b| b["timestamp"].as_str().map(parse_ms))
                    .unwrap_or(received);
                seen.webhook.push((received, created));
            }
            warp::reply::json(&json!({"ok": true, "code": 0, "result": {}, "id": "x"}))
        });
    let (addr, server) = warp::serve(route).bind_ephemeral(([127, 0, 0, 1], 0));
    tokio::spawn(server);
    (addr, seen)
}

fn parse_ms(text: &str) -> i64 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(0)
}

fn base_config(dir: &std::path::Path) -> Config {
    let mut config = Config::embedded().expect("embedded config");
    config.server.bind = "127.0.0.1:0".parse().expect("addr");
    config.store.data_dir = dir.join("db");
    // The sinks are on loopback.
    config.notifications.allow_private_targets = true;
    config
}

fn webhook_only(config: &mut Config, sink: SocketAddr) {
    let n = &mut config.notifications;
    n.pacing = false;
    n.webhook.enabled = true;
    n.webhook.url = format!("http://{sink}/hook");
    n.webhook.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into();
}

fn every_channel(config: &mut Config, sink: SocketAddr) {
    webhook_only(config, sink);
    let n = &mut config.notifications;
    n.pacing = true;
    let base = format!("http://{sink}");
    n.telegram.enabled = true;
    n.telegram.api_base_url = base.clone();
    n.telegram.bot_token = "1:bench".into();
    n.telegram.chat_ids = vec!["1".into()];
    n.slack.enabled = true;
    n.slack.webhook_url = format!("{base}/slack");
    n.discord.enabled = true;
    n.discord.webhook_url = format!("{base}/discord");
    n.feishu.enabled = true;
    n.feishu.webhook_url = format!("{base}/feishu");
    n.feishu.secret = "bench".into();
    n.email.enabled = true;
    n.email.api_base_url = base;
    n.email.api_key = "re_bench".into();
    n.email.from = "bench@example.com".into();
    n.email.to = vec!["ops@example.com".into()];
}

/// Result of one create run.
struct CreateRun {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// `orders` creates from `concurrency` tasks; latency per request.
async fn create_load(base: &str, prefix: &str, orders: usize, concurrency: usize) -> CreateRun {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, base, prefix) = (client.clone(), base.to_owned(), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in (worker..orders).step_by(concurrency) {
                let body = json!({"order_no": format!("{prefix}-{i}"), "amount": 1999,
                    "currency": "USD", "payment_method": "pm_card_visa"});
                let t = Instant::now();
                let response = client
                    .post(format!("{base}/v1/payments"))
                    .bearer_auth("sk_test_demo")
                    .json(&body)
                    .send()
                    .await
                    .expect("create");
                assert_eq!(response.status().as_u16(), 201);
                let _ = response.bytes().await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(orders);
    for task in tasks {
        all.extend(task.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    all.sort();
    CreateRun {
        per_second: orders as f64 / elapsed.as_secs_f64(),
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    }
}

async fn create_run(channels: bool, orders: usize, concurrency: usize) -> CreateRun {
    let (sink, _) = start_sink().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = base_config(dir.path());
    if channels {
        every_channel(&mut config, sink);
    }
    let running = paykeep::app::start(config, std::future::pending())
        .await
        .expect("start");
    let base = format!("http://{}", running.addr);
    let run = create_load(&base, "bench", orders, concurrency).await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let commits = value("store_commit_duration_seconds_count").max(1.0);
    println!(
        "  commits: {commits:.0}, mean {:.2} ms, mean batch {:.1} write sets",
        value("store_commit_duration_seconds_sum") / commits * 1e3,
        value("store_commit_batch_size_sum") / commits
    );
    running.shutdown().await;
    run
}

/// One delivery run: (deliveries/s at the sink, p50 ms, p99 ms).
async fn delivery_run(orders: usize, concurrency: usize) -> (f64, i64, i64) {
    let (sink, seen) = start_sink().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = base_config(dir.path());
    webhook_only(&mut config, sink);
    let running = paykeep::app::start(config, std::future::pending())
        .await
        .expect("start");
    let base = format!("http://{}", running.addr);
    create_load(&base, "dlv", orders, concurrency).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.lock().expect("lock").webhook.len() < orders {
        assert!(Instant::now() < deadline, "deliveries did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await;
    let seen = seen.lock().expect("lock");
    let first_event = seen.webhook.iter().map(|(_, c)| *c).min().unwrap_or(0);
    let last_receipt = seen.webhook.iter().map(|(r, _)| *r).max().unwrap_or(0);
    let span_s = ((last_receipt - first_event).max(1)) as f64 / 1000.0;
    let mut latency: Vec<i64> = seen.webhook.iter().map(|(r, c)| r - c).collect();
    latency.sort_unstable();
    (
        seen.webhook.len() as f64 / span_s,
        latency[latency.len() / 2],
        latency[latency.len() * 99 / 100],
    )
}

fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let orders = env_usize("PAYKEEP_BENCH_ORDERS", 2000);
    let concurrency = env_usize("PAYKEEP_BENCH_CONCURRENCY", 32);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut rates = Vec::new();
        let mut p50s = Vec::new();
        let mut p99s = Vec::new();
        for run in 1..=RUNS {
            let (rate, p50, p99) = delivery_run(orders, concurrency).await;
            println!("deliveries run {run}: {rate:.0} deliveries/s, event->delivered p50 {p50} ms, p99 {p99} ms");
            rates.push(rate);
            p50s.push(p50);
            p99s.push(p99);
        }
        println!(
            "deliveries (webhook, pacing off, {orders} events, median of {RUNS}): {:.0} deliveries/s, event->delivered p50 {} ms, p99 {} ms",
            median(rates),
            median(p50s),
            median(p99s)
        );
        let light = env_usize("PAYKEEP_BENCH_LIGHT_CONCURRENCY", 4);
        for (channels, clients) in [(false, concurrency), (true, concurrency), (false, light), (true, light)] {
            let label = if channels { "all six channels" } else { "no channels" };
            let label = format!("{label}, {clients} clients");
            let mut runs = Vec::new();
            for run in 1..=RUNS {
                let r = create_run(channels, orders, clients).await;
                println!(
                    "create ({label}) run {run}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
                    r.per_second,
                    r.p50.as_secs_f64() * 1e3,
                    r.p99.as_secs_f64() * 1e3
                );
                runs.push(r);
            }
            runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
            let m = &runs[RUNS / 2];
            println!(
                "create ({label}, {orders} orders, median of {RUNS}): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
                m.per_second,
                m.p50.as_secs_f64() * 1e3,
                m.p99.as_secs_f64() * 1e3
            );
        }
    });
}
