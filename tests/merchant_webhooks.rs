//! Merchant webhook endpoints over real HTTP (DESIGN §3 "Merchant webhook endpoints"):
//! endpoints on loopback fakes (wiremock) receive the merchant's own events, each verified
//! here with the Standard Webhooks algorithm written independently of paykeep's signer;
//! rotation, type filters, isolation between merchants, 410 and failing endpoints
//! disabled, bad input refused with nothing stored, and the events API.

mod common;
mod notify_support;

use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use common::{read, Answer, MERCHANT_KEY, OTHER_MERCHANT_KEY};
use notify_support::admin;

/// `METHOD path` as the merchant of `api_key`, with an optional JSON body.
async fn call(
    client: &reqwest::Client,
    base: &str,
    api_key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut request = client
        .request(method.parse().expect("method"), format!("{base}{path}"))
        .bearer_auth(api_key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    read(request.send().await.expect("request")).await
}

/// Creates an endpoint on `url` for `events`; returns (id, secret).
async fn endpoint(
    client: &reqwest::Client,
    base: &str,
    api_key: &str,
    url: &str,
    events: Value,
) -> (String, String) {
    let answer = call(
        client,
        base,
        api_key,
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({"url": url, "enabled_events": events, "description": "orders"})),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body["object"], "webhook_endpoint");
    assert_eq!(body["status"], "enabled");
    let secret = body["secret"]
        .as_str()
        .expect("secret answered once")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    (body["id"].as_str().expect("id").to_owned(), secret)
}

