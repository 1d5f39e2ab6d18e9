//! Writes the samples the store codec's zstd dictionary
//! (`src/store/engine/codec_dictionary.zstd`) is trained from, one file each:
//!
//! ```text
//! cargo run --release --example codec_dictionary -- target/codec-samples
//! zstd --train-cover -r target/codec-samples --maxdict=16384 \
//!     -o src/store/engine/codec_dictionary.zstd
//! ```
//!
//! The samples are what paykeep itself stores, not hand-written records: paykeep runs
//! in-process on a temporary store, and six merchants send varied creates over HTTP
//! (amounts, all five currencies, succeeding, declined and invalid payment methods,
//! descriptions, customer e-mails and metadata or none, order numbers and idempotency keys
//! in several shapes) on a clock set years ahead, and refund a fifth of them in part or in
//! full. After a clean stop (which checkpoints every write into sled) the values of every
//! table, unpacked to their plain bincode, are the samples, at most
//! [`SAMPLES_PER_TREE_MAX`] per tree, evenly spread, so that the busy trees do not drown
//! the rest and one payment's id rarely appears in several samples (the trainer would
//! spend the dictionary on it). Which run made the checked-in dictionary does not matter
//! byte for byte (ids and times differ per run); its digest is what the format pins.
//!
//! zstd's COVER trainer (`--train-cover`, which also picks its segment sizes) made
//! dictionaries that kept records 10–20 % shorter than the default trainer's; 8 and 32 KiB
//! dictionaries were within 3 % of 16 KiB (BENCHMARKS.md). The load bench's requests are
//! deliberately not among the samples (no "bench" order numbers, no benchmark description,
//! not its merchant), so its figures measure the dictionary on records it was not made
//! from. The dictionary is part of the on-disk format: a new one needs a new schema
//! version, and `codec`'s test pins its digest.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use paykeep::clock::ManualClock;
use paykeep::config::{Config, MerchantConfig};
use paykeep::store::engine::{codec, open::SLED_SEGMENT_BYTES};
use paykeep::store::{Durability, OpenOptions};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// The samples' clock starts on 2031-03-02 and moves on by up to ten minutes after each
/// round of requests: far from any day the dictionary will be used on, so that it does not
/// learn the date it was made (records hold their times as RFC 3339 text).
const CLOCK_START_MS: i64 = 1_930_176_000_000;
/// Samples taken from one tree at most.
const SAMPLES_PER_TREE_MAX: usize = 2_000;
/// Creates sent (a fifth of them are refunded in part or in full).
const CREATES: usize = 40_000;
/// Requests in flight at once.
const CONCURRENCY: usize = 16;

/// Trees whose values are not the codec's (text, ids, keys of other trees) and sled's own.
const RAW_VALUE_TREES: [&str; 6] = [
    "meta",
    "settings",
    "journal_days",
    "event_dedupe",
    "provider_ids",
    "__sled__default",
];

const MERCHANTS: [(&str, &str); 6] = [
    ("m_shop01", "sk_test_shop01"),
    ("acme_store", "sk_test_acme"),
    ("shop-eu-12", "sk_test_shop_eu"),
    ("m_7f3kq9", "sk_test_7f3kq9"),
    ("books_and_more", "sk_test_books"),
    ("tix-live", "sk_test_tix"),
];
const CURRENCIES: [&str; 5] = ["USD", "EUR", "GBP", "JPY", "CNY"];
const METHODS: [(&str, u32); 5] = [
    ("pm_card_visa", 80),
    ("pm_card_chargeDeclined", 7),
    ("pm_card_chargeDeclinedInsufficientFunds", 7),
    ("pm_sim_transient", 3),
    ("pm_card_unknown", 3),
];
const WORDS: [&str; 24] = [
    "order",
    "subscription",
    "monthly",
    "plan",
    "premium",
    "gift",
    "card",
    "coffee",
    "beans",
    "ticket",
    "concert",
    "hotel",
    "night",
    "delivery",
    "express",
    "book",
    "shoes",
    "size",
    "blue",
    "annual",
    "renewal",
    "seat",
    "invoice",
    "donation",
];
const METADATA_KEYS: [&str; 8] = [
    "customer_id",
    "cart_id",
    "channel",
    "campaign",
    "store",
    "sku",
    "invoice",
    "region",
];

#[tokio::main]
async fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: codec_dictionary <samples-dir>");
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("db");
    let mut config = Config::embedded().expect("embedded config");
    config.server.bind = "127.0.0.1:0".parse().expect("addr");
    config.store.data_dir = data_dir.clone();
    config.merchants = MERCHANTS
        .iter()
        .map(|(id, api_key)| MerchantConfig {
            id: (*id).to_owned(),
            api_key: (*api_key).to_owned(),
        })
        .collect();
    config.validate().expect("valid config");
    let clock = Arc::new(ManualClock::new(CLOCK_START_MS));
    let store = OpenOptions::new(Durability::FlushAndSync);
    let running =
        paykeep::app::start_on_clock(config, store, clock.clone(), std::future::pending())
            .await
            .expect("paykeep starts");
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();

    let mut rng = StdRng::seed_from_u64(12);
    let requests: Vec<(usize, Value, Option<String>, Option<u64>)> = (0..CREATES)
        .map(|n| {
            let merchant = rng.gen_range(0..MERCHANTS.len());
            let body = create_body(&mut rng, n);
            let key = rng.gen_bool(0.7).then(|| idempotency_key(&mut rng));
            let refund = rng.gen_bool(0.2).then(|| rng.gen_range(1..=100));
            (merchant, body, key, refund)
        })
        .collect();
    let mut sent = 0;
    for chunk in requests.chunks(CONCURRENCY) {
        let calls = chunk.iter().map(|(merchant, body, key, refund)| {
            send(
                &client,
                &base,
                MERCHANTS[*merchant].1,
                body,
                key.as_deref(),
                *refund,
            )
        });
        sent += futures::future::join_all(calls).await.len();
        clock.advance(Duration::from_millis(rng.gen_range(1..600_000)));
    }
    drop(client);
    running.shutdown().await;

    let samples = samples(&data_dir);
    std::fs::create_dir_all(&out).expect("create the samples directory");
    for (i, sample) in samples.iter().enumerate() {
        std::fs::write(Path::new(&out).join(format!("{i:05}")), sample).expect("write a sample");
    }
    println!(
        "{sent} creates: {} samples ({} bytes) written to {out}",
        samples.len(),
        samples.iter().map(Vec::len).sum::<usize>(),
    );
}

