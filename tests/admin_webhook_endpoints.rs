//! Merchant webhook endpoints through the admin API (DESIGN §7 "merchant webhook endpoints
//! (read, disable)"), over real HTTP: the admin token only, one merchant's endpoints or all,
//! paged, never a secret; a disable the merchant API sees and the delivery side obeys;
//! bad input refused by name with nothing changed.

mod common;
mod notify_support;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use common::{read, Answer, MERCHANT_KEY, OTHER_MERCHANT_KEY};
use notify_support::{admin, ok_sink};

/// `METHOD path` with `token` as Bearer and an optional JSON body.
async fn call(
    svc: &common::Service,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut request = svc
        .client
        .request(method.parse().expect("method"), svc.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    read(request.send().await.expect("request")).await
}

/// Creates an endpoint of the merchant of `api_key` on `url`; returns (id, secret).
async fn endpoint(svc: &common::Service, api_key: &str, url: &str) -> (String, String) {
    let created = call(
        svc,
        api_key,
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({"url": url, "enabled_events": ["*"], "description": "orders"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let body = created.json();
    (
        body["id"].as_str().expect("id").to_owned(),
        body["secret"].as_str().expect("secret").to_owned(),
    )
}

/// `GET path` with the admin token.
async fn admin_get(svc: &common::Service, path: &str) -> Answer {
    admin(&svc.client, &svc.base, "GET", path, None).await
}

/// `POST /admin/webhook_endpoints/{id}/disable` with the admin token.
async fn disable(svc: &common::Service, id: &str) -> Answer {
    let path = format!("/admin/webhook_endpoints/{id}/disable");
    admin(&svc.client, &svc.base, "POST", &path, None).await
}

/// The `key` of every item of a list page.
fn column(page: &Value, key: &str) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e[key].as_str().expect("a string").to_owned())
        .collect()
}

fn ids(page: &Value) -> Vec<String> {
    column(page, "id")
}

/// Asserts `text` holds none of `secrets`, raw or as their base64 key.
fn assert_no_secret(text: &str, secrets: &[String]) {
    assert!(!text.contains("whsec_"), "{text}");
    for secret in secrets {
        let key = secret.strip_prefix("whsec_").expect("whsec_");
        assert!(!text.contains(key), "{text}");
        let again = base64::engine::general_purpose::STANDARD.encode(secret);
        assert!(!text.contains(&again), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_lists_endpoints_by_merchant_without_secrets() {
    let svc = common::start(|_| {}).await;
    let (a1, s1) = endpoint(&svc, MERCHANT_KEY, "http://127.0.0.1:9/a1").await;
    let (a2, s2) = endpoint(&svc, MERCHANT_KEY, "http://127.0.0.1:9/a2").await;
    let (b1, s3) = endpoint(&svc, OTHER_MERCHANT_KEY, "http://127.0.0.1:9/b1").await;
    let secrets = [s1.clone(), s2, s3];
    // A merchant that writes its own secret into a description does not get it shown.
    let key = s1.strip_prefix("whsec_").expect("whsec_");
    let patched = call(
        &svc,
        MERCHANT_KEY,
        "PATCH",
        &format!("/v1/webhook_endpoints/{a1}"),
        Some(json!({"description": format!("{s1} and {key}")})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);

    // The merchant's key opens no admin route.
    for (verb, path) in [
        (
            "GET",
            "/admin/webhook_endpoints?merchant_id=m_demo".to_owned(),
        ),
        ("POST", format!("/admin/webhook_endpoints/{a1}/disable")),
    ] {
        call(&svc, MERCHANT_KEY, verb, &path, None)
            .await
            .problem(401, "unauthorized");
    }

    let page = admin_get(&svc, "/admin/webhook_endpoints?merchant_id=m_demo").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_no_secret(&page.text, &secrets);
    let body = page.json();
    assert_eq!(body["object"], "list");
    assert_eq!(ids(&body), [a1.as_str(), a2.as_str()]);
    assert_eq!(body["has_more"], false);
    let first = &body["data"][0];
    assert_eq!(first["merchant_id"], "m_demo");
    assert_eq!(first["url"], "http://127.0.0.1:9/a1");
    assert_eq!(first["status"], "enabled");
    assert_eq!(first["enabled_events"], json!(["*"]));
    assert_eq!(first["failing_since"], Value::Null);
    assert!(first["description"]
        .as_str()
        .expect("description")
        .contains("[redacted]"));
    assert!(first.get("secret").is_none());

    // Every merchant, ordered by merchant then endpoint, paged.
    let mut seen = Vec::new();
    let mut path = "/admin/webhook_endpoints?limit=2".to_owned();
    loop {
        let page = admin_get(&svc, &path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_no_secret(&page.text, &secrets);
        let body = page.json();
        seen.extend(ids(&body));
        if body["has_more"] == false {
            assert_eq!(body["next_after"], Value::Null);
            break;
        }
        let after = body["next_after"].as_str().expect("next_after");
        path = format!("/admin/webhook_endpoints?limit=2&after={after}");
    }
    assert_eq!(seen, [a1.as_str(), a2.as_str(), b1.as_str()]);
    let other = admin_get(&svc, "/admin/webhook_endpoints?merchant_id=m_other")
        .await
        .json();
    assert_eq!(ids(&other), [b1.as_str()]);

    // Bad input names its parameter.
    for (query, field) in [
        ("merchant_id=m_nobody", "merchant_id"),
        ("merchant_id=", "merchant_id"),
        ("status=paused", "status"),
        ("limit=0", "limit"),
        ("after=we_01j0000000000000000000000", "after"),
        (&format!("merchant_id=m_other&after={a1}") as &str, "after"),
        ("color=red", "color"),
    ] {
        let answer = admin_get(&svc, &format!("/admin/webhook_endpoints?{query}")).await;
        let problem = answer.problem(400, "invalid_request");
        assert_eq!(problem["fields"], json!([field]), "{query}: {problem}");
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_endpoint_is_disabled_for_its_merchant_and_sent_nothing() {
    let svc = common::start(|_| {}).await;
    let off_sink = ok_sink().await;
    let on_sink = ok_sink().await;
    let (off, off_secret) = endpoint(&svc, MERCHANT_KEY, &format!("{}/off", off_sink.uri())).await;
    let (on, on_secret) = endpoint(&svc, MERCHANT_KEY, &format!("{}/on", on_sink.uri())).await;

    for id in ["we_01j0000000000000000000000", "we_nope", "pay_x"] {
        disable(&svc, id).await.problem(404, "not_found");
    }

    let disabled = disable(&svc, &off).await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert_no_secret(&disabled.text, &[off_secret.clone(), on_secret.clone()]);
    let body = disabled.json();
    assert_eq!(body["status"], "disabled");
    assert_eq!(body["merchant_id"], "m_demo");
    assert_eq!(body["disabled_reason"], "disabled by the operator");
    // Idempotent: the second disable answers the same endpoint, nothing rewritten.
    let again = disable(&svc, &off).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json(), body);

    // The merchant sees it disabled; the other endpoint is untouched.
    let mine = svc
        .get(&format!("/v1/webhook_endpoints/{off}"))
        .await
        .json();
    assert_eq!(mine["status"], "disabled");
    assert_eq!(mine["disabled_reason"], "disabled by the operator");
    let other = svc.get(&format!("/v1/webhook_endpoints/{on}")).await.json();
    assert_eq!(other["status"], "enabled");
    let listed = admin_get(
        &svc,
        "/admin/webhook_endpoints?merchant_id=m_demo&status=disabled",
    )
    .await
    .json();
    assert_eq!(ids(&listed), [off.as_str()]);

    // The merchant's next events reach the enabled endpoint only.
    let created = svc.create(None, common::order("adm-we-1")).await;
    assert!(
        created.status == 201 || created.status == 202,
        "{}",
        created.text
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let undelivered = svc.get("/v1/events?delivery_success=false").await.json();
        let delivered = on_sink.received_requests().await.unwrap_or_default();
        if !delivered.is_empty() && undelivered["data"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "{undelivered}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(off_sink
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
    let deliveries = admin_get(&svc, "/admin/deliveries?channel=merchant")
        .await
        .json();
    let targets = column(&deliveries, "target");
    assert!(
        !targets.is_empty() && targets.iter().all(|t| *t == on),
        "{deliveries}"
    );
    svc.shutdown().await;
}
