//! Load benchmark of paykeep over real HTTP/1.1 on loopback (`cargo bench --bench load`).
//!
//! One process, one tokio multi-thread runtime: paykeep itself (`app::start_with`, a
//! tempdir store, `Durability::FlushAndSync`, the in-process simulator with no latency,
//! one shard per core, logging as `paykeep serve` does but to /dev/null) and a bare warp
//! echo route, the baseline of what this machine's HTTP stack does with the same body and
//! no payment work at all. A fixed number of keep-alive connections (hyper 0.14's
//! `client::conn`, one task per connection, so the connection count is exact and no pool
//! sits in the way) drive each scenario for a fixed time after a short unmeasured warm-up:
//!
//! - `echo` — `POST /echo` with a create's body, echoed back as JSON (the baseline);
//! - `create_unique` — `POST /v1/payments`, a new order and `Idempotency-Key` every time;
//! - `replay` — 1000 creates made before the run, replayed round-robin with their keys
//!   (each must answer 201 with `Idempotent-Replayed: true`);
//! - `mix` — 50 % unique creates, 40 % replays, 10 % `GET /v1/payments/{id}`;
//! - `create_half_load` — creates at a fixed open-loop rate of half the `create_unique`
//!   peak of the same run; a request is timed from when it was due whenever its connection
//!   was still busy (so queueing behind a slow answer counts, as in wrk2).
//!
//! Each scenario other than `echo` is measured right after an `echo` window of its own
//! (same connections and length), and its ratio is taken against that echo: on a shared
//! host the echo rate drifts by ±30 % within a minute, so a ratio against one echo at the
//! start of the run measured the drift as much as paykeep.
//!
//! Load starts once `GET /readyz` answers 200. Every answer is checked (status, and the
//! replay header); any unexpected one is counted and makes the process exit non-zero at
//! the end. The suite repeats on fresh servers and stores and ends with the medians.
//! paykeep's own `store_commit_batch_size` (scraped from `/metrics` at the start and end
//! of each measured window) gives write sets per commit, and the process's CPU time by
//! thread group over the same window ([`cpu`]) gives the CPU microseconds one request
//! costs in HTTP (both ends), the shards, the committer and the applier (work done, not
//! time waited; it still moves with the host's speed, so compare within an invocation).
//!
//! Environment: `PAYKEEP_BENCH_CONNECTIONS` (64), `PAYKEEP_BENCH_SECONDS` (5 per
//! scenario), `PAYKEEP_BENCH_RUNS` (3), `PAYKEEP_BENCH_COMMIT_WINDOW_US` (unset: the
//! embedded 500), `PAYKEEP_BENCH_DIR` (parent of the store's tempdir; default: cargo's
//! target tmp dir, on the build disk rather than a possible tmpfs, where `fdatasync` would
//! cost nothing), `PAYKEEP_BENCH_SCENARIOS` (a comma-separated subset of the closed-loop
//! scenarios, for profiling one of them; `echo` always runs, and `create_half_load` runs
//! when `create_unique` does; or `soak` alone, which runs only [`soak`]: a million creates
//! against the release binary, reporting how rate, p99, RSS, disk and CPU per create age;
//! or `relay` alone, which runs only [`relay`]: a saturated create load relayed to a real
//! NATS JetStream, reporting events/s into the stream and the commit-to-stream lag),
//! `PAYKEEP_BENCH_DURABILITY` (`flush_and_sync`, the default and the only mode paykeep's
//! configuration runs; or `flush_only`, log records reach the page cache and are never
//! synced: not durable, a measurement of what the create path costs without its
//! `fdatasync`s, as the store bench's `FlushOnly` rows).

mod common;
#[path = "load/cpu.rs"]
mod cpu;
#[path = "load/relay.rs"]
mod relay;
#[path = "../tests/relay_support/mod.rs"]
mod relay_support;
#[path = "load/soak.rs"]
mod soak;

use common::{
    bench_dir, commit_window_override_us, describe_window, env_value, RUNS_DEFAULT, RUNS_MAX,
    SECONDS_DEFAULT, SECONDS_MAX, WARMUP,
};
use cpu::Cpu;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::client::conn::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::http::response::Parts;
use hyper::{Body, Method, Request, StatusCode};
use paykeep::app::{self, Running};
use paykeep::config::Config;
use paykeep::logging::{LogFormat, LogSink};
use paykeep::store::Durability;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::Filter;

