//! The soak scenario (`PAYKEEP_BENCH_SCENARIOS=soak cargo bench --bench load`): how paykeep
//! ages. The real release binary (`paykeep serve`, a child process, so its RSS is its own)
//! on a fresh store takes `PAYKEEP_BENCH_SOAK_PAYMENTS` (1,000,000) unique creates at
//! saturation from `PAYKEEP_BENCH_CONNECTIONS` (64) keep-alive connections. Every 10 s it
//! prints the window's create rate and p99, the server's RSS (`VmRSS` of
//! `/proc/<pid>/status`) and the data directory's bytes per payment (allocated blocks, as
//! `du` counts them, so the log's preallocated segments count in full). After the last
//! create it stops the server with SIGTERM (a clean stop checkpoints sled), prints the
//! bytes per payment after that checkpoint, restarts it and prints the time from spawn to
//! the first `GET /readyz` answering 200. Targets (issue 12): the last full window at
//! least 85 % of the first, restart to ready at most 5 s, RSS at most 512 MiB, at most
//! 1.2 KiB per payment after the checkpoint. With `PAYKEEP_BENCH_SOAK_KEEP` set, the data
//! directory is kept (its path printed) to look at afterwards.
//!
//! The host's own speed drifts as much as the store ages (two soaks of one build gave
//! ratios of 1.26 and 0.49 within ten minutes: BENCHMARKS.md). So after each window the
//! creates pause and the same connections' worth of load runs [`ECHO_PROBE`] against the
//! load bench's bare warp echo server, in this process; each window's creates are also
//! reported as a fraction of that probe's rate, and the ageing ratio is given both ways,
//! raw and against the probes. The probe's connections are polled from one task, so it
//! reads lower than the paired bench's echo; it is a yardstick between windows, not a
//! baseline to compare with. The pause gives the server's applier and sled's flusher about
//! a second per window to catch up, which a soak without probes did not.
//!
//! Each window also prints the server's CPU per create ([`cpu`], all its threads, and the
//! applier's alone), from the end of the window before to the end of this one, so the
//! catching up in the pause is counted. CPU is work done rather than time waited: it moves
//! with the host less than the rate does, and when the store ages it shows where (the
//! applier's sled inserts, BENCHMARKS.md). It is printed, not judged: the target is the rate.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::Method;

use super::common::{bench_dir, env_value};
use super::cpu::{self, Cpu};
use super::{
    create_body, create_key, request, Answer, Connection, EchoServer, Expect, CONNECTIONS_DEFAULT,
};

/// Creates unless `PAYKEEP_BENCH_SOAK_PAYMENTS` says otherwise.
const PAYMENTS_DEFAULT: u64 = 1_000_000;
/// Upper bound on the soak's creates.
const PAYMENTS_MAX: u64 = 100_000_000;
/// Length of a reported window.
const WINDOW: Duration = Duration::from_secs(10);
/// The echo probe after each window, and the pause before it that lets creates in flight
/// finish.
const ECHO_PROBE: Duration = Duration::from_secs(1);
const PROBE_SETTLE: Duration = Duration::from_millis(100);
/// How long a restart may take before the soak gives up on it.
const RESTART_TIMEOUT: Duration = Duration::from_secs(120);

/// The targets.
const LAST_WINDOW_RATIO_MIN: f64 = 0.85;
const RESTART_MAX: Duration = Duration::from_secs(5);
const RSS_MAX_MIB: f64 = 512.0;
const BYTES_PER_PAYMENT_MAX: f64 = 1.2 * 1024.0;

/// What the creating connections share.
struct Shared {
    addr: SocketAddr,
    next: AtomicU64,
    total: u64,
    /// Latencies (µs) of the window in progress.
    latencies_us: Mutex<Vec<u32>>,
    failures: AtomicU64,
    /// Set while the echo probe runs: connections send no create.
    paused: AtomicBool,
}

