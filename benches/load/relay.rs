//! The relay scenario (`PAYKEEP_BENCH_SCENARIOS=relay cargo bench --bench load`): how fast
//! the outbox relay (issue 18) carries events to NATS JetStream under a saturated create
//! load, and how far behind it runs.
//!
//! A real `nats-server -js` (Debian's package; store in a tempdir under the bench dir, a
//! free loopback port) and paykeep in-process as in the closed-loop scenarios (full
//! durability, one shard per core, instant simulator) with `relay.kind = "nats"`.
//! `PAYKEEP_BENCH_CONNECTIONS` (64) keep-alive connections create unique payments for
//! `PAYKEEP_BENCH_SECONDS` (10 here); then the bench waits until `/readyz` says the
//! relay's lag is 0 and reads the whole stream back with a consumer. It prints:
//! - creates/s of the load (each create commits one `payment.succeeded` event);
//! - events/s into the stream: events stored by the stream divided by the time from the
//!   first event's commit to the last event's store (the relay's rate end to end, drain
//!   included), and the stream's rate during the load window alone;
//! - the lag of each event, from its `created_at` (set when its write set is built, just
//!   before the commit) to the time the stream stored it: p50, p99, max;
//! - the relay's backlog (`relay_lag_events`) when the load stopped;
//! - its ceiling: the same load against a store whose broker is not there yet, then the
//!   broker starts and the relay drains that backlog alone; events stored / time from the
//!   stream's first store to its last.
//!
//! It checks what the tests check: each event once, in commit order.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use paykeep::app;
use paykeep::config::Config;
use paykeep::store::Durability;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::common::{bench_dir, env_value, SECONDS_MAX};
use super::relay_support::{read_stream, NatsServer};
use super::{create_body, create_key, request, Answer, Connection, Expect, CONNECTIONS_DEFAULT};

/// Seconds of load unless `PAYKEEP_BENCH_SECONDS` says otherwise.
const SECONDS_DEFAULT: u64 = 10;
/// The stream of the embedded `[relay]` section.
const STREAM: &str = "PAYKEEP_EVENTS";
/// How long the relay may take to drain after the load.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the scenario; exits non-zero on an unexpected answer or a stream that is not
/// exactly the outbox.
pub fn run() {
    let connections =
        env_value("PAYKEEP_BENCH_CONNECTIONS", 1, 4096).unwrap_or(CONNECTIONS_DEFAULT);
    let seconds = env_value("PAYKEEP_BENCH_SECONDS", 1, SECONDS_MAX).unwrap_or(SECONDS_DEFAULT);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    println!("paykeep relay: {connections} connections, {seconds} s of unique creates, then drain");
    let load = Duration::from_secs(seconds);
    let failures = runtime.block_on(measure(connections, load))
        + runtime.block_on(measure_drain(connections, load));
    if failures > 0 {
        eprintln!("FAILED: {failures} creates were not answered 201");
        std::process::exit(1);
    }
}

/// paykeep in-process on a fresh store in `dir`, relaying to `url`; once `/readyz` is 200.
async fn start_paykeep(dir: &std::path::Path, url: String) -> app::Running {
    let mut config = Config::embedded().expect("the embedded config is valid");
    config.server.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.store.data_dir = dir.join("db");
    config.shards.count = 0;
    config.provider.latency = std::time::Duration::ZERO;
    config.relay.kind = "nats".to_owned();
    config.relay.url = url;
    let paykeep = app::start_with(
        config,
        paykeep::store::OpenOptions::new(Durability::FlushAndSync),
        std::future::pending(),
    )
    .await
    .expect("paykeep starts");
    super::wait_ready(paykeep.addr).await;
    paykeep
}

/// Unique creates from `connections` connections for `load`; (creates, failures).
async fn saturate(addr: SocketAddr, connections: u64, load: Duration) -> (u64, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + load;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (next, failures) = (Arc::clone(&next), Arc::clone(&failures));
            tokio::spawn(create_loop(addr, next, failures, stop))
        })
        .collect();
    for task in tasks {
        task.await.expect("a create loop");
    }
    (
        next.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    )
}

/// The relay's own ceiling: a backlog made while the broker is not there yet (creates at
/// saturation for `load`), then the broker starts and the relay drains it alone. Rate =
/// events stored / time from the stream's first store to its last. Returns failures.
async fn measure_drain(connections: u64, load: Duration) -> u64 {
    let port = super::relay_support::free_port();
    let dir = tempfile::Builder::new()
        .prefix("paykeep-relay-drain-")
        .tempdir_in(bench_dir())
        .expect("create the store's tempdir");
    let paykeep = start_paykeep(dir.path(), format!("nats://127.0.0.1:{port}")).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", paykeep.addr);
    let (creates, failures) = saturate(paykeep.addr, connections, load).await;
    let backlog = relay_check(&client, &base).await["lag_events"].clone();
    let nats = NatsServer::start_on(port, true);
    wait_relay(&client, &base, |r| r["lag_events"] == 0, DRAIN_TIMEOUT).await;
    let streamed = read_stream(&nats.jetstream().await, STREAM).await;
    assert_eq!(streamed.len() as u64, creates, "every event once");
    let first = streamed.iter().map(|m| m.stored_at_ms).min().unwrap_or(0);
    let last = streamed.iter().map(|m| m.stored_at_ms).max().unwrap_or(0);
    let drain_s = ((last - first) as f64 / 1000.0).max(0.001);
    println!(
        "backlog drain: {backlog} events waiting with the broker away; stored in {drain_s:.2} s = {:.0} events/s",
        streamed.len() as f64 / drain_s
    );
    let _ = tokio::time::timeout(Duration::from_secs(10), paykeep.shutdown()).await;
    failures
}