/// Connections unless `PAYKEEP_BENCH_CONNECTIONS` says otherwise: enough concurrency to keep
/// paykeep's group committer batching, few enough that the client does not drown a 2-core
/// box it shares with the server.
const CONNECTIONS_DEFAULT: u64 = 64;
/// Upper bound on connections: each one is a task and a socket pair in this process.
const CONNECTIONS_MAX: u64 = 4_096;
/// Creates made before the measured scenarios, replayed by `replay` and read by `mix`.
const REPLAY_SET: u64 = 1_000;
/// A request slower than this counts as a failure and ends its connection's loop, so a
/// stuck server cannot hang the benchmark.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Polls of `GET /readyz` after start-up, [`READY_POLL_INTERVAL`] apart, before giving up.
const READY_POLLS_MAX: u32 = 200;
/// Pause between readiness polls.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How long a server gets to stop gracefully before the benchmark goes on without it.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Unexpected answers described in the report; further ones are only counted.
const UNEXPECTED_SAMPLES_MAX: usize = 8;
/// Response bytes quoted when an answer is unexpected.
const QUOTE_BYTES_MAX: usize = 300;
/// The embedded demo merchant's key (`config.toml` `[[merchants]]`); loopback only.
const BEARER: &str = "Bearer sk_test_demo";
/// Body limit of the echo route: paykeep's default `server.body_limit_bytes`.
const ECHO_BODY_LIMIT_BYTES: u64 = 65_536;
/// The fraction of the `create_unique` peak at which the latency target is stated.
const HALF_LOAD_RATIO: f64 = 0.5;
/// Mix proportions out of [`MIX_CYCLE`] requests: creates first, then replays, then reads.
const MIX_CREATES: u64 = 5;
const MIX_REPLAYS: u64 = 4;
const MIX_CYCLE: u64 = 10;
const _: () = assert!(MIX_CREATES + MIX_REPLAYS < MIX_CYCLE);

/// What the environment asked for.
#[derive(Debug, Clone, Copy)]
struct Settings {
    connections: u64,
    measured: Duration,
    runs: u64,
    /// `store.commit_window_us` when overridden.
    commit_window_us: Option<u64>,
    /// The closed-loop scenarios to run, in [`CLOSED_LOOP`] order.
    scenarios: &'static [Scenario],
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            scenarios: scenarios_from_env(),
            connections: env_value("PAYKEEP_BENCH_CONNECTIONS", 1, CONNECTIONS_MAX)
                .unwrap_or(CONNECTIONS_DEFAULT),
            measured: Duration::from_secs(
                env_value("PAYKEEP_BENCH_SECONDS", 1, SECONDS_MAX).unwrap_or(SECONDS_DEFAULT),
            ),
            runs: env_value("PAYKEEP_BENCH_RUNS", 1, RUNS_MAX).unwrap_or(RUNS_DEFAULT),
            commit_window_us: commit_window_override_us(),
        }
    }
}

/// `PAYKEEP_BENCH_SCENARIOS` as a subset of [`CLOSED_LOOP`] (always with `echo`, the
/// baseline of the ratios); every scenario when unset. Panics on an unknown name.
fn scenarios_from_env() -> &'static [Scenario] {
    let Ok(text) = std::env::var("PAYKEEP_BENCH_SCENARIOS") else {
        return &CLOSED_LOOP;
    };
    let wanted: Vec<&str> = text.split(',').map(str::trim).collect();
    for name in &wanted {
        assert!(
            CLOSED_LOOP.iter().any(|s| s.name() == *name),
            "PAYKEEP_BENCH_SCENARIOS: unknown scenario {name:?}"
        );
    }
    let chosen: Vec<Scenario> = CLOSED_LOOP
        .into_iter()
        .filter(|s| *s == Scenario::Echo || wanted.contains(&s.name()))
        .collect();
    Vec::leak(chosen)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Echo,
    CreateUnique,
    Replay,
    Mix,
    CreateHalfLoad,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Echo => "echo",
            Scenario::CreateUnique => "create_unique",
            Scenario::Replay => "replay",
            Scenario::Mix => "mix",
            Scenario::CreateHalfLoad => "create_half_load",
        }
    }
}

