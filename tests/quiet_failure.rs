//! Quiet failure (issue 13) on the real binary: a store that refuses writes answers every
//! create 500, and the log gets one error line per distinct cause per 10 s, the next one
//! carrying the count of repeats it held back.
//!
//! The failure is real and needs no privilege: a directory stands where the log's next
//! segment will be created, so the append that fills the current segment cannot roll over,
//! and the store refuses every write after it.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{create_at, get_at, order, MERCHANT_KEY};
use paykeep::store::wal;

/// Refused creates sent before the log is read.
const REFUSED_MIN: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refusing_writes_logs_each_cause_once_per_window_with_the_repeats_counted() {
    let (_dir, data) = common::temp_data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let log_path = data.with_extension("log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_paykeep"));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap());
    let (mut child, addr) = common::spawn_listening(command);
    let base = format!("http://{addr}");
    let (ids, _) = wal::list(&data).unwrap();
    let next = ids.last().unwrap() + 1;
    let blocker = data.join(wal::DIR).join(format!("{next:020}.log.creating"));
    std::fs::create_dir(&blocker).unwrap();

    let refused = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (base, refused) = (base.clone(), Arc::clone(&refused));
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0.. {
                    if refused.load(Ordering::Relaxed) >= REFUSED_MIN || Instant::now() > deadline {
                        return;
                    }
                    let key = format!("quiet-{w}-{i}");
                    let answer =
                        create_at(&client, &base, MERCHANT_KEY, Some(&key), &order(&key)).await;
                    match answer.status {
                        201 => {}
                        500 => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        other => panic!("unexpected {other}: {}", answer.text),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    assert!(
        refused.load(Ordering::Relaxed) >= REFUSED_MIN,
        "the store never refused a write"
    );
    let client = reqwest::Client::new();
    let ready = get_at(&client, &base, MERCHANT_KEY, "/readyz").await;
    assert_eq!(ready.status, 503, "a failed store is not ready");
    let burst = read(&log_path);
    let burst_errors = burst.lines().filter(|l| l.contains("ERROR")).count();
    assert!(
        (1..=6).contains(&burst_errors),
        "{burst_errors} error lines for {} refused creates:\n{burst}",
        refused.load(Ordering::Relaxed)
    );

    // After the window, the next refusal logs again, with the repeats held back.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let answer = create_at(
        &client,
        &base,
        MERCHANT_KEY,
        Some("quiet-late"),
        &order("quiet-late"),
    )
    .await;
    assert_eq!(answer.status, 500);
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let log = read(&log_path);
    let later: Vec<&str> = log[burst.len()..]
        .lines()
        .filter(|l| l.contains("ERROR"))
        .collect();
    assert!(
        later.iter().any(|l| suppressed_count(l) > 0),
        "a line after the window counts the repeats: {later:?}"
    );
}

fn read(path: &std::path::Path) -> String {
    let mut text = String::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The `suppressed=N` field of a log line (0 when absent).
fn suppressed_count(line: &str) -> u64 {
    let plain: String = strip_ansi(line);
    plain
        .split("suppressed=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `line` without ANSI colour sequences.
fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