fn create_body(rng: &mut StdRng, n: usize) -> Value {
    let currency = CURRENCIES.choose(rng).expect("currencies");
    let amount: u64 = match rng.gen_range(0..4) {
        0 => rng.gen_range(50..1_000),
        1 => rng.gen_range(1_000..20_000),
        2 => rng.gen_range(20_000..500_000),
        _ => [499, 999, 1_999, 4_999, 9_900][rng.gen_range(0..5)],
    };
    let method = METHODS
        .choose_weighted(rng, |(_, weight)| *weight)
        .expect("methods")
        .0;
    let order_no = match rng.gen_range(0..4) {
        0 => format!("ORD-{:07}", rng.gen_range(0..10_000_000)),
        1 => format!("{}", rng.gen_range(100_000_000u64..999_999_999_999)),
        2 => uuid::Builder::from_random_bytes(rng.gen())
            .into_uuid()
            .to_string(),
        _ => format!("o{n}-{:x}", rng.gen::<u32>()),
    };
    let mut body = json!({
        "order_no": order_no,
        "amount": amount,
        "currency": currency,
        "payment_method": method,
    });
    if rng.gen_bool(0.6) {
        let words: Vec<&str> = (0..rng.gen_range(1..6))
            .map(|_| *WORDS.choose(rng).expect("words"))
            .collect();
        body["description"] = json!(words.join(" "));
    }
    if rng.gen_bool(0.4) {
        body["customer_email"] = json!(format!(
            "{}{}@example.{}",
            WORDS.choose(rng).expect("words"),
            rng.gen_range(1..1_000),
            ["com", "org", "de", "co.uk"][rng.gen_range(0..4)]
        ));
    }
    if rng.gen_bool(0.4) {
        let metadata: BTreeMap<String, String> = (0..rng.gen_range(1..4))
            .map(|_| {
                let key = METADATA_KEYS.choose(rng).expect("keys");
                (key.to_string(), format!("{:x}", rng.gen::<u64>()))
            })
            .collect();
        body["metadata"] = json!(metadata);
    }
    body
}

fn idempotency_key(rng: &mut StdRng) -> String {
    match rng.gen_range(0..3) {
        0 | 1 => uuid::Builder::from_random_bytes(rng.gen())
            .into_uuid()
            .to_string(),
        _ => format!("req_{:016x}{:08x}", rng.gen::<u64>(), rng.gen::<u32>()),
    }
}

/// A create, and a refund of `refund_percent` of it when it succeeded.
async fn send(
    client: &reqwest::Client,
    base: &str,
    api_key: &str,
    body: &Value,
    key: Option<&str>,
    refund_percent: Option<u64>,
) {
    let mut request = client
        .post(format!("{base}/v1/payments"))
        .bearer_auth(api_key)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let payment: Value = request
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("create answer");
    let (Some(percent), Some("succeeded")) = (refund_percent, payment["status"].as_str()) else {
        return;
    };
    let amount = payment["amount"].as_u64().expect("amount") * percent / 100;
    let id = payment["id"].as_str().expect("id");
    let reason = ["requested_by_customer", "duplicate", "fraudulent"][(percent % 3) as usize];
    let answer = client
        .post(format!("{base}/v1/payments/{id}/refunds"))
        .bearer_auth(api_key)
        .header("Idempotency-Key", format!("refund-{id}-{percent}"))
        .json(&json!({"amount": amount.max(1), "reason": reason, "operator_id": "ops-7"}))
        .send()
        .await
        .expect("refund");
    assert!(
        answer.status().is_success(),
        "refund refused: {}",
        answer.status()
    );
}

/// Every table's values (index entries are empty and left out), unpacked, evenly thinned to [`SAMPLES_PER_TREE_MAX`] per tree.
fn samples(data_dir: &Path) -> Vec<Vec<u8>> {
    let db = sled::Config::new()
        .path(data_dir)
        .segment_size(SLED_SEGMENT_BYTES)
        .open()
        .expect("open the store's sled");
    let mut samples = Vec::new();
    for name in db.tree_names() {
        if RAW_VALUE_TREES.iter().any(|raw| raw.as_bytes() == &*name) {
            continue;
        }
        let tree = db.open_tree(&name).expect("tree");
        let step = tree.len().div_ceil(SAMPLES_PER_TREE_MAX).max(1);
        for (i, item) in tree.iter().enumerate() {
            let (_, value) = item.expect("read");
            // Index entries hold no value at all.
            if i % step == 0 && !value.is_empty() {
                let plain = codec::unpack(&value).unwrap_or_else(|e| {
                    panic!("{}: {e}", String::from_utf8_lossy(&name));
                });
                samples.push(plain.into_owned());
            }
        }
    }
    samples
}