/// The closed-loop scenarios, in the order they run; `create_half_load` follows them.
const CLOSED_LOOP: [Scenario; 4] = [
    Scenario::Echo,
    Scenario::CreateUnique,
    Scenario::Replay,
    Scenario::Mix,
];

/// The answer a request must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 200 (echo, read).
    Ok,
    /// 201 without `Idempotent-Replayed` (a first create that succeeded).
    Created,
    /// 201 with `Idempotent-Replayed: true`.
    Replayed,
}

/// How one exchange went.
enum Answer {
    Expected(Bytes),
    Unexpected(String),
    /// The connection cannot go on (I/O error or timeout).
    Broken(String),
}

/// A create made before the run, replayed with its key.
struct Prepared {
    key: String,
    body: Bytes,
    payment_id: String,
}

/// What the request generators of one run share.
struct Workload {
    echo: SocketAddr,
    paykeep: SocketAddr,
    /// Next order number; orders and keys are never reused within a run's store.
    next_order: AtomicU64,
    /// Next index into `prepared` (round-robin).
    next_prepared: AtomicU64,
    prepared: Vec<Prepared>,
}

/// The body of the create for order `n`; the echo scenario sends the same bytes.
fn create_body(n: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"order_no":"bench-{n:012}","amount":1999,"currency":"USD","payment_method":"pm_card_visa","description":"paykeep load benchmark"}}"#
    ))
}

