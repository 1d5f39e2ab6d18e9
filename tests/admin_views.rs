//! The read-only admin views the operator console reads (DESIGN §7), over real HTTP:
//! `GET /admin/payments/{id}`, `GET /admin/payments?merchant_id=&order_no=`,
//! `GET /admin/reconciliations` and `GET /admin/overview`. (Their 401 without the admin
//! token is `notify_admin::every_admin_route_wants_the_admin_token`, over every route.)

mod common;

use common::{create_at, get_at, order, order_with, Service, OTHER_MERCHANT_KEY};
use serde_json::{json, Value};

const ADMIN: &str = "admin_demo_token";

async fn admin(svc: &Service, path: &str) -> common::Answer {
    get_at(&svc.client, &svc.base, ADMIN, path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_of_any_merchant_with_its_refunds_events_and_deliveries() {
    let sink = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&sink)
        .await;
    let svc = common::start(|c| {
        c.notifications.webhook.enabled = true;
        c.notifications.webhook.url = sink.uri();
        c.notifications.webhook.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
    })
    .await;
    // Another merchant's payment: the admin sees it, by id and by order.
    let paid = create_at(
        &svc.client,
        &svc.base,
        OTHER_MERCHANT_KEY,
        None,
        &order("adm-1"),
    )
    .await
    .json();
    let id = paid["id"].as_str().unwrap();
    let refund = svc
        .client
        .post(svc.url(&format!("/v1/payments/{id}/refunds")))
        .bearer_auth(OTHER_MERCHANT_KEY)
        .json(&json!({"amount": 300, "reason": "damaged", "operator_id": "ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refund.status(), 201);
    let refund_id = refund.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Someone else's events stay out of it.
    svc.create(None, order("adm-2")).await;
    // The view shows live delivery states: let both deliveries finish first, so the two
    // lookups below read the same payment.
    let view_path = format!("/admin/payments/{id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let view = admin(&svc, &view_path).await.json();
        let deliveries = view["deliveries"].as_array().cloned().unwrap_or_default();
        if deliveries.len() == 2 && deliveries.iter().all(|d| d["status"] == "delivered") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let by_id = admin(&svc, &view_path).await;
    assert_eq!(by_id.status, 200, "{}", by_id.text);
    let view = by_id.json();
    assert_eq!(view["object"], "admin_payment");
    assert_eq!(view["payment"]["id"], id);
    assert_eq!(view["payment"]["merchant_id"], "m_other");
    assert_eq!(view["payment"]["amount_refunded"], 300);
    assert_eq!(view["payment"]["refunds"][0]["id"], refund_id.as_str());
    let events: Vec<(&str, &str)> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["entity_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ("payment.succeeded", id),
            ("refund.succeeded", refund_id.as_str())
        ]
    );
    assert_eq!(view["events_scan"]["complete"], true);
    let event_ids: Vec<&str> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let deliveries = view["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "one webhook delivery per event");
    for d in deliveries {
        assert!(event_ids.contains(&d["event_id"].as_str().unwrap()));
        assert_eq!(d["channel"], "webhook");
    }

    let by_order = admin(&svc, "/admin/payments?merchant_id=m_other&order_no=adm-1").await;
    assert_eq!(by_order.status, 200);
    assert_eq!(by_order.json(), view);

    // Absent, malformed and half-given lookups.
    admin(&svc, "/admin/payments/pay_01JZZZZZZZZZZZZZZZZZZZZZZZ")
        .await
        .problem(404, "not_found");
    admin(&svc, "/admin/payments/nonsense")
        .await
        .problem(404, "not_found");
    admin(&svc, "/admin/payments?merchant_id=m_demo&order_no=adm-1")
        .await
        .problem(404, "not_found");
    let half = admin(&svc, "/admin/payments?order_no=adm-1")
        .await
        .problem(400, "invalid_request");
    assert!(half["detail"].as_str().unwrap().contains("merchant_id"));
    admin(&svc, "/admin/payments?merchant_id=m_demo&order_no=x&page=2")
        .await
        .problem(400, "invalid_request");
    // A merchant key is not the admin token.
    get_at(
        &svc.client,
        &svc.base,
        OTHER_MERCHANT_KEY,
        &format!("/admin/payments/{id}"),
    )
    .await
    .problem(401, "unauthorized");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_reports_are_listed_oldest_first_and_paged() {
    let svc = common::start(|_| {}).await;
    svc.create(None, order("rec-1")).await;
    let today = {
        let d = time::OffsetDateTime::now_utc().date();
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    };
    let mut ids = Vec::new();
    for report in [
        "provider_payment_id,amount,currency,status\n",
        "provider_payment_id,amount,currency,status\npi_x,100,USD,succeeded\n",
        "provider_payment_id,amount,currency,status\n",
    ] {
        let answer = svc
            .client
            .post(svc.url(&format!("/admin/reconciliations?date={today}")))
            .bearer_auth(ADMIN)
            .header("content-type", "text/csv")
            .body(report)
            .send()
            .await
            .unwrap();
        let answer = common::read(answer).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        ids.push(answer.json()["id"].as_str().unwrap().to_owned());
    }
    let first = admin(&svc, "/admin/reconciliations?limit=2").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let first = first.json();
    let listed: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(first["has_more"], true);
    assert_eq!(first["next_after"], ids[1].as_str());
    let summary = &first["data"][1];
    assert_eq!(summary["object"], "reconciliation");
    assert_eq!(summary["date"], today.as_str());
    assert_eq!(summary["source"], "csv");
    assert_eq!(summary["discrepancy_count"], 2, "{summary}");
    assert!(summary.get("discrepancies").is_none(), "a summary only");

    let rest = admin(
        &svc,
        &format!("/admin/reconciliations?limit=2&after={}", ids[1]),
    )
    .await
    .json();
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["id"], ids[2].as_str());
    assert_eq!(rest["has_more"], false);
    assert_eq!(rest["next_after"], Value::Null);

    admin(&svc, "/admin/reconciliations?after=dlv_1")
        .await
        .problem(400, "invalid_request");
    admin(&svc, "/admin/reconciliations?limit=0")
        .await
        .problem(400, "invalid_request");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_creates_failures_and_deliveries() {
    let svc = common::start(|_| {}).await;
    svc.create(None, order("ov-1")).await;
    svc.create(None, order("ov-2")).await;
    svc.create(None, order_with("ov-3", "pm_card_chargeDeclined"))
        .await;
    let overview = admin(&svc, "/admin/overview").await;
    assert_eq!(overview.status, 200, "{}", overview.text);
    let o = overview.json();
    assert_eq!(o["object"], "overview");
    assert_eq!(o["ready"], true);
    assert_eq!(o["readiness"]["status"], "ready");
    for check in ["store", "shards"] {
        assert_eq!(o["readiness"]["checks"][check]["status"], "ok");
        assert!(o["readiness"]["checks"][check]["latency_ms"].is_number());
    }
    let per_minute = o["payments"]["per_minute"].as_array().unwrap();
    assert_eq!(per_minute.len(), 60);
    let created: u64 = per_minute
        .iter()
        .map(|m| m["created"].as_u64().unwrap())
        .sum();
    let failed: u64 = per_minute
        .iter()
        .map(|m| m["failed"].as_u64().unwrap())
        .sum();
    assert_eq!((created, failed), (3, 1));
    // Minutes are consecutive, oldest first, the last one now's.
    let minutes: Vec<&str> = per_minute
        .iter()
        .map(|m| m["minute"].as_str().unwrap())
        .collect();
    assert!(minutes.windows(2).all(|w| w[0] < w[1]));
    assert!(minutes[59] <= o["generated_at"].as_str().unwrap());
    // No channel is on: nothing waits, nothing is paused.
    let by_status = &o["deliveries"]["by_status"];
    for status in [
        "pending",
        "sending",
        "delivered",
        "retry_scheduled",
        "dead",
        "paused",
    ] {
        assert_eq!(by_status[status], 0, "{status}");
    }
    assert_eq!(o["paused_channels"], json!([]));
    assert_eq!(o["oldest_undelivered"], Value::Null);
    // Two payments succeeded and one failed: three events.
    assert_eq!(o["events"]["last_sequence"], "3");
    assert_eq!(o["minor_units"]["USD"], 2);
    assert_eq!(o["minor_units"]["JPY"], 0);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_undelivered_event_is_named() {
    // A webhook channel whose receiver never answers in time: deliveries keep retrying.
    let svc = common::start(|c| {
        c.notifications.webhook.enabled = true;
        c.notifications.webhook.url = "http://127.0.0.1:9/unreachable".to_owned();
        c.notifications.webhook.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
    })
    .await;
    let first = svc.create(None, order("old-1")).await.json();
    svc.create(None, order("old-2")).await;
    let o = admin(&svc, "/admin/overview").await.json();
    let oldest = &o["oldest_undelivered"];
    assert_eq!(oldest["event_type"], "payment.succeeded", "{o}");
    assert_eq!(oldest["channel"], "webhook");
    assert!(oldest["age_s"].as_i64().unwrap() >= 0);
    let event = admin(
        &svc,
        &format!("/admin/payments/{}", first["id"].as_str().unwrap()),
    )
    .await
    .json();
    assert_eq!(oldest["event_id"], event["events"][0]["id"]);
    svc.shutdown().await;
}