async fn measure(connections: u64, load: Duration) -> u64 {
    let nats = NatsServer::start();
    let dir = tempfile::Builder::new()
        .prefix("paykeep-relay-")
        .tempdir_in(bench_dir())
        .expect("create the store's tempdir");
    let paykeep = start_paykeep(dir.path(), nats.url()).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", paykeep.addr);
    wait_relay(&client, &base, |r| r["status"] == "ok", DRAIN_TIMEOUT).await;

    let started = Instant::now();
    let (creates, failures) = saturate(paykeep.addr, connections, load).await;
    let load_s = started.elapsed().as_secs_f64();
    let backlog = relay_check(&client, &base).await["lag_events"].clone();
    wait_relay(&client, &base, |r| r["lag_events"] == 0, DRAIN_TIMEOUT).await;
    let drained_s = started.elapsed().as_secs_f64();

    let streamed = read_stream(&nats.jetstream().await, STREAM).await;
    let mut ids = HashSet::new();
    let mut last_sequence = 0u64;
    let mut lags_ms = Vec::with_capacity(streamed.len());
    let mut first_created_ms = i64::MAX;
    let mut last_stored_ms = 0i64;
    for message in &streamed {
        assert!(
            ids.insert(message.message_id.clone()),
            "twice in the stream"
        );
        let sequence: u64 = message.body["sequence"].as_str().unwrap().parse().unwrap();
        assert!(sequence > last_sequence, "out of commit order");
        last_sequence = sequence;
        let created = OffsetDateTime::parse(message.body["created_at"].as_str().unwrap(), &Rfc3339)
            .expect("an RFC 3339 created_at");
        let created_ms = (created.unix_timestamp_nanos() / 1_000_000) as i64;
        first_created_ms = first_created_ms.min(created_ms);
        last_stored_ms = last_stored_ms.max(message.stored_at_ms);
        lags_ms.push((message.stored_at_ms - created_ms).max(0) as f64);
    }
    assert!(!streamed.is_empty(), "the stream holds the load's events");
    let end_to_end_s = (last_stored_ms - first_created_ms) as f64 / 1000.0;
    let load_end_ms = first_created_ms + (load_s * 1000.0) as i64;
    let during_load = streamed
        .iter()
        .filter(|m| m.stored_at_ms <= load_end_ms)
        .count();
    lags_ms.sort_by(f64::total_cmp);
    let pct = |q: f64| lags_ms[((lags_ms.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "creates: {creates} in {load_s:.1} s = {:.0}/s; drained {:.1} s after the load started",
        creates as f64 / load_s,
        drained_s
    );
    println!(
        "stream: {} events, once each, in commit order; {:.0} events/s end to end (first commit to last store, {:.1} s); {:.0} events/s during the load",
        streamed.len(),
        streamed.len() as f64 / end_to_end_s,
        end_to_end_s,
        during_load as f64 / load_s
    );
    println!(
        "lag commit -> stream: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; relay backlog when the load stopped: {backlog} events",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    let _ = tokio::time::timeout(Duration::from_secs(10), paykeep.shutdown()).await;
    failures
}

async fn create_loop(
    addr: SocketAddr,
    next: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    stop: Instant,
) {
    let mut connection = Connection::open(addr).await;
    while Instant::now() < stop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let key = create_key(n);
        let request = request(Method::POST, "/v1/payments", create_body(n), Some(&key));
        match connection.exchange(request, Expect::Created).await {
            Answer::Expected(_) => {}
            Answer::Unexpected(_) => {
                failures.fetch_add(1, Ordering::Relaxed);
            }
            Answer::Broken(_) => {
                failures.fetch_add(1, Ordering::Relaxed);
                connection = Connection::open(addr).await;
            }
        }
    }
}

async fn relay_check(client: &reqwest::Client, base: &str) -> serde_json::Value {
    let ready: serde_json::Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readyz JSON");
    ready["checks"]["relay"].clone()
}

async fn wait_relay(
    client: &reqwest::Client,
    base: &str,
    done: impl Fn(&serde_json::Value) -> bool,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let relay = relay_check(client, base).await;
        if done(&relay) {
            return;
        }
        assert!(Instant::now() < deadline, "relay: {relay}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