/// The `Idempotency-Key` of the create for order `n`: a version 4 UUID, as Stripe asks
/// clients to send (<https://docs.stripe.com/api/idempotent_requests>), drawn from `n` so
/// a run can rebuild it. Random keys spread the idempotency tree's inserts over all its
/// leaves, as real clients' do; keys in order would append to it.
fn create_key(n: u64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(n.to_be_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn request(method: Method, path: &str, body: Bytes, key: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "127.0.0.1")
        .header(AUTHORIZATION, BEARER);
    if !body.is_empty() {
        builder = builder.header(CONTENT_TYPE, "application/json");
    }
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder
        .body(Body::from(body))
        .expect("a request of fixed shape is well-formed")
}

impl Workload {
    fn address(&self, scenario: Scenario) -> SocketAddr {
        match scenario {
            Scenario::Echo => self.echo,
            _ => self.paykeep,
        }
    }

    /// The `seq`-th request of a connection in `scenario`.
    fn next_request(&self, scenario: Scenario, seq: u64) -> (Request<Body>, Expect) {
        match scenario {
            Scenario::Echo => {
                let n = self.next_order.fetch_add(1, Ordering::Relaxed);
                let body = create_body(n);
                (request(Method::POST, "/echo", body, None), Expect::Ok)
            }
            Scenario::CreateUnique | Scenario::CreateHalfLoad => self.unique_create(),
            Scenario::Replay => self.replay(),
            Scenario::Mix => match seq % MIX_CYCLE {
                slot if slot < MIX_CREATES => self.unique_create(),
                slot if slot < MIX_CREATES + MIX_REPLAYS => self.replay(),
                _ => self.read(),
            },
        }
    }

    fn unique_create(&self) -> (Request<Body>, Expect) {
        let n = self.next_order.fetch_add(1, Ordering::Relaxed);
        let key = create_key(n);
        let request = request(Method::POST, "/v1/payments", create_body(n), Some(&key));
        (request, Expect::Created)
    }

    fn next_prepared(&self) -> &Prepared {
        let i = self.next_prepared.fetch_add(1, Ordering::Relaxed) % self.prepared.len() as u64;
        &self.prepared[i as usize]
    }

    fn replay(&self) -> (Request<Body>, Expect) {
        let prepared = self.next_prepared();
        let body = prepared.body.clone();
        let request = request(Method::POST, "/v1/payments", body, Some(&prepared.key));
        (request, Expect::Replayed)
    }

    fn read(&self) -> (Request<Body>, Expect) {
        let path = format!("/v1/payments/{}", self.next_prepared().payment_id);
        (request(Method::GET, &path, Bytes::new(), None), Expect::Ok)
    }
}

/// One HTTP/1.1 keep-alive connection; its driver task ends when this is dropped.
struct Connection {
    sender: SendRequest<Body>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect over loopback");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        let (sender, driver) = hyper::client::conn::Builder::new()
            .handshake::<_, Body>(stream)
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(async move {
            let _ = driver.await;
        });
        Connection { sender }
    }

    /// Sends `request`, reads the whole answer and checks it against `expect`.
    async fn exchange(&mut self, request: Request<Body>, expect: Expect) -> Answer {
        let sender = &mut self.sender;
        let call = async move {
            futures::future::poll_fn(|cx| sender.poll_ready(cx))
                .await
                .map_err(|e| format!("connection not ready: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let (parts, body) = response.into_parts();
            let body = hyper::body::to_bytes(body)
                .await
                .map_err(|e| format!("body failed: {e}"))?;
            Ok::<_, String>(check(&parts, body, expect))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(broken)) => Answer::Broken(broken),
            Err(_) => Answer::Broken(format!("no answer within {REQUEST_TIMEOUT:?}")),
        }
    }
}

fn check(parts: &Parts, body: Bytes, expect: Expect) -> Answer {
    let replayed = parts
        .headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let expected = match expect {
        Expect::Ok => parts.status == StatusCode::OK,
        Expect::Created => parts.status == StatusCode::CREATED && !replayed,
        Expect::Replayed => parts.status == StatusCode::CREATED && replayed,
    };
    if expected {
        return Answer::Expected(body);
    }
    let quote = String::from_utf8_lossy(&body[..body.len().min(QUOTE_BYTES_MAX)]).into_owned();
    Answer::Unexpected(format!(
        "expected {expect:?}, got {} (replayed: {replayed}): {quote}",
        parts.status
    ))
}

/// Latencies and failures of one connection, then of one scenario.
#[derive(Default)]
struct Tally {
    /// Microseconds, measured requests only.
    latencies_us: Vec<u32>,
    unexpected: u64,
    samples: Vec<String>,
}

impl Tally {
    fn record(&mut self, latency: Duration, answer: &Answer, measured: bool) {
        match answer {
            Answer::Expected(_) if measured => {
                let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
                self.latencies_us.push(us);
            }
            Answer::Expected(_) => {}
            Answer::Unexpected(what) | Answer::Broken(what) => self.fail(what.clone()),
        }
    }

    fn fail(&mut self, what: String) {
        self.unexpected += 1;
        if self.samples.len() < UNEXPECTED_SAMPLES_MAX {
            self.samples.push(what);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.unexpected += other.unexpected;
        let room = UNEXPECTED_SAMPLES_MAX.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }
}

/// When a scenario's warm-up ends and when it stops issuing requests.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    until: Instant,
}

/// Each connection sends its next request as soon as the previous answer arrived.
async fn closed_loop(workload: Arc<Workload>, scenario: Scenario, window: Window) -> Tally {
    let mut connection = Connection::open(workload.address(scenario)).await;
    let mut tally = Tally::default();
    let mut seq = 0;
    loop {
        let started = Instant::now();
        if started >= window.until {
            return tally;
        }
        let (request, expect) = workload.next_request(scenario, seq);
        seq += 1;
        let answer = connection.exchange(request, expect).await;
        tally.record(started.elapsed(), &answer, started >= window.measure_from);
        if matches!(answer, Answer::Broken(_)) {
            return tally;
        }
    }
}

/// When one connection's open-loop requests are due: `first`, then every `interval`.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    first: Instant,
    interval: Duration,
}

impl Schedule {
    /// Connection `index` of `connections` sharing `rate_per_s`, staggered evenly.
    fn for_connection(start: Instant, index: u64, connections: u64, rate_per_s: f64) -> Self {
        let interval = Duration::from_secs_f64(connections as f64 / rate_per_s);
        Schedule {
            first: start + Duration::from_secs_f64(index as f64 / rate_per_s),
            interval,
        }
    }
}