/// One printed window.
struct WindowRow {
    creates_per_s: f64,
    p99_ms: f64,
    rss_mib: f64,
    bytes_per_payment: f64,
    /// The echo probe's req/s right after the window.
    echo_per_s: f64,
    /// The server's CPU µs per create of the window by thread group ([`cpu::GROUPS`]), then
    /// their total: from the end of the window before (so the probe's pause, when the
    /// applier and sled's flusher catch up, counts) to the end of this one.
    cpu_us: [f64; cpu::GROUPS.len() + 1],
}

/// Where [`WindowRow::cpu_us`] holds the applier and the total.
const APPLIER: usize = cpu::group_index("applier");
const TOTAL: usize = cpu::GROUPS.len();

/// Runs the soak; exits non-zero if any create was not answered 201.
pub fn run() {
    let payments =
        env_value("PAYKEEP_BENCH_SOAK_PAYMENTS", 1, PAYMENTS_MAX).unwrap_or(PAYMENTS_DEFAULT);
    let connections =
        env_value("PAYKEEP_BENCH_CONNECTIONS", 1, 4096).unwrap_or(CONNECTIONS_DEFAULT);
    let dir = tempfile::Builder::new()
        .prefix("paykeep-soak-")
        .tempdir_in(bench_dir())
        .expect("create the store's tempdir");
    let data = dir.path().join("db");
    println!(
        "paykeep soak: {payments} unique creates, {connections} connections, windows of {} s",
        WINDOW.as_secs()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    let (mut server, addr) = spawn_server(&data);
    let (rows, failures) = runtime.block_on(drive(addr, server.id(), &data, payments, connections));
    terminate(&mut server);
    let after_checkpoint = allocated_bytes(&data) as f64 / payments as f64;
    println!("after a clean stop (checkpoint): {after_checkpoint:.0} bytes per payment");
    let started = Instant::now();
    let (mut restarted, addr) = spawn_server(&data);
    let ready = runtime.block_on(wait_ready(addr));
    let restart = started.elapsed();
    println!(
        "restart to ready: {:.2} s (ready: {ready})",
        restart.as_secs_f64()
    );
    terminate(&mut restarted);
    report_targets(&rows, after_checkpoint, restart);
    if std::env::var_os("PAYKEEP_BENCH_SOAK_KEEP").is_some() {
        println!("data directory kept: {}", dir.keep().display());
    }
    if failures > 0 {
        eprintln!("FAILED: {failures} creates were not answered 201");
        std::process::exit(1);
    }
}

async fn drive(
    addr: SocketAddr,
    pid: u32,
    data: &Path,
    total: u64,
    connections: u64,
) -> (Vec<WindowRow>, u64) {
    let shared = Arc::new(Shared {
        addr,
        next: AtomicU64::new(0),
        total,
        latencies_us: Mutex::new(Vec::new()),
        failures: AtomicU64::new(0),
        paused: AtomicBool::new(false),
    });
    let echo = EchoServer::start();
    let mut probes = Vec::new();
    for _ in 0..connections {
        probes.push(Connection::open(echo.addr).await);
    }
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(create_loop(Arc::clone(&shared))))
        .collect();
    println!(
        "{:>6} {:>10} {:>8} {:>8} {:>13} {:>10} {:>10} {:>7} {:>13} {:>11}",
        "window",
        "creates/s",
        "p99 ms",
        "RSS MiB",
        "bytes/payment",
        "payments",
        "echo req/s",
        "x echo",
        "CPU us/create",
        "applier us"
    );
    let mut rows = Vec::new();
    let mut cpu_mark = Cpu::sample_process(pid);
    let mut window_start = Instant::now();
    while tasks.iter().any(|t| !t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if window_start.elapsed() < WINDOW && tasks.iter().any(|t| !t.is_finished()) {
            continue;
        }
        let elapsed = window_start.elapsed();
        shared.paused.store(true, Ordering::Relaxed);
        let done = shared.next.load(Ordering::Relaxed).min(total);
        let mut latencies = std::mem::take(&mut *shared.latencies_us.lock().expect("lock"));
        latencies.sort_unstable();
        let p99_us = latencies
            .get(latencies.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or(0);
        let cpu_now = Cpu::sample_process(pid);
        let cpu_us = cpu_mark.per_request_us(&cpu_now, latencies.len() as f64);
        cpu_mark = cpu_now;
        let row = WindowRow {
            creates_per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
            p99_ms: f64::from(p99_us) / 1000.0,
            rss_mib: rss_kib(pid) as f64 / 1024.0,
            bytes_per_payment: allocated_bytes(data) as f64 / done.max(1) as f64,
            echo_per_s: {
                tokio::time::sleep(PROBE_SETTLE).await;
                echo_probe(&mut probes).await
            },
            cpu_us,
        };
        println!(
            "{:>6} {:>10.0} {:>8.2} {:>8.0} {:>13.0} {:>10} {:>10.0} {:>7.3} {:>13.0} {:>11.0}",
            rows.len() + 1,
            row.creates_per_s,
            row.p99_ms,
            row.rss_mib,
            row.bytes_per_payment,
            done,
            row.echo_per_s,
            row.creates_per_s / row.echo_per_s,
            row.cpu_us[TOTAL],
            row.cpu_us[APPLIER]
        );
        rows.push(row);
        shared.paused.store(false, Ordering::Relaxed);
        window_start = Instant::now();
    }
    for task in tasks {
        let _ = task.await;
    }
    drop(probes);
    echo.stop().await;
    // The applier puts a group in sled within its 100 ms delay; then count its writes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    print_sled_writes(addr, total);
    (rows, shared.failures.load(Ordering::Relaxed))
}

/// Prints `store_sled_writes_total` per create, in all and for the busiest trees, from the
/// server's `/metrics` (issue 12's target: at most 3 per create).
fn print_sled_writes(addr: SocketAddr, creates: u64) {
    use std::io::{Read, Write};
    let mut text = String::new();
    let fetched = std::net::TcpStream::connect(addr).and_then(|mut stream| {
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")?;
        stream.read_to_string(&mut text)
    });
    if let Err(e) = fetched {
        println!("sled writes per create: /metrics unreadable ({e})");
        return;
    }
    let mut by_tree: Vec<(String, f64)> = text
        .lines()
        .filter_map(|line| line.strip_prefix("store_sled_writes_total{tree=\""))
        .filter_map(|rest| {
            let (tree, value) = rest.split_once("\"} ")?;
            Some((
                tree.to_owned(),
                value.trim().parse::<f64>().ok()? / creates as f64,
            ))
        })
        .collect();
    let total: f64 = by_tree.iter().map(|(_, w)| w).sum();
    by_tree.sort_by(|a, b| b.1.total_cmp(&a.1));
    let busiest: Vec<String> = by_tree
        .iter()
        .take(5)
        .map(|(tree, w)| format!("{tree} {w:.2}"))
        .collect();
    println!(
        "sled writes per create: {total:.2} ({})",
        busiest.join(", ")
    );
}

/// Echo requests with a create's body on every probe connection at once for
/// [`ECHO_PROBE`]; their rate per second. An unexpected answer ends that connection's part.
async fn echo_probe(probes: &mut [Connection]) -> f64 {
    let started = Instant::now();
    let answered = AtomicU64::new(0);
    let lane_count = probes.len() as u64;
    let lanes = probes.iter_mut().enumerate().map(|(lane, connection)| {
        let answered = &answered;
        async move {
            let mut n = lane as u64;
            while started.elapsed() < ECHO_PROBE {
                let echo = request(Method::POST, "/echo", create_body(n), None);
                match connection.exchange(echo, Expect::Ok).await {
                    Answer::Expected(_) => answered.fetch_add(1, Ordering::Relaxed),
                    Answer::Unexpected(what) | Answer::Broken(what) => {
                        eprintln!("echo probe: {what}");
                        return;
                    }
                };
                n += lane_count;
            }
        }
    });
    futures::future::join_all(lanes).await;
    answered.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// One connection creating until the total is reached; it sends nothing while the echo
/// probe runs.
async fn create_loop(shared: Arc<Shared>) {
    let mut connection = Connection::open(shared.addr).await;
    loop {
        while shared.paused.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        if n >= shared.total {
            return;
        }
        let key = create_key(n);
        let request = request(Method::POST, "/v1/payments", create_body(n), Some(&key));
        let started = Instant::now();
        match connection.exchange(request, Expect::Created).await {
            Answer::Expected(_) => {
                let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                shared.latencies_us.lock().expect("lock").push(us);
            }
            Answer::Unexpected(what) => {
                if shared.failures.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("unexpected answer: {what}");
                }
            }
            Answer::Broken(what) => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                eprintln!("connection broken: {what}");
                return;
            }
        }
    }
}

