//! Bounded disk at maximum field sizes (issue 12, "Bad input"): the real binary takes
//! creates with every field at its maximum size, reads each back byte for byte, and after a
//! clean stop (a checkpoint) the data directory has grown by at most 3× the requests' bytes;
//! the store keeps no file per value (no sled blob files) and the process's open files do
//! not grow with the data.
//!
//! Growth is measured as a slope: the directory after one round of creates and a stop,
//! then after a second round and a stop, so the fixed costs (the preallocated log segment,
//! sled's first segments) cancel out. A round is large enough (about 9 MB of requests) that
//! sled's 4 MiB segments, the unit its file grows by, cannot swing the ratio far.
//!
//! The text is random alphanumerics with every fifth character a two-byte one: sled's pages
//! are zstd-compressed, so random binary-like text in every field would store larger (the
//! payment and its replayable response each hold the request's text once).

mod common;

use std::path::Path;

use common::{create_at, get_at, spawn_binary, temp_data_dir, Binary, MERCHANT_KEY};
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};

/// Creates per round.
const ROUND: usize = 600;
/// Largest growth of the data directory per byte of request body.
const BYTES_PER_REQUEST_BYTE_MAX: f64 = 3.0;

/// A string of `chars` characters, random (so nothing compresses), every fifth one a
/// two-byte character, as text from real merchants often has.
fn text(chars: usize) -> String {
    let ascii = Alphanumeric.sample_string(&mut rand::thread_rng(), chars);
    ascii
        .chars()
        .enumerate()
        .map(|(i, c)| if i % 5 == 4 { 'é' } else { c })
        .collect()
}

/// A create body with every field at its maximum (DESIGN §2 limits, `domain/payment.rs`).
fn max_body(n: usize) -> Value {
    let order_no = format!("max-{n:06}-{}", text(64 - 11));
    let local = Alphanumeric.sample_string(&mut rand::thread_rng(), 254 - "@example.com".len());
    let metadata: serde_json::Map<String, Value> = (0..20)
        .map(|i| (format!("k{i:02}{}", text(37)), Value::String(text(500))))
        .collect();
    json!({
        "order_no": order_no,
        "amount": 1999,
        "currency": "USD",
        "payment_method": "pm_card_visa",
        "description": text(1000),
        "customer_email": format!("{local}@example.com"),
        "metadata": metadata,
    })
}

fn dir_bytes(path: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).expect("read dir").flatten() {
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn listing(path: &Path) -> String {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).expect("read dir").flatten() {
        let meta = entry.metadata().expect("metadata");
        let size = if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
        out.push(format!("{}={size}", entry.file_name().to_string_lossy()));
    }
    out.sort();
    out.join(" ")
}

fn blob_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("blobs")).map_or(0, |d| d.count())
}

fn open_files(bin: &Binary) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", bin.child.id()))
        .expect("/proc fd")
        .count()
}

/// One round: `ROUND` max-size creates, each read back field by field; returns the bytes of
/// request bodies sent and the process's open files at the end.
async fn round(bin: &Binary, first: usize) -> (u64, usize) {
    let client = reqwest::Client::new();
    let mut sent = 0;
    for n in first..first + ROUND {
        let body = max_body(n);
        sent += serde_json::to_vec(&body).expect("json").len() as u64;
        let key = format!("max-key-{n}");
        let created = create_at(&client, &bin.base, MERCHANT_KEY, Some(&key), &body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.json()["id"].as_str().expect("id").to_owned();
        let read = get_at(
            &client,
            &bin.base,
            MERCHANT_KEY,
            &format!("/v1/payments/{id}"),
        )
        .await;
        assert_eq!(read.status, 200, "{}", read.text);
        let read = read.json();
        for field in [
            "order_no",
            "amount",
            "currency",
            "payment_method",
            "description",
            "customer_email",
            "metadata",
        ] {
            assert_eq!(read[field], body[field], "{field} of {id} read back");
        }
    }
    (sent, open_files(bin))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_size_requests_are_read_back_and_stored_within_three_times_their_size() {
    let (_dir, data_dir) = temp_data_dir();

    let bin = spawn_binary(&data_dir, &[]);
    let (_, files_first) = round(&bin, 0).await;
    assert!(bin.terminate().success());
    let after_first = dir_bytes(&data_dir);
    eprintln!("after first: {}", listing(&data_dir));

    let bin = spawn_binary(&data_dir, &[]);
    let (sent, files_second) = round(&bin, ROUND).await;
    assert!(bin.terminate().success());
    let after_second = dir_bytes(&data_dir);
    eprintln!("after second: {}", listing(&data_dir));

    let grown = after_second.saturating_sub(after_first) as f64;
    let ratio = grown / sent as f64;
    eprintln!(
        "max size: {sent} request bytes in {ROUND} creates, data dir grew {grown} bytes: {ratio:.2}× the requests"
    );
    assert!(
        ratio <= BYTES_PER_REQUEST_BYTE_MAX,
        "the data directory grew {ratio:.2}× the requests' bytes"
    );
    assert_eq!(
        blob_files(&data_dir),
        0,
        "no value stored as a file of its own"
    );
    assert!(
        files_second <= files_first + 2,
        "open files grew with the data: {files_first} then {files_second}"
    );
}