/// Each connection sends on a fixed schedule. A request whose connection was still busy
/// when it fell due is timed from when it was due (the queueing counts); one sent on time
/// is timed from when it was sent (the timer's millisecond slack is the client's, not the
/// server's).
async fn open_loop(
    workload: Arc<Workload>,
    scenario: Scenario,
    window: Window,
    schedule: Schedule,
) -> Tally {
    let mut connection = Connection::open(workload.address(scenario)).await;
    let mut tally = Tally::default();
    for seq in 0u32.. {
        let due = schedule.first + schedule.interval * seq;
        if due >= window.until {
            break;
        }
        let timed_from = if Instant::now() > due {
            due
        } else {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        };
        let (request, expect) = workload.next_request(scenario, u64::from(seq));
        let answer = connection.exchange(request, expect).await;
        tally.record(timed_from.elapsed(), &answer, due >= window.measure_from);
        if matches!(answer, Answer::Broken(_)) {
            break;
        }
    }
    tally
}

/// paykeep's group-commit counters, from its `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct CommitCounters {
    write_sets: f64,
    commits: f64,
}

/// What paykeep did in a measured window: its group commits, and the CPU of the process
/// by thread group at the window's start and end.
struct Watched {
    commits: CommitCounters,
    cpu: (Cpu, Cpu),
}

/// The value of the sample `name` (no labels) in a Prometheus text exposition.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}

async fn scrape_commits(paykeep: SocketAddr) -> CommitCounters {
    let mut connection = Connection::open(paykeep).await;
    let request = request(Method::GET, "/metrics", Bytes::new(), None);
    let Answer::Expected(body) = connection.exchange(request, Expect::Ok).await else {
        panic!("GET /metrics failed");
    };
    let text = String::from_utf8_lossy(&body);
    CommitCounters {
        write_sets: metric_value(&text, "store_commit_batch_size_sum").unwrap_or(0.0),
        commits: metric_value(&text, "store_commit_batch_size_count").unwrap_or(0.0),
    }
}

/// One scenario's figures.
#[derive(Debug, Clone)]
struct Measurement {
    scenario: Scenario,
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    /// CPU microseconds per request by thread group ([`cpu::GROUPS`]), then their total.
    cpu_us: CpuUs,
    /// Mean write sets per paykeep group commit during the window (0 for echo).
    write_sets_per_commit: f64,
    /// The open-loop rate asked for (`create_half_load` only).
    target_per_s: Option<f64>,
    /// Echo req/s of the window measured right before this one (its own rate for `echo`).
    echo_per_s: f64,
    unexpected: u64,
    samples: Vec<String>,
}

/// The `q`-quantile (nearest rank) of sorted microsecond latencies, in milliseconds.
fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

/// Runs `scenario` over every connection: closed-loop, or open-loop at `rate_per_s`.
async fn drive(
    workload: &Arc<Workload>,
    scenario: Scenario,
    settings: Settings,
    rate_per_s: Option<f64>,
) -> Measurement {
    let start = Instant::now();
    let window = Window {
        measure_from: start + WARMUP,
        until: start + WARMUP + settings.measured,
    };
    let tasks: Vec<JoinHandle<Tally>> = (0..settings.connections)
        .map(|index| {
            let workload = Arc::clone(workload);
            match rate_per_s {
                None => tokio::spawn(closed_loop(workload, scenario, window)),
                Some(rate) => {
                    let schedule =
                        Schedule::for_connection(start, index, settings.connections, rate);
                    tokio::spawn(open_loop(workload, scenario, window, schedule))
                }
            }
        })
        .collect();
    let Watched { commits, cpu } = watch(workload.paykeep, window).await;
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.expect("a load task panicked"));
    }
    tally.latencies_us.sort_unstable();
    let write_sets_per_commit = match scenario {
        Scenario::Echo => 0.0,
        _ => commits.write_sets / commits.commits.max(1.0),
    };
    let requests = tally.latencies_us.len() as f64;
    Measurement {
        scenario,
        requests_per_s: requests / settings.measured.as_secs_f64(),
        cpu_us: cpu.0.per_request_us(&cpu.1, requests),
        p50_ms: quantile_ms(&tally.latencies_us, 0.50),
        p99_ms: quantile_ms(&tally.latencies_us, 0.99),
        p999_ms: quantile_ms(&tally.latencies_us, 0.999),
        write_sets_per_commit,
        target_per_s: rate_per_s,
        echo_per_s: f64::NAN,
        unexpected: tally.unexpected,
        samples: tally.samples,
    }
}