/// A fake endpoint answering every POST with `status`.
async fn sink(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

/// Waits until `server` has received at least `count` requests; returns them in order.
async fn received(server: &MockServer, count: usize, within: Duration) -> Vec<Request> {
    let deadline = Instant::now() + within;
    loop {
        let requests = server.received_requests().await.unwrap_or_default();
        if requests.len() >= count {
            return requests;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} requests arrived",
            requests.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("header {name} missing"))
}

/// The Standard Webhooks verification, written from the specification: the key is the
/// base64 after `whsec_`; the signed content is `{id}.{timestamp}.{body}`; the header holds
/// space-separated `v1,<base64 HMAC-SHA256>`; the timestamp must be within five minutes.
/// Whether some signature of `request` verifies with `secret`.
fn verifies(request: &Request, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let id = header(request, "webhook-id");
    let timestamp = header(request, "webhook-timestamp");
    let sent_at: i64 = timestamp.parse().expect("unix seconds");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (now - sent_at).abs() <= 300,
        "timestamp {sent_at} vs now {now}"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header(request, "webhook-signature")
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("JSON body")
}

#[tokio::test]
async fn an_endpoint_hears_processing_then_succeeded_signed_with_its_secret() {
    let svc = common::start(|_| {}).await;
    let hook = sink(200).await;
    let (_, secret) = endpoint(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        &format!("{}/hook", hook.uri()),
        json!(["*"]),
    )
    .await;
    let created = svc
        .create(None, common::order_with("o-transient", "pm_sim_transient"))
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let payment_id = created.json()["id"].as_str().expect("id").to_owned();

    let mut requests = received(&hook, 2, Duration::from_secs(20)).await;
    // Sent in that order as a rule, but deliveries run in parallel and retries reorder
    // them, so the order is the events' (`created_at`, then id: ULIDs), as a receiver
    // should take it.
    requests.sort_by_key(|r| {
        let event = body(r);
        (event["created_at"].to_string(), event["id"].to_string())
    });
    let types: Vec<Value> = requests.iter().map(|r| body(r)["type"].clone()).collect();
    assert_eq!(
        types,
        [json!("payment.processing"), json!("payment.succeeded")]
    );
    for (request, status) in requests.iter().zip(["processing", "succeeded"]) {
        assert!(verifies(request, &secret), "signature of {}", body(request));
        assert!(!verifies(request, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        let event = body(request);
        assert_eq!(event["object"], "event");
        assert_eq!(event["id"], header(request, "webhook-id"));
        assert_eq!(event["data"]["object"]["id"], payment_id.as_str());
        assert_eq!(event["data"]["object"]["object"], "payment");
        assert_eq!(event["data"]["object"]["status"], status);
        for key in [
            "metadata",
            "description",
            "customer_email",
            "amount",
            "currency",
        ] {
            assert!(
                event["data"]["object"].get(key).is_some(),
                "{key} in {event}"
            );
        }
        // The body is the event as the events API answers it.
        let id = event["id"].as_str().expect("event id");
        let fetched = svc.get(&format!("/v1/events/{id}")).await;
        assert_eq!(fetched.status, 200, "{}", fetched.text);
        assert_eq!(fetched.json(), event);
    }

    let listed = svc.get("/v1/events?limit=1").await.json();
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["url"], "/v1/events");
    assert_eq!(listed["has_more"], true);
    assert_eq!(listed["data"][0]["type"], "payment.succeeded");
    let newest = listed["data"][0]["id"].as_str().expect("id").to_owned();
    let older = svc
        .get(&format!("/v1/events?limit=1&starting_after={newest}"))
        .await
        .json();
    assert_eq!(older["data"][0]["type"], "payment.processing");
    assert_eq!(older["has_more"], false);
    let oldest = older["data"][0]["id"].as_str().expect("id");
    let back = svc
        .get(&format!("/v1/events?ending_before={oldest}"))
        .await
        .json();
    assert_eq!(back["data"][0]["id"], newest.as_str());
    let processing = svc.get("/v1/events?type=payment.processing").await.json();
    assert_eq!(processing["data"].as_array().map(Vec::len), Some(1));

    // Both delivered: nothing left undelivered (the record is written just after the
    // answer the fake saw).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let undelivered = svc.get("/v1/events?delivery_success=false").await.json();
        if undelivered["data"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "{undelivered}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = svc.get("/v1/events?delivery_success=true").await.json();
    assert_eq!(delivered["data"].as_array().map(Vec::len), Some(2));
    svc.shutdown().await;
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_until_the_overlap_ends() {
    let svc = common::start(|c| c.webhooks.rotation_overlap = Duration::from_secs(3)).await;
    let hook = sink(200).await;
    let (id, old) = endpoint(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        &hook.uri(),
        json!(["payment.succeeded"]),
    )
    .await;
    let rotated = call(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        "POST",
        &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
        None,
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new = rotated.json()["secret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert_ne!(new, old);
    let rotated_at = Instant::now();
    let got = svc.get(&format!("/v1/webhook_endpoints/{id}")).await;
    assert_eq!(got.status, 200);
    assert!(
        got.json().get("secret").is_none(),
        "the secret is answered once"
    );

    assert_eq!(svc.create(None, common::order("o-rot-1")).await.status, 201);
    let during = received(&hook, 1, Duration::from_secs(10)).await;
    assert!(
        rotated_at.elapsed() < Duration::from_secs(3),
        "the first delivery came after the overlap; the test machine is too slow"
    );
    assert_eq!(
        header(&during[0], "webhook-signature").split(' ').count(),
        2
    );
    assert!(verifies(&during[0], &old), "old secret during the overlap");
    assert!(verifies(&during[0], &new), "new secret during the overlap");

    tokio::time::sleep(Duration::from_secs(3).saturating_sub(rotated_at.elapsed())).await;
    // Signatures carry Unix seconds, and the overlap is judged at that resolution.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(svc.create(None, common::order("o-rot-2")).await.status, 201);
    let after = received(&hook, 2, Duration::from_secs(10)).await;
    assert_eq!(header(&after[1], "webhook-signature").split(' ').count(), 1);
    assert!(verifies(&after[1], &new));
    assert!(
        !verifies(&after[1], &old),
        "only the new secret after the overlap"
    );
    svc.shutdown().await;
}

#[tokio::test]
async fn endpoints_get_their_merchants_events_of_their_types_only() {
    let svc = common::start(|_| {}).await;
    let failed_only = sink(200).await;
    let other = sink(200).await;
    let (demo_id, _) = endpoint(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        &failed_only.uri(),
        json!(["payment.failed"]),
    )
    .await;
    let (other_id, _) = endpoint(
        &svc.client,
        &svc.base,
        OTHER_MERCHANT_KEY,
        &other.uri(),
        json!(["*"]),
    )
    .await;

    assert_eq!(svc.create(None, common::order("o-paid")).await.status, 201);
    let declined = svc
        .create(
            None,
            common::order_with("o-declined", "pm_card_chargeDeclined"),
        )
        .await;
    assert_eq!(declined.status, 201, "{}", declined.text);
    let declined_id = declined.json()["id"].as_str().expect("id").to_owned();

    let requests = received(&failed_only, 1, Duration::from_secs(10)).await;
    // Give a wrongly routed delivery the time to arrive too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests_now = failed_only.received_requests().await.unwrap_or_default();
    assert_eq!(requests_now.len(), 1, "only payment.failed");
    assert_eq!(body(&requests[0])["type"], "payment.failed");
    assert_eq!(
        body(&requests[0])["data"]["object"]["id"],
        declined_id.as_str()
    );
    assert!(
        other
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "another merchant's endpoint hears nothing of m_demo"
    );

    // Isolation in the API: another merchant's endpoint and events are 404, its event ids
    // are no cursor.
    for (method, path) in [
        ("GET", format!("/v1/webhook_endpoints/{demo_id}")),
        ("PATCH", format!("/v1/webhook_endpoints/{demo_id}")),
        ("DELETE", format!("/v1/webhook_endpoints/{demo_id}")),
        (
            "POST",
            format!("/v1/webhook_endpoints/{demo_id}/rotate_secret"),
        ),
    ] {
        let body = (method == "PATCH").then(|| json!({"description": "mine now"}));
        call(
            &svc.client,
            &svc.base,
            OTHER_MERCHANT_KEY,
            method,
            &path,
            body,
        )
        .await
        .problem(404, "not_found");
    }
    let listed = call(
        &svc.client,
        &svc.base,
        OTHER_MERCHANT_KEY,
        "GET",
        "/v1/webhook_endpoints",
        None,
    )
    .await
    .json();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, [other_id.as_str()]);
    let demo_events = svc.get("/v1/events").await.json();
    let event_id = demo_events["data"][0]["id"]
        .as_str()
        .expect("an event")
        .to_owned();
    call(
        &svc.client,
        &svc.base,
        OTHER_MERCHANT_KEY,
        "GET",
        &format!("/v1/events/{event_id}"),
        None,
    )
    .await
    .problem(404, "not_found");
    let cursor = call(
        &svc.client,
        &svc.base,
        OTHER_MERCHANT_KEY,
        "GET",
        &format!("/v1/events?starting_after={event_id}"),
        None,
    )
    .await
    .problem(400, "invalid_request");
    assert_eq!(cursor["fields"], json!(["starting_after"]));
    let others = call(
        &svc.client,
        &svc.base,
        OTHER_MERCHANT_KEY,
        "GET",
        "/v1/events",
        None,
    )
    .await
    .json();
    assert_eq!(others["data"], json!([]));
    svc.shutdown().await;
}

/// Polls the endpoint until it is disabled; returns it.
async fn wait_disabled(svc: &common::Service, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = svc.get(&format!("/v1/webhook_endpoints/{id}")).await.json();
        if got["status"] == "disabled" {
            return got;
        }
        assert!(Instant::now() < deadline, "never disabled: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The operator alert about `id` in the outbox.
async fn alert_about(svc: &common::Service, id: &str) -> bool {
    let events = admin(
        &svc.client,
        &svc.base,
        "GET",
        "/admin/events?limit=500",
        None,
    )
    .await
    .json();
    events["data"]
        .as_array()
        .expect("data")
        .iter()
        .any(|e| e["type"] == "webhook_endpoint.disabled" && e["entity_id"] == id)
}

#[tokio::test]
async fn a_gone_endpoint_is_disabled_and_the_operator_alerted() {
    let svc = common::start(|_| {}).await;
    // 410 once (the merchant took its receiver down), then 200 (it is back).
    let gone = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(410))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&gone)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&gone)
        .await;
    let (id, secret) = endpoint(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        &gone.uri(),
        json!(["*"]),
    )
    .await;
    assert_eq!(svc.create(None, common::order("o-gone")).await.status, 201);
    let disabled = wait_disabled(&svc, &id).await;
    assert!(disabled["disabled_reason"]
        .as_str()
        .is_some_and(|r| r.contains("410")));
    assert!(
        alert_about(&svc, &id).await,
        "webhook_endpoint.disabled raised"
    );
    let dead = notify_support::wait_deliveries(
        &svc.client,
        &svc.base,
        "channel=merchant",
        Duration::from_secs(10),
        notify_support::all_with("dead", 1),
    )
    .await;
    assert_eq!(dead[0]["target"], id.as_str());
    // A disabled endpoint is sent nothing more; enabling it again is the merchant's call.
    assert_eq!(
        svc.create(None, common::order("o-gone-2")).await.status,
        201
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(gone.received_requests().await.unwrap_or_default().len(), 1);
    let enabled = call(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        "PATCH",
        &format!("/v1/webhook_endpoints/{id}"),
        Some(json!({"status": "enabled"})),
    )
    .await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    assert_eq!(enabled.json()["status"], "enabled");
    assert_eq!(enabled.json()["disabled_reason"], Value::Null);
    // The dead letter goes again through the admin API's redrive, with its first event id.
    let dlv = dead[0]["id"].as_str().expect("delivery id");
    let redriven = admin(
        &svc.client,
        &svc.base,
        "POST",
        &format!("/admin/deliveries/{dlv}/redrive"),
        None,
    )
    .await;
    assert_eq!(redriven.status, 200, "{}", redriven.text);
    let requests = received(&gone, 2, Duration::from_secs(10)).await;
    assert_eq!(
        header(&requests[1], "webhook-id"),
        header(&requests[0], "webhook-id"),
        "the same webhook-id on every attempt"
    );
    assert!(verifies(&requests[1], &secret));
    notify_support::wait_deliveries(
        &svc.client,
        &svc.base,
        "channel=merchant&status=delivered",
        Duration::from_secs(10),
        |ds| ds.iter().any(|d| d["id"] == dlv),
    )
    .await;
    svc.shutdown().await;
}

#[tokio::test]
async fn refunds_reach_the_endpoint_and_private_urls_are_refused_when_used_too() {
    let svc = common::start(|_| {}).await;
    let hook = sink(200).await;
    let (_, secret) = endpoint(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        &hook.uri(),
        json!(["refund.succeeded"]),
    )
    .await;
    let paid = svc.create(None, common::order("o-refund")).await;
    assert_eq!(paid.status, 201, "{}", paid.text);
    let payment_id = paid.json()["id"].as_str().expect("id").to_owned();
    let refund = call(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        "POST",
        &format!("/v1/payments/{payment_id}/refunds"),
        Some(json!({"amount": 500, "reason": "damaged", "operator_id": "alice"})),
    )
    .await;
    assert_eq!(refund.status, 201, "{}", refund.text);
    let requests = received(&hook, 1, Duration::from_secs(10)).await;
    assert!(verifies(&requests[0], &secret));
    let event = body(&requests[0]);
    assert_eq!(event["type"], "refund.succeeded");
    assert_eq!(
        event["data"]["object"],
        refund.json(),
        "the refund as the API answered it"
    );

    // The operator turns private targets off: the loopback endpoint, accepted before, is
    // refused at send time (a dead letter), and can no longer be set.
    let off = admin(
        &svc.client,
        &svc.base,
        "PUT",
        "/admin/settings/notifications",
        Some(&json!({"allow_private_targets": false})),
    )
    .await;
    assert_eq!(off.status, 200, "{}", off.text);
    let other = svc.create(None, common::order("o-refund-2")).await;
    let other_id = other.json()["id"].as_str().expect("id").to_owned();
    let second = call(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        "POST",
        &format!("/v1/payments/{other_id}/refunds"),
        Some(json!({"amount": 500, "operator_id": "alice"})),
    )
    .await;
    assert_eq!(second.status, 201, "{}", second.text);
    let dead = notify_support::wait_deliveries(
        &svc.client,
        &svc.base,
        "channel=merchant&status=dead",
        Duration::from_secs(10),
        |ds| !ds.is_empty(),
    )
    .await;
    assert!(
        dead[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("refused")),
        "{}",
        dead[0]
    );
    assert_eq!(hook.received_requests().await.unwrap_or_default().len(), 1);
    call(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({"url": hook.uri(), "enabled_events": ["*"]})),
    )
    .await
    .problem(422, "invalid_webhook_endpoint");
    svc.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_failing_past_disable_after_is_disabled() {
    let svc = common::start(|c| {
        notify_support::fast_retries(c);
        c.webhooks.disable_after = Duration::from_secs(1);
    })
    .await;
    let failing = sink(503).await;
    let (id, _) = endpoint(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        &failing.uri(),
        json!(["*"]),
    )
    .await;
    assert_eq!(
        svc.create(None, common::order("o-failing")).await.status,
        201
    );
    let disabled = wait_disabled(&svc, &id).await;
    assert!(disabled["disabled_reason"]
        .as_str()
        .is_some_and(|r| r.contains("failed")));
    assert!(failing.received_requests().await.unwrap_or_default().len() >= 2);
    assert!(alert_about(&svc, &id).await);
    svc.shutdown().await;
}

#[tokio::test]
async fn bad_endpoints_and_list_parameters_are_refused_and_store_nothing() {
    let svc = common::start(|c| {
        c.notifications.allow_private_targets = false;
        c.webhooks.endpoints_max = std::num::NonZeroUsize::new(2).unwrap();
    })
    .await;
    let post = |body: Value| {
        let (client, base) = (svc.client.clone(), svc.base.clone());
        async move {
            call(
                &client,
                &base,
                MERCHANT_KEY,
                "POST",
                "/v1/webhook_endpoints",
                Some(body),
            )
            .await
        }
    };
    let long = format!("https://example.com/{}", "a".repeat(2100));
    for (url, events, field) in [
        ("ftp://example.com/hook", json!(["*"]), "url"),
        ("example.com/hook", json!(["*"]), "url"),
        (long.as_str(), json!(["*"]), "url"),
        ("http://127.0.0.1:9/hook", json!(["*"]), "url"),
        ("http://[::ffff:10.0.0.1]/hook", json!(["*"]), "url"),
        ("http://2130706433/hook", json!(["*"]), "url"),
        (
            "https://example.com/hook",
            json!(["payment.bogus"]),
            "enabled_events",
        ),
        (
            "https://example.com/hook",
            json!(["system.dead_letters"]),
            "enabled_events",
        ),
        ("https://example.com/hook", json!([]), "enabled_events"),
    ] {
        let problem = post(json!({"url": url, "enabled_events": events}))
            .await
            .problem(422, "invalid_webhook_endpoint");
        assert_eq!(problem["fields"], json!([field]), "{url} {events}");
    }
    post(json!({"url": "https://example.com/hook"}))
        .await
        .problem(400, "invalid_request");
    post(json!({"url": "https://example.com/hook", "enabled_events": ["*"], "secret": "x"}))
        .await
        .problem(400, "invalid_request");
    let empty = svc.get("/v1/webhook_endpoints").await.json();
    assert_eq!(empty["data"], json!([]), "nothing stored on a refusal");

    let good = json!({"url": "https://example.com/hook", "enabled_events": ["payment.succeeded"]});
    let first = post(good.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(post(good.clone()).await.status, 201);
    post(good.clone())
        .await
        .problem(422, "webhook_endpoints_limit");
    let listed = svc.get("/v1/webhook_endpoints").await.json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
    assert!(listed["data"][0].get("secret").is_none());

    let id = first.json()["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/webhook_endpoints/{id}");
    for (patch, field) in [
        (json!({"url": "http://10.1.2.3/x"}), "url"),
        (json!({"enabled_events": ["nope"]}), "enabled_events"),
        (json!({"status": "paused"}), "status"),
    ] {
        let problem = call(
            &svc.client,
            &svc.base,
            MERCHANT_KEY,
            "PATCH",
            &path,
            Some(patch),
        )
        .await
        .problem(422, "invalid_webhook_endpoint");
        assert_eq!(problem["fields"], json!([field]));
    }
    let unchanged = svc.get(&path).await.json();
    assert_eq!(unchanged["url"], "https://example.com/hook");
    assert_eq!(unchanged["enabled_events"], json!(["payment.succeeded"]));
    let patched = call(
        &svc.client,
        &svc.base,
        MERCHANT_KEY,
        "PATCH",
        &path,
        Some(
            json!({"url": "https://example.org/new", "enabled_events": ["*"], "description": "d"}),
        ),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["url"], "https://example.org/new");
    let deleted = call(&svc.client, &svc.base, MERCHANT_KEY, "DELETE", &path, None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.json()["deleted"], true);
    svc.get(&path).await.problem(404, "not_found");
    svc.get("/v1/webhook_endpoints/we_nope")
        .await
        .problem(404, "not_found");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        (
            "starting_after=evt_01hzzzzzzzzzzzzzzzzzzzzzzz",
            "starting_after",
        ),
        ("starting_after=pay_1", "starting_after"),
        ("ending_before=evt_unknown", "ending_before"),
        ("type=payment.exploded", "type"),
        ("delivery_success=maybe", "delivery_success"),
        ("colour=red", "colour"),
    ] {
        let problem = svc
            .get(&format!("/v1/events?{query}"))
            .await
            .problem(400, "invalid_request");
        assert_eq!(problem["fields"], json!([field]), "{query}");
    }
    svc.get("/v1/events/evt_01hzzzzzzzzzzzzzzzzzzzzzzz")
        .await
        .problem(404, "not_found");
    call(
        &svc.client,
        &svc.base,
        "sk_wrong",
        "GET",
        "/v1/webhook_endpoints",
        None,
    )
    .await
    .problem(401, "unauthorized");
    svc.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_create_with_an_idempotency_key_is_replayed_not_repeated() {
    let svc = common::start(|_| {}).await;
    let send = |key: &'static str, body: Value| {
        let (client, base) = (svc.client.clone(), svc.base.clone());
        async move {
            let response = client
                .post(format!("{base}/v1/webhook_endpoints"))
                .bearer_auth(MERCHANT_KEY)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .expect("request");
            read(response).await
        }
    };
    let body = json!({"url": "https://example.com/hook", "enabled_events": ["*"]});
    let first = send("ep-1", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = send("ep-1", body.clone()).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert!(again.replayed());
    assert_eq!(again.json(), first.json(), "the same endpoint and secret");
    let listed = svc.get("/v1/webhook_endpoints").await.json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    let changed = send(
        "ep-1",
        json!({"url": "https://example.org/other", "enabled_events": ["*"]}),
    )
    .await
    .problem(422, "idempotency_key_reused");
    assert_eq!(changed["fields"], json!(["url"]));
    // One key namespace per merchant: a payment create cannot take the endpoint's key.
    svc.create(Some("ep-1"), common::order("o-ep-1"))
        .await
        .problem(422, "idempotency_key_reused");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_pass_the_endpoint_limit() {
    let svc =
        common::start(|c| c.webhooks.endpoints_max = std::num::NonZeroUsize::new(3).unwrap()).await;
    let creates = (0..12).map(|i| {
        let (client, base) = (svc.client.clone(), svc.base.clone());
        async move {
            let body = json!({"url": format!("https://example.com/{i}"), "enabled_events": ["*"]});
            call(
                &client,
                &base,
                MERCHANT_KEY,
                "POST",
                "/v1/webhook_endpoints",
                Some(body),
            )
            .await
            .status
        }
    });
    let statuses = futures::future::join_all(creates).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 422),
        "{statuses:?}"
    );
    let listed = svc.get("/v1/webhook_endpoints").await.json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(3));
    svc.shutdown().await;
}