fn report_targets(rows: &[WindowRow], after_checkpoint: f64, restart: Duration) {
    // The first and last windows are partial (start-up, the tail of the run).
    let full: Vec<&WindowRow> = rows
        .iter()
        .skip(1)
        .take(rows.len().saturating_sub(2))
        .collect();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if let (Some(first), Some(last)) = (full.first(), full.last()) {
        let ratio = last.creates_per_s / first.creates_per_s;
        println!(
            "last full window / first full window: {ratio:.2} (target ≥ {LAST_WINDOW_RATIO_MIN}: {})",
            verdict(ratio >= LAST_WINDOW_RATIO_MIN)
        );
        let against_echo =
            (last.creates_per_s / last.echo_per_s) / (first.creates_per_s / first.echo_per_s);
        println!(
            "the same, each window against its echo probe: {against_echo:.2} (target ≥ {LAST_WINDOW_RATIO_MIN}: {}; echo {:.0} → {:.0} req/s)",
            verdict(against_echo >= LAST_WINDOW_RATIO_MIN),
            first.echo_per_s,
            last.echo_per_s
        );
        println!(
            "server CPU per create, first → last full window: {:.0} → {:.0} µs (× {:.2}; applier {:.0} → {:.0} µs)",
            first.cpu_us[TOTAL],
            last.cpu_us[TOTAL],
            last.cpu_us[TOTAL] / first.cpu_us[TOTAL],
            first.cpu_us[APPLIER],
            last.cpu_us[APPLIER]
        );
    }
    let rss_peak = rows.iter().map(|r| r.rss_mib).fold(0.0, f64::max);
    println!(
        "peak RSS: {rss_peak:.0} MiB (target ≤ {RSS_MAX_MIB}: {})",
        verdict(rss_peak <= RSS_MAX_MIB)
    );
    println!(
        "bytes per payment after the checkpoint: {after_checkpoint:.0} (target ≤ {BYTES_PER_PAYMENT_MAX}: {})",
        verdict(after_checkpoint <= BYTES_PER_PAYMENT_MAX)
    );
    println!(
        "restart to ready: {:.2} s (target ≤ {} s: {})",
        restart.as_secs_f64(),
        RESTART_MAX.as_secs(),
        verdict(restart <= RESTART_MAX)
    );
}

/// `paykeep serve` on `data`, and the address from its "listening" line.
fn spawn_server(data: &Path) -> (Child, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paykeep"));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // The benchmark's own settings share paykeep's `PAYKEEP_` prefix; the server would
    // read them as configuration keys.
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("PAYKEEP_BENCH_")) {
        command.env_remove(name);
    }
    let mut child = command.spawn().expect("spawn paykeep");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}

/// Polls `GET /readyz` until it answers 200 (true) or [`RESTART_TIMEOUT`] passes.
async fn wait_ready(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + RESTART_TIMEOUT;
    // The server prints its listening line once the store is open, so it accepts by now.
    let mut connection = Connection::open(addr).await;
    while Instant::now() < deadline {
        let request = request(Method::GET, "/readyz", Bytes::new(), None);
        match connection.exchange(request, Expect::Ok).await {
            Answer::Expected(_) => return true,
            Answer::Broken(_) => connection = Connection::open(addr).await,
            Answer::Unexpected(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The process's resident set in KiB (0 if it cannot be read).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes allocated to the files under `dir` (512-byte blocks, as `du` counts them).
fn allocated_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => allocated_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
