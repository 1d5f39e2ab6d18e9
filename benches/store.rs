//! Store benchmark: the group committer on its own (`cargo bench --bench store`).
//!
//! Opens a `Store` in a tempdir, starts the committer with the embedded `[store]` policy
//! (`commit_window_us` 500, `commit_batch_max` 1024), and from `PAYKEEP_BENCH_TASKS` (256)
//! concurrent tokio tasks commits, for `PAYKEEP_BENCH_SECONDS` (5) after a one-second
//! warm-up, the two write sets of a create one after the other: its intent (a `processing`
//! payment and its `Idempotency-Key` entry in flight) and its outcome (the payment
//! succeeded, its `payment.succeeded` event, the entry with its response). It reports
//! sled writes per create (`store_sled_writes_total` over every create committed, counted
//! once the applier has finished, with the three busiest trees), write sets per second,
//! write sets per group commit (paykeep's own `store_commit_batch_size`), group commits per
//! second and their mean time (`store_commit_duration_seconds`), and the commit latency a
//! task sees (p50/p99) — for `Durability::FlushAndSync` and `Durability::FlushOnly`, so the
//! cost of the extra `fdatasync` shows. Everything is repeated `PAYKEEP_BENCH_RUNS` (3)
//! times on fresh stores and ends with the medians. `PAYKEEP_BENCH_DIR` sets the parent of
//! the tempdirs (default: cargo's target tmp dir, on the build disk rather than a tmpfs);
//! `PAYKEEP_BENCH_COMMIT_WINDOW_US` replaces the embedded 500 µs window.

mod common;

use common::{
    bench_dir, commit_window_override_us, describe_window, env_value, RUNS_DEFAULT, RUNS_MAX,
    SECONDS_DEFAULT, SECONDS_MAX, WARMUP,
};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paykeep::config::Config;
use paykeep::domain::event::Event;
use paykeep::domain::idempotency::{
    Fingerprint, IdempotencyEntry, IdempotencyKey, KeyScope, StoredResponse,
};
use paykeep::domain::ids::{payment_id, UlidSource};
use paykeep::domain::payment::{Payment, PaymentStatus, RefundStatus};
use paykeep::domain::time::now_ms;
use paykeep::domain::write_set::{Listed, WriteOp, WriteSet};
use paykeep::metrics::Metrics;
use paykeep::store::committer::{self, CommitPolicy, CommitterHandle};
use paykeep::store::{Durability, Store};

/// Concurrent committing tasks unless `PAYKEEP_BENCH_TASKS` says otherwise: well above
/// what one group commit gathers in a window, so the committer runs saturated.
const TASKS_DEFAULT: u64 = 256;
/// Upper bound on tasks (each holds one write set in flight).
const TASKS_MAX: u64 = 65_536;
/// The embedded demo merchant (`config.toml` `[[merchants]]`).
const MERCHANT_ID: &str = "m_demo";
/// The create path, part of the fingerprint as in paykeep.
const PAYMENTS_PATH: &str = "/v1/payments";

/// What the environment asked for.
#[derive(Debug, Clone, Copy)]
struct Settings {
    tasks: u64,
    measured: Duration,
    runs: u64,
    /// `store.commit_window_us` when overridden.
    commit_window_us: Option<u64>,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            tasks: env_value("PAYKEEP_BENCH_TASKS", 1, TASKS_MAX).unwrap_or(TASKS_DEFAULT),
            measured: Duration::from_secs(
                env_value("PAYKEEP_BENCH_SECONDS", 1, SECONDS_MAX).unwrap_or(SECONDS_DEFAULT),
            ),
            runs: env_value("PAYKEEP_BENCH_RUNS", 1, RUNS_MAX).unwrap_or(RUNS_DEFAULT),
            commit_window_us: commit_window_override_us(),
        }
    }
}

/// A `processing` payment for `order_no`, as a create's first write holds it.
fn payment(order_no: &str, now: i64) -> Payment {
    Payment {
        id: payment_id(MERCHANT_ID, order_no),
        merchant_id: MERCHANT_ID.to_owned(),
        order_no: order_no.to_owned(),
        amount: 1999,
        currency: "USD".to_owned(),
        status: PaymentStatus::Processing,
        payment_method: "pm_card_visa".to_owned(),
        provider: "simulator".to_owned(),
        provider_payment_id: None,
        failure_code: None,
        failure_message: None,
        attempt_count: 1,
        amount_refunded: 0,
        refund_status: RefundStatus::None,
        description: Some("paykeep store benchmark".to_owned()),
        customer_email: None,
        metadata: BTreeMap::new(),
        created_at_ms: now,
        updated_at_ms: now,
        succeeded_at_ms: None,
    }
}

