//! Fault sequences of DESIGN §3 over real HTTP: retries keep one webhook-id, a 429's
//! retry_after is honoured, destination errors dead-letter at once and can be redriven,
//! credential errors pause the channel until its settings change, Telegram chat
//! migrations are followed, and a hanging endpoint does not slow payments.

mod common;
mod notify_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use paykeep::clock::ManualClock;

use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use notify_support::{
    admin, all_with, fast_retries, ms, pay, wait_deliveries, wait_deliveries_moving, webhook_to,
};

const LONG: Duration = Duration::from_secs(20);

/// The retry schedule's one step (`fast_retries`): a manual clock moves by it.
const STEP: Duration = Duration::from_secs(1);

/// paykeep with fast retries and Telegram pointed at `telegram`, one chat.
async fn start_with_telegram(telegram: &MockServer, token: &str, chat_id: &str) -> common::Service {
    let (uri, token, chat_id) = (telegram.uri(), token.to_owned(), chat_id.to_owned());
    common::start(telegram_config(uri, token, chat_id)).await
}

/// Fast retries and Telegram at `uri`, one chat.
fn telegram_config(
    uri: String,
    token: String,
    chat_id: String,
) -> impl FnOnce(&mut paykeep::config::Config) {
    move |c| {
        fast_retries(c);
        let t = &mut c.notifications.telegram;
        t.enabled = true;
        t.api_base_url = uri;
        t.bot_token = token;
        t.chat_ids = vec![chat_id];
    }
}

/// Telegram Bot API's success answer to `sendMessage`.
fn telegram_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {}}))
}

