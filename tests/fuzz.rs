//! A fuzz pass over every route (issue 13, item 7): a few thousand generated requests —
//! methods, paths with odd segments, query strings, headers (missing, wrong, not ASCII,
//! repeated) and bodies (valid ones mutated, random JSON, repeated members, deep nesting,
//! random bytes, oversize, the wrong media type) — against paykeep over real HTTP on
//! loopback. Every answer must be below 500, every 4xx `application/problem+json` with a
//! `code` documented in README's error table, and no panic may happen anywhere in the
//! process.
//!
//! Deterministic: `PAYKEEP_FUZZ_SEED` replays a run (the seed is printed on failure);
//! `PAYKEEP_FUZZ_CASES` changes the count ([`CASES_DEFAULT`]). Every channel points at a
//! closed loopback port and the generated values name no other host, so nothing leaves
//! the machine.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use paykeep::http::ROUTES;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

/// Requests per run.
const CASES_DEFAULT: usize = 3000;
/// A loopback port nothing listens on (discard): deliveries fail without leaving the host.
const NOWHERE: &str = "http://127.0.0.1:9";

/// The codes of README's "Error codes" table.
fn documented_codes() -> HashSet<String> {
    let readme = include_str!("../README.md");
    let table = readme
        .split("## Error codes")
        .nth(1)
        .expect("README has an Error codes section");
    table
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let code = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            Some(code.to_owned())
        })
        .collect()
}

/// Strings that may appear anywhere a string goes: none names a host but loopback.
const STRINGS: &[&str] = &[
    "",
    " ",
    "o-1",
    "pm_card_visa",
    "pm_card_chargeDeclined",
    "pm_sim_transient",
    "pm_unknown",
    "USD",
    "usd",
    "XXX",
    "JPY",
    "2026-11-20",
    "2026-13-45",
    "9999-01-01",
    "not a date",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "whsec_!!",
    "http://127.0.0.1:9/hook",
    "http://10.0.0.1/",
    "ftp://127.0.0.1/",
    "\u{0}\u{1f}",
    "\u{202e}évil ☃ 💥",
    "a\nb",
    "${jndi:x}",
    "'; DROP TABLE payments; --",
    "*",
    "dead",
    "telegram",
    "webhook",
];

fn string(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0 => "x".repeat(rng.gen_range(60..1200)),
        1 => (0..rng.gen_range(1..20))
            .map(|_| char::from_u32(rng.gen_range(0x20..0x3000)).unwrap_or('?'))
            .collect(),
        _ => (*STRINGS.choose(rng).unwrap()).to_owned(),
    }
}

fn number(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..9) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(i64::MAX),
        3 => json!(u64::MAX),
        4 => json!(1.5),
        5 => json!(1e308),
        6 => json!(100_000_001u64),
        _ => json!(rng.gen_range(1..5000)),
    }
}

/// A random JSON value, at most `depth` deep.
fn value(rng: &mut StdRng, depth: u32) -> Value {
    let pick = if depth == 0 {
        rng.gen_range(0..4)
    } else {
        rng.gen_range(0..6)
    };
    match pick {
        0 => Value::Null,
        1 => json!(rng.gen_bool(0.5)),
        2 => number(rng),
        3 => json!(string(rng)),
        4 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut object = Map::new();
            for _ in 0..rng.gen_range(0..4) {
                object.insert(string(rng), value(rng, depth - 1));
            }
            Value::Object(object)
        }
    }
}

/// A body the route would accept, before mutation.
fn valid_body(route: &str, rng: &mut StdRng) -> Value {
    match route {
        "/v1/payments" => json!({
            "order_no": format!("fz-{}", rng.gen_range(0..200)),
            "amount": rng.gen_range(1..5000),
            "currency": "USD",
            "payment_method": *["pm_card_visa", "pm_card_chargeDeclined", "pm_sim_transient"].choose(rng).unwrap(),
            "metadata": {"k": "v"},
        }),
        "/v1/payments/{payment_id}/refunds" => json!({
            "amount": rng.gen_range(1..3000), "reason": "fuzz", "operator_id": "op"
        }),
        "/admin/reconciliations" => json!({"date": "2026-11-20"}),
        "/admin/discrepancies/{discrepancy_id}/resolve" => {
            json!({"resolution": "fuzzed", "operator": "op"})
        }
        "/admin/settings/notifications" => json!({
            "jitter_ratio": 0.1,
            "webhook": {"enabled": rng.gen_bool(0.5), "url": format!("{NOWHERE}/hook"),
                        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        }),
        "/v1/provider/webhooks" => json!({"id": "evt_1", "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1"}}}),
        _ => json!({}),
    }
}