/// Runs `scenario` (as [`drive`]) right after an echo window of the same length, and
/// records that echo's rate as the scenario's baseline; `echo` itself is its own baseline.
async fn paired(
    workload: &Arc<Workload>,
    scenario: Scenario,
    settings: Settings,
    rate_per_s: Option<f64>,
) -> Measurement {
    if scenario == Scenario::Echo {
        let mut echo = drive(workload, scenario, settings, None).await;
        echo.echo_per_s = echo.requests_per_s;
        return echo;
    }
    let echo = drive(workload, Scenario::Echo, settings, None).await;
    let mut measured = drive(workload, scenario, settings, rate_per_s).await;
    measured.echo_per_s = echo.requests_per_s;
    measured.unexpected += echo.unexpected;
    measured.samples.extend(echo.samples);
    measured
}

/// paykeep's group commits and the process's CPU between the start and the end of the
/// measured window.
async fn watch(paykeep: SocketAddr, window: Window) -> Watched {
    tokio::time::sleep_until(window.measure_from.into()).await;
    let cpu_before = Cpu::sample();
    let before = scrape_commits(paykeep).await;
    tokio::time::sleep_until(window.until.into()).await;
    let cpu_after = Cpu::sample();
    let after = scrape_commits(paykeep).await;
    Watched {
        commits: CommitCounters {
            write_sets: after.write_sets - before.write_sets,
            commits: after.commits - before.commits,
        },
        cpu: (cpu_before, cpu_after),
    }
}

/// Makes the [`REPLAY_SET`] creates (orders `0..REPLAY_SET`) that `replay` and `mix` replay.
async fn prepare(paykeep: SocketAddr, connections: u64) -> Vec<Prepared> {
    let lanes = connections.min(REPLAY_SET);
    let tasks: Vec<JoinHandle<Vec<(u64, Prepared)>>> = (0..lanes)
        .map(|lane| tokio::spawn(prepare_lane(paykeep, lane, lanes)))
        .collect();
    let mut prepared = Vec::new();
    for task in tasks {
        prepared.extend(task.await.expect("a preparing task panicked"));
    }
    prepared.sort_by_key(|(n, _)| *n);
    prepared.into_iter().map(|(_, p)| p).collect()
}

/// Creates orders `lane, lane + lanes, …` below [`REPLAY_SET`] on one connection.
async fn prepare_lane(paykeep: SocketAddr, lane: u64, lanes: u64) -> Vec<(u64, Prepared)> {
    let mut connection = Connection::open(paykeep).await;
    let mut out = Vec::new();
    for n in (lane..REPLAY_SET).step_by(lanes as usize) {
        let (key, body) = (create_key(n), create_body(n));
        let request = request(Method::POST, "/v1/payments", body.clone(), Some(&key));
        let body_out = match connection.exchange(request, Expect::Created).await {
            Answer::Expected(bytes) => bytes,
            Answer::Unexpected(what) | Answer::Broken(what) => {
                panic!("preparing replay order {n} failed: {what}")
            }
        };
        let payment: serde_json::Value =
            serde_json::from_slice(&body_out).expect("a payment object in JSON");
        let payment_id = payment["id"]
            .as_str()
            .expect("a payment object has an id")
            .to_owned();
        out.push((
            n,
            Prepared {
                key,
                body,
                payment_id,
            },
        ));
    }
    out
}

/// The baseline server: `POST /echo` answers 200 with the request body as JSON.
struct EchoServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl EchoServer {
    fn start() -> EchoServer {
        let route = warp::path!("echo")
            .and(warp::post())
            .and(warp::body::content_length_limit(ECHO_BODY_LIMIT_BYTES))
            .and(warp::body::json())
            .map(|body: serde_json::Value| warp::reply::json(&body));
        let (stop, stopped) = oneshot::channel::<()>();
        let (addr, server) = warp::serve(route)
            .try_bind_with_graceful_shutdown(SocketAddr::from(([127, 0, 0, 1], 0)), async {
                let _ = stopped.await;
            })
            .expect("bind the echo server on loopback");
        EchoServer {
            addr,
            stop,
            task: tokio::spawn(server),
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, self.task)
            .await
            .is_err()
        {
            eprintln!("warning: the echo server did not stop within {SHUTDOWN_TIMEOUT:?}");
        }
    }
}