/// `GET /admin/settings/notifications` as JSON.
async fn notification_settings(svc: &common::Service) -> Value {
    admin(
        &svc.client,
        &svc.base,
        "GET",
        "/admin/settings/notifications",
        None,
    )
    .await
    .json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_twice_then_ok_is_three_attempts_with_one_webhook_id() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&sink)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&sink)
        .await;
    let clock = Arc::new(ManualClock::starting_now());
    let svc = common::start_on_clock(Arc::clone(&clock), |c| {
        fast_retries(c);
        webhook_to(c, &sink.uri());
    })
    .await;
    pay(&svc.client, &svc.base, "f-500").await;
    let (client, base) = (&svc.client, &svc.base);
    let delivered = all_with("delivered", 1);
    let ds = wait_deliveries_moving(&clock, STEP, client, base, "", LONG, delivered).await;
    let attempts = ds[0]["attempts"].as_array().unwrap();
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["retryable", "retryable", "delivered"]);
    assert_eq!(attempts[0]["http_status"], 500);
    assert_eq!(attempts[0]["error"], "HTTP 500");
    // Each retry waited the 1 s schedule step.
    assert!(ms(&attempts[1]["at"]) - ms(&attempts[0]["at"]) >= 950);
    let requests = sink.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let ids: Vec<&str> = requests
        .iter()
        .map(|r| r.headers.get("webhook-id").unwrap().to_str().unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ds[0]["event_id"]), "{ids:?}");
    let metrics = svc.get("/metrics").await.text;
    assert!(metrics
        .contains("notification_delivery_failure_total{channel=\"webhook\",retryable=\"true\"} 2"));
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_retry_after_is_honoured_over_the_schedule() {
    let telegram = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "ok": false, "error_code": 429,
            "description": "Too Many Requests: retry after 2",
            "parameters": {"retry_after": 2}
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .respond_with(telegram_ok())
        .with_priority(2)
        .mount(&telegram)
        .await;
    let clock = Arc::new(ManualClock::starting_now());
    let config = telegram_config(telegram.uri(), "1:token".to_owned(), "5".to_owned());
    let svc = common::start_on_clock(Arc::clone(&clock), config).await;
    pay(&svc.client, &svc.base, "f-429").await;
    let (client, base) = (&svc.client, &svc.base);
    let delivered = all_with("delivered", 1);
    let ds = wait_deliveries_moving(&clock, STEP, client, base, "", LONG, delivered).await;
    let attempts = ds[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["http_status"], 429);
    assert!(attempts[0]["error"]
        .as_str()
        .unwrap()
        .contains("retry after 2"));
    let waited_ms = ms(&attempts[1]["at"]) - ms(&attempts[0]["at"]);
    assert!(
        waited_ms >= 1_950,
        "waited {waited_ms} ms; the schedule says 1 s, Telegram 2 s"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_is_dead_listed_and_redriven_one_or_in_bulk() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(410).set_body_string("gone"))
        .mount(&sink)
        .await;
    let svc = common::start(|c| {
        fast_retries(c);
        webhook_to(c, &sink.uri());
    })
    .await;
    for order in ["g-1", "g-2", "g-3"] {
        pay(&svc.client, &svc.base, order).await;
    }
    let dead = wait_deliveries(&svc.client, &svc.base, "status=dead", LONG, |ds| {
        ds.len() == 3
    })
    .await;
    assert_eq!(
        dead[0]["attempt_count"], 1,
        "a destination error is dead at once"
    );
    assert_eq!(dead[0]["reason"], "HTTP 410: gone");
    assert_eq!(sink.received_requests().await.unwrap().len(), 3);
    sink.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&sink)
        .await;
    let id = dead[0]["id"].as_str().unwrap();
    let redriven = admin(
        &svc.client,
        &svc.base,
        "POST",
        &format!("/admin/deliveries/{id}/redrive"),
        None,
    )
    .await;
    assert_eq!(redriven.status, 200, "{}", redriven.text);
    assert_eq!(redriven.json()["attempt_count"], 0);
    wait_deliveries(&svc.client, &svc.base, "status=delivered", LONG, |ds| {
        ds.len() == 1
    })
    .await;
    let again = admin(
        &svc.client,
        &svc.base,
        "POST",
        &format!("/admin/deliveries/{id}/redrive"),
        None,
    )
    .await;
    again.problem(409, "delivery_not_dead");
    let bulk = admin(
        &svc.client,
        &svc.base,
        "POST",
        "/admin/deliveries/redrive?channel=webhook&since=2000-01-01T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(bulk.json(), json!({"redriven": 2, "has_more": false}));
    wait_deliveries(&svc.client, &svc.base, "", LONG, all_with("delivered", 3)).await;
    let missing = admin(
        &svc.client,
        &svc.base,
        "POST",
        "/admin/deliveries/dlv_nope/redrive",
        None,
    )
    .await;
    missing.problem(404, "not_found");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_pauses_the_channel_until_a_new_token() {
    let telegram = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/botbad:token/sendMessage"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "ok": false, "error_code": 401, "description": "Unauthorized"
        })))
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .and(path("/botgood:token/sendMessage"))
        .respond_with(telegram_ok())
        .mount(&telegram)
        .await;
    let svc = start_with_telegram(&telegram, "bad:token", "5").await;
    pay(&svc.client, &svc.base, "p-1").await;
    let paused = wait_deliveries(&svc.client, &svc.base, "", LONG, all_with("paused", 1)).await;
    assert!(paused[0]["reason"].as_str().unwrap().contains("401"));
    let settings = notification_settings(&svc).await;
    assert_eq!(settings["paused_channels"], json!(["telegram"]));
    // A later event waits paused too, without another refused request.
    pay(&svc.client, &svc.base, "p-2").await;
    wait_deliveries(&svc.client, &svc.base, "", LONG, all_with("paused", 2)).await;
    assert_eq!(telegram.received_requests().await.unwrap().len(), 1);
    for d in all_deliveries_text(&svc).await.iter() {
        assert!(!d.contains("bad:token"), "the token leaked: {d}");
    }
    let put = admin(
        &svc.client,
        &svc.base,
        "PUT",
        "/admin/settings/notifications",
        Some(&json!({"telegram": {"bot_token": "good:token"}})),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["paused_channels"], json!([]));
    let ds = wait_deliveries(&svc.client, &svc.base, "", LONG, all_with("delivered", 2)).await;
    assert!(ds
        .iter()
        .all(|d| d["attempts"].as_array().unwrap().last().unwrap()["outcome"] == "delivered"));
    svc.shutdown().await;
}