/// The body bytes and their content type.
fn body(route: &str, rng: &mut StdRng) -> (Vec<u8>, Option<&'static str>) {
    let json_type = Some(
        *["application/json", "application/json; charset=utf-8"]
            .choose(rng)
            .unwrap(),
    );
    let mut valid = valid_body(route, rng);
    match rng.gen_range(0..18) {
        14..=17 => (valid.to_string().into_bytes(), json_type),
        0 => (Vec::new(), json_type),
        1 => (
            (0..rng.gen_range(1..300)).map(|_| rng.gen()).collect(),
            json_type,
        ),
        2 => (value(rng, 4).to_string().into_bytes(), json_type),
        3 => {
            // A repeated member.
            let text = valid.to_string();
            let doubled = text.replacen('{', "{\"amount\":1,\"amount\":2,", 1);
            (doubled.into_bytes(), json_type)
        }
        4 => ("[".repeat(300).into_bytes(), json_type),
        5 => (vec![b' '; 70_000], json_type),
        6 => (valid.to_string().into_bytes(), Some("text/plain")),
        7 => (valid.to_string().into_bytes(), None),
        8 => {
            let csv = format!(
                "provider_payment_id,amount,currency,status\npi_{},{},{},{}\n",
                rng.gen_range(0..9),
                number(rng),
                string(rng),
                string(rng)
            );
            (csv.into_bytes(), Some("text/csv"))
        }
        9 => {
            if let Some(object) = valid.as_object_mut() {
                let keys: Vec<String> = object.keys().cloned().collect();
                if let Some(key) = keys.choose(rng) {
                    object.remove(key);
                }
            }
            (valid.to_string().into_bytes(), json_type)
        }
        10 => {
            if let Some(object) = valid.as_object_mut() {
                object.insert(string(rng), value(rng, 2));
            }
            (valid.to_string().into_bytes(), json_type)
        }
        _ => {
            // 11..=13: one member's value replaced by anything.
            if let Some(object) = valid.as_object_mut() {
                let keys: Vec<String> = object.keys().cloned().collect();
                if let Some(key) = keys.choose(rng) {
                    object.insert(key.clone(), value(rng, 2));
                }
            }
            (valid.to_string().into_bytes(), json_type)
        }
    }
}

/// A path segment for a template parameter.
fn segment(rng: &mut StdRng, known: &[String]) -> String {
    match rng.gen_range(0..8) {
        0 => "%00".to_owned(),
        1 => "%ff%fe".to_owned(),
        2 => "a%2Fb".to_owned(),
        3 => "x".repeat(300),
        4 => "pay_00000000000000000000000000".to_owned(),
        5 => "%F0%9F%92%A5".to_owned(),
        _ => known
            .choose(rng)
            .cloned()
            .unwrap_or_else(|| "nope".to_owned()),
    }
}

fn query(rng: &mut StdRng) -> String {
    const KEYS: &[&str] = &[
        "limit",
        "after",
        "starting_after",
        "status",
        "channel",
        "order_no",
        "date",
        "since",
        "until",
        "x",
        "",
        "limit",
    ];
    let mut pairs = Vec::new();
    for _ in 0..rng.gen_range(0..4) {
        let key = *KEYS.choose(rng).unwrap();
        let value = match rng.gen_range(0..8) {
            0 => "%zz".to_owned(),
            1 => "-1".to_owned(),
            2 => "99999999999999999999".to_owned(),
            3 => "2026-01-01T00:00:00Z".to_owned(),
            4 => "".to_owned(),
            _ => utf8_query(&string(rng)),
        };
        pairs.push(format!("{key}={value}"));
    }
    if rng.gen_bool(0.05) {
        pairs.push("&&=&".to_owned());
    }
    pairs.join("&")
}