/// Waits until `GET /readyz` answers 200, as a load balancer would before sending traffic.
/// (A shard answering its readiness ping has run `started()`, which sets its mailbox
/// capacity; before that, actix's default of 16 applies and a burst is refused with 503.)
async fn wait_ready(paykeep: SocketAddr) {
    for _ in 0..READY_POLLS_MAX {
        let mut connection = Connection::open(paykeep).await;
        let request = request(Method::GET, "/readyz", Bytes::new(), None);
        if let Answer::Expected(_) = connection.exchange(request, Expect::Ok).await {
            return;
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
    panic!("paykeep was not ready after {READY_POLLS_MAX} polls of /readyz");
}

/// paykeep as the issue asks: loopback, store in `dir`, one shard per core, instant
/// simulator, durability as `PAYKEEP_BENCH_DURABILITY` says (full unless told otherwise);
/// returned once `/readyz` says it is ready.
async fn start_paykeep(dir: &Path, commit_window_us: Option<u64>) -> Running {
    let mut config = Config::embedded().expect("the embedded config is valid");
    config.server.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.store.data_dir = dir.join("db");
    config.shards.count = 0;
    config.provider.latency = Duration::ZERO;
    if let Some(us) = commit_window_us {
        config.store.commit_window = Duration::from_micros(us);
    }
    // As `paykeep serve` does: its log lines are redacted of these.
    paykeep::redact::set_service_log_secrets(config.secrets());
    let running = app::start_with(
        config,
        paykeep::store::OpenOptions::new(durability()),
        std::future::pending(),
    )
    .await
    .expect("paykeep starts");
    wait_ready(running.addr).await;
    running
}

/// `PAYKEEP_BENCH_DURABILITY`: full durability unless `flush_only` is asked for.
fn durability() -> Durability {
    match std::env::var("PAYKEEP_BENCH_DURABILITY").as_deref() {
        Err(_) | Ok("flush_and_sync") => Durability::FlushAndSync,
        Ok("flush_only") => Durability::FlushOnly,
        Ok(other) => {
            panic!("PAYKEEP_BENCH_DURABILITY: {other:?} is neither flush_and_sync nor flush_only")
        }
    }
}

/// One run of the whole suite on fresh servers and a fresh store.
async fn run_suite(settings: Settings) -> Vec<Measurement> {
    let dir = tempfile::Builder::new()
        .prefix("paykeep-load-")
        .tempdir_in(bench_dir())
        .expect("create the store's tempdir");
    let paykeep = start_paykeep(dir.path(), settings.commit_window_us).await;
    let echo = EchoServer::start();
    let prepared = prepare(paykeep.addr, settings.connections).await;
    let workload = Arc::new(Workload {
        echo: echo.addr,
        paykeep: paykeep.addr,
        next_order: AtomicU64::new(REPLAY_SET),
        next_prepared: AtomicU64::new(0),
        prepared,
    });
    let mut results = Vec::new();
    for &scenario in settings.scenarios {
        results.push(paired(&workload, scenario, settings, None).await);
    }
    if let Some(peak) = results
        .iter()
        .find(|m| m.scenario == Scenario::CreateUnique)
        .map(|m| m.requests_per_s)
    {
        assert!(peak > 0.0, "create_unique completed no request");
        let half = peak * HALF_LOAD_RATIO;
        results.push(paired(&workload, Scenario::CreateHalfLoad, settings, Some(half)).await);
    }
    drop(workload);
    echo.stop().await;
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, paykeep.shutdown())
        .await
        .is_err()
    {
        eprintln!("warning: paykeep did not stop within {SHUTDOWN_TIMEOUT:?}");
    }
    results
}

/// One printed line.
struct Row {
    name: &'static str,
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    /// The paired echo window's req/s.
    echo_per_s: f64,
    vs_echo: f64,
    write_sets_per_commit: f64,
    cpu_us: CpuUs,
}

/// CPU microseconds per request by thread group ([`cpu::GROUPS`]), then their total.
type CpuUs = [f64; cpu::GROUPS.len() + 1];

fn rows_of(run: &[Measurement]) -> Vec<Row> {
    run.iter()
        .map(|m| Row {
            name: m.scenario.name(),
            requests_per_s: m.requests_per_s,
            p50_ms: m.p50_ms,
            p99_ms: m.p99_ms,
            p999_ms: m.p999_ms,
            echo_per_s: m.echo_per_s,
            vs_echo: m.requests_per_s / m.echo_per_s,
            write_sets_per_commit: m.write_sets_per_commit,
            cpu_us: m.cpu_us,
        })
        .collect()
}

/// The median of `values` (mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Per scenario, the median of every column over the runs (ratios are per-run ratios).
fn median_rows(runs: &[Vec<Row>]) -> Vec<Row> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| {
            let column = |f: fn(&Row) -> f64| median(runs.iter().map(|r| f(&r[i])).collect());
            Row {
                name: first[i].name,
                requests_per_s: column(|r| r.requests_per_s),
                p50_ms: column(|r| r.p50_ms),
                p99_ms: column(|r| r.p99_ms),
                p999_ms: column(|r| r.p999_ms),
                echo_per_s: column(|r| r.echo_per_s),
                vs_echo: column(|r| r.vs_echo),
                write_sets_per_commit: column(|r| r.write_sets_per_commit),
                cpu_us: std::array::from_fn(|g| {
                    median(runs.iter().map(|r| r[i].cpu_us[g]).collect())
                }),
            }
        })
        .collect()
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{:<18} {:>10} {:>8} {:>8} {:>8} {:>10} {:>7} {:>11}",
        "scenario", "req/s", "p50 ms", "p99 ms", "p999 ms", "echo req/s", "x echo", "ws/commit"
    );
    for r in rows {
        println!(
            "{:<18} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>10.0} {:>7.3} {:>11.1}",
            r.name,
            r.requests_per_s,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.echo_per_s,
            r.vs_echo,
            r.write_sets_per_commit
        );
    }
    print!("{:<18}", "CPU us/request");
    for name in cpu::GROUPS.iter().chain(&["total"]) {
        print!(" {name:>9}");
    }
    println!();
    for r in rows {
        print!("{:<18}", r.name);
        for us in r.cpu_us {
            print!(" {us:>9.1}");
        }
        println!();
    }
}