/// The write sets of a create: its intent (the payment `processing`, its header-key entry
/// in flight), then its outcome (the payment succeeded, its event, the entry finished).
fn create_write_sets(task: u64, seq: u64) -> [WriteSet; 2] {
    let now = now_ms();
    let order_no = format!("store-{task:05}-{seq:010}");
    let body = serde_json::json!({
        "order_no": order_no,
        "amount": 1999,
        "currency": "USD",
        "payment_method": "pm_card_visa",
        "description": "paykeep store benchmark",
    });
    let key = IdempotencyKey {
        merchant_id: MERCHANT_ID.to_owned(),
        scope: KeyScope::Header(format!("store-key-{task:05}-{seq:010}")),
    };
    let entry = IdempotencyEntry {
        order_no: order_no.clone(),
        fingerprint: Fingerprint::new("POST", PAYMENTS_PATH, &body),
        response: None,
        created_at_ms: now,
    };
    let intent = payment(&order_no, now);
    let succeeded = Payment {
        status: PaymentStatus::Succeeded,
        provider_payment_id: Some(format!("pi_{task}_{seq}")),
        succeeded_at_ms: Some(now),
        ..intent.clone()
    };
    let finished = IdempotencyEntry {
        response: Some(StoredResponse {
            status: 201,
            body: serde_json::to_string(&succeeded.id).unwrap_or_default(),
        }),
        ..entry.clone()
    };
    let event = Event::for_payment_outcome(&succeeded, &mut UlidSource, now);
    let listed = WriteOp::List {
        list: Listed::Payment,
        merchant_id: intent.merchant_id.clone(),
        id: intent.id.clone(),
        created_at_ms: intent.created_at_ms,
    };
    [
        WriteSet {
            ops: vec![
                WriteOp::Payment(intent),
                listed,
                WriteOp::Idempotency {
                    key: key.clone(),
                    entry,
                },
            ],
        },
        WriteSet {
            ops: vec![
                WriteOp::Payment(succeeded),
                WriteOp::Event(event),
                WriteOp::Idempotency {
                    key,
                    entry: finished,
                },
            ],
        },
    ]
}

/// When the warm-up ends and when tasks stop committing.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    until: Instant,
}

/// Commits one create after another until the window closes; returns the latencies (µs)
/// of the commits started inside the measured part, and how many creates it committed.
async fn commit_loop(committer: CommitterHandle, task: u64, window: Window) -> (Vec<u32>, u64) {
    let mut latencies_us = Vec::new();
    let mut creates = 0;
    for seq in 0u64.. {
        if Instant::now() >= window.until {
            break;
        }
        for write_set in create_write_sets(task, seq) {
            let started = Instant::now();
            committer
                .commit(write_set)
                .await
                .expect("a group commit failed");
            if started >= window.measure_from {
                latencies_us.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
        }
        creates += 1;
    }
    (latencies_us, creates)
}

/// The committer's histograms at one instant.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    write_sets: f64,
    commits: u64,
    commit_seconds: f64,
}