fn utf8_query(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn headers(route: &str, rng: &mut StdRng) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let authorization: Option<&[u8]> = match rng.gen_range(0..20) {
        0 => None,
        1 => Some(b"Bearer nope"),
        2 => Some(b"Basic c2s6"),
        3 => Some(b"Bearer \xff\xfe"),
        4 => Some(b"Bearer"),
        5 => Some(b"Bearer sk_test_other"),
        _ if route.starts_with("/admin") => Some(b"Bearer admin_demo_token"),
        _ => Some(b"Bearer sk_test_demo"),
    };
    if let Some(value) = authorization {
        headers.insert("authorization", HeaderValue::from_bytes(value).unwrap());
    }
    let key = HeaderName::from_static("idempotency-key");
    match rng.gen_range(0..10) {
        0 => {
            headers.append(&key, HeaderValue::from_static("k-1"));
            headers.append(&key, HeaderValue::from_static("k-2"));
        }
        1 => {
            headers.insert(&key, HeaderValue::from_bytes(b"\xd0\xba\xd0\xbb").unwrap());
        }
        2 => {
            headers.insert(&key, HeaderValue::from_str(&"k".repeat(300)).unwrap());
        }
        3 | 4 => {
            let k = format!("fz-key-{}", rng.gen_range(0..50));
            headers.insert(&key, HeaderValue::from_str(&k).unwrap());
        }
        _ => {}
    }
    if rng.gen_bool(0.05) {
        headers.insert("x-request-id", HeaderValue::from_bytes(b"\x80id").unwrap());
    }
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_over_every_route_never_answer_5xx_or_panic() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&panics);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counted.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let seed: u64 = std::env::var("PAYKEEP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13);
    let cases: usize = std::env::var("PAYKEEP_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CASES_DEFAULT);
    let svc = common::start(|c| {
        c.provider.timeout = Duration::from_millis(200);
        c.idempotency.in_flight_wait = Duration::from_millis(2000);
        let n = &mut c.notifications;
        n.telegram.api_base_url = NOWHERE.to_owned();
        n.email.api_base_url = NOWHERE.to_owned();
        n.request_timeout = Duration::from_millis(200);
    })
    .await;
    // A fresh connection per case: an answer given before its body was read (a 404 or 405
    // on an unknown route, an admin 401) ends its connection, and a pooled client could
    // race that close with its next request; each case stands alone.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // Real ids for the path parameters.
    let mut known = vec!["rec_nope".to_owned(), "dlv_nope".to_owned()];
    let paid = svc
        .create(Some("seed"), common::order("fz-seed"))
        .await
        .json();
    known.push(paid["id"].as_str().unwrap().to_owned());
    let codes = documented_codes();
    assert!(codes.contains("invalid_request") && codes.contains("unsupported_media_type"));
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for case in 0..cases {
        let (route_method, template) = *ROUTES.choose(&mut rng).unwrap();
        let method = if rng.gen_bool(0.85) {
            route_method
        } else {
            *methods.choose(&mut rng).unwrap()
        };
        let mut path = String::new();
        for part in template.split('/').skip(1) {
            path.push('/');
            if part.starts_with('{') {
                path.push_str(&segment(&mut rng, &known));
            } else {
                path.push_str(part);
            }
        }
        let query = query(&mut rng);
        let url = if query.is_empty() {
            svc.url(&path)
        } else {
            svc.url(&format!("{path}?{query}"))
        };
        let mut request = client
            .request(method.parse().unwrap(), &url)
            .headers(headers(template, &mut rng));
        let mut described_body = String::new();
        if matches!(method, "POST" | "PUT" | "PATCH") {
            let (bytes, content_type) = body(template, &mut rng);
            described_body = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            request = request.body(bytes);
        }
        let response = request.send().await.unwrap_or_else(|e| {
            panic!("seed {seed} case {case}: {method} {url}: no answer: {e:?}")
        });
        let answer = common::read(response).await;
        if std::env::var("PAYKEEP_FUZZ_TRACE").is_ok() {
            eprintln!("case {case}: {method} {url} → {}", answer.status);
        }
        *by_status.entry(answer.status).or_default() += 1;
        let context = || {
            format!(
                "seed {seed} case {case}: {method} {url} body {described_body:?} → {} {}",
                answer.status, answer.text
            )
        };
        assert!(answer.status < 500, "{}", context());
        if (400..500).contains(&answer.status) {
            assert_eq!(
                answer.header("content-type"),
                Some("application/problem+json"),
                "{}",
                context()
            );
            if method != "HEAD" {
                let problem: Value =
                    serde_json::from_str(&answer.text).unwrap_or_else(|_| panic!("{}", context()));
                let code = problem["code"].as_str().unwrap_or_default();
                assert!(codes.contains(code), "undocumented code: {}", context());
                assert_eq!(problem["status"], answer.status, "{}", context());
            }
        }
        // A created payment's id becomes a path parameter of later cases.
        if answer.status == 201 && method == "POST" && template == "/v1/payments" {
            if let Some(id) = answer.json()["id"].as_str() {
                known.push(id.to_owned());
            }
        }
    }
    eprintln!("fuzz: {cases} cases, seed {seed}, answers by status: {by_status:?}");
    assert_eq!(
        panics.load(Ordering::SeqCst),
        0,
        "a panic happened (seed {seed})"
    );
    svc.shutdown().await;
}