fn print_half_load_targets(runs: &[Vec<Measurement>]) {
    for (i, run) in runs.iter().enumerate() {
        if let Some(target) = run.iter().find_map(|m| m.target_per_s) {
            println!("run {}: create_half_load target {target:.0} req/s", i + 1);
        }
    }
}

/// Prints every unexpected answer sampled; true when there was any.
fn report_unexpected(runs: &[Vec<Measurement>]) -> bool {
    let mut any = false;
    for (i, m) in runs
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.iter().map(move |m| (i, m)))
    {
        if m.unexpected == 0 {
            continue;
        }
        any = true;
        eprintln!(
            "run {}: {}: {} unexpected answers",
            i + 1,
            m.scenario.name(),
            m.unexpected
        );
        for sample in &m.samples {
            eprintln!("  {sample}");
        }
    }
    any
}

fn main() {
    // What the binary logs, formatted and redacted the same way: every request's access
    // line is part of what it costs. The lines go to /dev/null (a pipe or a file would
    // add its write on top).
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    paykeep::logging::init(LogFormat::Text, LogSink::File(Arc::new(null)));
    if std::env::var("PAYKEEP_BENCH_SCENARIOS").is_ok_and(|s| s.trim() == "soak") {
        soak::run();
        return;
    }
    if std::env::var("PAYKEEP_BENCH_SCENARIOS").is_ok_and(|s| s.trim() == "relay") {
        relay::run();
        return;
    }
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    println!(
        "paykeep load: {} connections, {} s measured after {} s warm-up per scenario, {} runs, {}",
        settings.connections,
        settings.measured.as_secs(),
        WARMUP.as_secs(),
        settings.runs,
        describe_window(settings.commit_window_us)
    );
    let mut runs = Vec::new();
    let mut tables = Vec::new();
    for run in 0..settings.runs {
        let measurements = runtime.block_on(run_suite(settings));
        let rows = rows_of(&measurements);
        print_table(&format!("run {} of {}", run + 1, settings.runs), &rows);
        runs.push(measurements);
        tables.push(rows);
    }
    print_table(
        &format!("median of {} runs", settings.runs),
        &median_rows(&tables),
    );
    print_half_load_targets(&runs);
    if report_unexpected(&runs) {
        eprintln!("FAILED: unexpected answers (see above)");
        std::process::exit(1);
    }
}