impl Snapshot {
    fn of(metrics: &Metrics) -> Snapshot {
        Snapshot {
            write_sets: metrics.store_commit_batch_size.get_sample_sum(),
            commits: metrics.store_commit_batch_size.get_sample_count(),
            commit_seconds: metrics.store_commit_duration_seconds.get_sample_sum(),
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Figures {
    write_sets_per_s: f64,
    write_sets_per_commit: f64,
    commits_per_s: f64,
    commit_ms_mean: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// sled inserts and removes per create, over every create of the run.
    sled_writes_per_create: f64,
}

impl Figures {
    fn from(before: Snapshot, after: Snapshot, measured: Duration, sorted_us: &[u32]) -> Self {
        let write_sets = after.write_sets - before.write_sets;
        let commits = after.commits.saturating_sub(before.commits) as f64;
        let seconds = measured.as_secs_f64();
        Figures {
            write_sets_per_s: write_sets / seconds,
            write_sets_per_commit: write_sets / commits.max(1.0),
            commits_per_s: commits / seconds,
            commit_ms_mean: (after.commit_seconds - before.commit_seconds) * 1000.0
                / commits.max(1.0),
            p50_ms: quantile_ms(sorted_us, 0.50),
            p99_ms: quantile_ms(sorted_us, 0.99),
            sled_writes_per_create: f64::NAN,
        }
    }
}

/// The `q`-quantile (nearest rank) of sorted microsecond latencies, in milliseconds.
fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

/// One run on a fresh store with `durability`.
async fn run_once(durability: Durability, settings: Settings) -> Figures {
    let dir = tempfile::Builder::new()
        .prefix("paykeep-store-")
        .tempdir_in(bench_dir())
        .expect("create the store's tempdir");
    let store = Arc::new(Store::open(&dir.path().join("db"), durability).expect("open the store"));
    let sled_writes = store.sled_writes_metric().clone();
    let metrics = Arc::new(Metrics::new());
    let config = Config::embedded().expect("the embedded config is valid");
    let policy = CommitPolicy {
        window: settings
            .commit_window_us
            .map_or_else(|| config.commit_window(), Duration::from_micros),
        batch_max: config.store.commit_batch_max.get(),
    };
    let (committer, thread) = committer::start(Arc::clone(&store), policy, Arc::clone(&metrics));
    let start = Instant::now();
    let window = Window {
        measure_from: start + WARMUP,
        until: start + WARMUP + settings.measured,
    };
    let tasks: Vec<_> = (0..settings.tasks)
        .map(|task| tokio::spawn(commit_loop(committer.clone(), task, window)))
        .collect();
    drop(committer);
    tokio::time::sleep_until(window.measure_from.into()).await;
    let before = Snapshot::of(&metrics);
    tokio::time::sleep_until(window.until.into()).await;
    let after = Snapshot::of(&metrics);
    let mut latencies_us = Vec::new();
    let mut creates = 0;
    for task in tasks {
        let (latencies, committed) = task.await.expect("a commit task panicked");
        latencies_us.extend(latencies);
        creates += committed;
    }
    // Every handle is gone: the committer finishes its queue and its thread ends; dropping
    // the store then lets the applier finish, so every sled write is counted.
    tokio::task::spawn_blocking(move || {
        thread.join().expect("the committer thread panicked");
        drop(store);
    })
    .await
    .expect("join the committer thread");
    latencies_us.sort_unstable();
    let mut figures = Figures::from(before, after, settings.measured, &latencies_us);
    let mut by_tree: Vec<(String, f64)> = paykeep::store::TREE_NAMES
        .iter()
        .map(|tree| {
            let writes = sled_writes.with_label_values(&[tree]).get() as f64;
            ((*tree).to_owned(), writes / creates.max(1) as f64)
        })
        .collect();
    figures.sled_writes_per_create = by_tree.iter().map(|(_, w)| w).sum();
    by_tree.sort_by(|a, b| b.1.total_cmp(&a.1));
    let busiest: Vec<String> = by_tree
        .iter()
        .take(4)
        .map(|(tree, w)| format!("{tree} {w:.2}"))
        .collect();
    println!("  sled writes per create by tree: {}", busiest.join(", "));
    figures
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

fn median_figures(runs: &[Figures]) -> Figures {
    let column = |f: fn(&Figures) -> f64| median(runs.iter().map(f).collect());
    Figures {
        write_sets_per_s: column(|r| r.write_sets_per_s),
        write_sets_per_commit: column(|r| r.write_sets_per_commit),
        commits_per_s: column(|r| r.commits_per_s),
        commit_ms_mean: column(|r| r.commit_ms_mean),
        p50_ms: column(|r| r.p50_ms),
        p99_ms: column(|r| r.p99_ms),
        sled_writes_per_create: column(|r| r.sled_writes_per_create),
    }
}

fn print_header() {
    println!(
        "{:<22} {:>12} {:>10} {:>10} {:>11} {:>8} {:>8} {:>14}",
        "durability",
        "write sets/s",
        "ws/commit",
        "commits/s",
        "commit ms",
        "p50 ms",
        "p99 ms",
        "sled w/create"
    );
}

fn print_row(label: &str, f: &Figures) {
    println!(
        "{:<22} {:>12.0} {:>10.1} {:>10.0} {:>11.2} {:>8.2} {:>8.2} {:>14.2}",
        label,
        f.write_sets_per_s,
        f.write_sets_per_commit,
        f.commits_per_s,
        f.commit_ms_mean,
        f.p50_ms,
        f.p99_ms,
        f.sled_writes_per_create
    );
}

fn main() {
    // As `app::start_with` does for paykeep (see `memory`).
    paykeep::memory::disable_transparent_huge_pages();
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    println!(
        "paykeep store: {} tasks, {} s measured after {} s warm-up, {} runs per durability, {}",
        settings.tasks,
        settings.measured.as_secs(),
        WARMUP.as_secs(),
        settings.runs,
        describe_window(settings.commit_window_us)
    );
    let mut medians = Vec::new();
    for (name, durability) in [
        ("FlushAndSync", Durability::FlushAndSync),
        ("FlushOnly", Durability::FlushOnly),
    ] {
        println!();
        print_header();
        let runs: Vec<Figures> = (0..settings.runs)
            .map(|run| {
                let figures = runtime.block_on(run_once(durability, settings));
                print_row(&format!("{name} run {}", run + 1), &figures);
                figures
            })
            .collect();
        medians.push((name, median_figures(&runs)));
    }
    println!("\nmedian of {} runs", settings.runs);
    print_header();
    for (name, figures) in &medians {
        print_row(name, figures);
    }
}