async fn all_deliveries_text(svc: &common::Service) -> Vec<String> {
    notify_support::all_deliveries(&svc.client, &svc.base, "")
        .await
        .iter()
        .map(Value::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_telegram_chat_is_followed() {
    let telegram = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"chat_id": -1002})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "ok": false, "error_code": 400,
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": -100999}
        })))
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"chat_id": -100999})))
        .respond_with(telegram_ok())
        .mount(&telegram)
        .await;
    let svc = start_with_telegram(&telegram, "1:token", "-1002").await;
    pay(&svc.client, &svc.base, "m-1").await;
    let ds = wait_deliveries(&svc.client, &svc.base, "", LONG, all_with("delivered", 1)).await;
    assert_eq!(ds[0]["target"], "-100999");
    assert_eq!(ds[0]["attempts"][0]["outcome"], "migrated");
    let settings = notification_settings(&svc).await;
    assert_eq!(
        settings["settings"]["telegram"]["chat_ids"],
        json!(["-100999"])
    );
    svc.shutdown().await;
}

/// Median and worst create latency over `n` sequential creates.
async fn create_latencies(svc: &common::Service, prefix: &str, n: usize) -> (Duration, Duration) {
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let answer = svc
            .create(None, common::order(&format!("{prefix}-{i}")))
            .await;
        all.push(started.elapsed());
        assert_eq!(answer.status, 201, "{}", answer.text);
    }
    all.sort();
    (all[n / 2], all[n - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_leaves_payment_latency_unchanged() {
    let baseline_svc = common::start(|_| {}).await;
    let (baseline, _) = create_latencies(&baseline_svc, "base", 40).await;
    baseline_svc.shutdown().await;
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&sink)
        .await;
    let svc = common::start(|c| {
        fast_retries(c);
        webhook_to(c, &sink.uri());
        c.notifications.request_timeout = Duration::from_secs(30);
    })
    .await;
    let (median, worst) = create_latencies(&svc, "hang", 40).await;
    // The endpoint really hangs: the first deliveries are stuck in flight.
    let sending = notify_support::all_deliveries(&svc.client, &svc.base, "status=sending").await;
    assert!(!sending.is_empty());
    assert!(
        median <= baseline * 3 + Duration::from_millis(30),
        "median create {median:?} with a hanging channel vs {baseline:?} without"
    );
    assert!(worst < Duration::from_secs(1), "worst create {worst:?}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_header_then_max_attempts_make_it_dead() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "2"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&sink)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(2)
        .mount(&sink)
        .await;
    let svc = common::start(|c| {
        fast_retries(c);
        webhook_to(c, &sink.uri());
        c.notifications.max_attempts = 3;
    })
    .await;
    pay(&svc.client, &svc.base, "max-1").await;
    let ds = wait_deliveries(&svc.client, &svc.base, "", LONG, all_with("dead", 1)).await;
    let attempts = ds[0]["attempts"].as_array().unwrap();
    let statuses: Vec<&Value> = attempts.iter().map(|a| &a["http_status"]).collect();
    assert_eq!(statuses, vec![&json!(429), &json!(503), &json!(503)]);
    assert!(
        ms(&attempts[1]["at"]) - ms(&attempts[0]["at"]) >= 1_950,
        "Retry-After: 2 honoured"
    );
    assert_eq!(
        ds[0]["reason"],
        "max_attempts (3) reached; last error: HTTP 503"
    );
    let listed = admin(
        &svc.client,
        &svc.base,
        "GET",
        "/admin/deliveries?status=dead",
        None,
    )
    .await
    .json();
    assert_eq!(listed["data"][0]["id"], ds[0]["id"]);
    svc.shutdown().await;
}
