//! The admin API of notifications: Bearer admin token, events and deliveries with filters
//! and paging, the gates, the test event, a dispatch pass, and settings that are
//! validated, redacted and persisted across restarts.

mod common;
mod notify_support;

use std::time::Duration;

use serde_json::json;

use notify_support::{
    admin, all_with, fast_retries, ok_sink, pay, start_in, wait_deliveries, webhook_to,
};

const LONG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_wants_the_admin_token() {
    let svc = common::start(|_| {}).await;
    for (method, path) in paykeep::http::ROUTES
        .iter()
        .filter(|(_, p)| p.starts_with("/admin"))
    {
        let url = svc.url(&path.replace("{delivery_id}", "dlv_x"));
        for token in [None, Some(common::MERCHANT_KEY), Some("admin_demo_token_")] {
            let mut request = svc.client.request(method.parse().unwrap(), &url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let answer = common::read(request.send().await.unwrap()).await;
            answer.problem(401, "unauthorized");
        }
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_deliveries_page_and_filter() {
    let sink = ok_sink().await;
    let svc = common::start(|c| {
        fast_retries(c);
        webhook_to(c, &sink.uri());
    })
    .await;
    for order in ["e-1", "e-2", "e-3"] {
        pay(&svc.client, &svc.base, order).await;
    }
    let declined = svc
        .create(None, common::order_with("e-4", "pm_card_chargeDeclined"))
        .await;
    assert_eq!(declined.status, 201);
    let page = admin(&svc.client, &svc.base, "GET", "/admin/events?limit=3", None)
        .await
        .json();
    assert_eq!(page["object"], "list");
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["data"][0]["type"], "payment.succeeded");
    let after = page["next_after"].as_str().unwrap();
    let rest = admin(
        &svc.client,
        &svc.base,
        "GET",
        &format!("/admin/events?after={after}"),
        None,
    )
    .await
    .json();
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["type"], "payment.failed");
    assert_eq!(rest["data"][0]["level"], "warning");
    assert_eq!(rest["has_more"], false);
    wait_deliveries(&svc.client, &svc.base, "", LONG, all_with("delivered", 4)).await;
    let one = admin(
        &svc.client,
        &svc.base,
        "GET",
        "/admin/deliveries?limit=1&channel=webhook&status=delivered",
        None,
    )
    .await
    .json();
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert_eq!(one["has_more"], true);
    let id = one["data"][0]["id"].as_str().unwrap();
    let next = admin(
        &svc.client,
        &svc.base,
        "GET",
        &format!("/admin/deliveries?status=delivered&after={id}"),
        None,
    )
    .await
    .json();
    assert_eq!(next["data"].as_array().unwrap().len(), 3);
    assert!(next["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["id"].as_str().unwrap() > id));
    let none = admin(
        &svc.client,
        &svc.base,
        "GET",
        "/admin/deliveries?channel=slack",
        None,
    )
    .await
    .json();
    assert_eq!(none["data"], json!([]));
    let got = admin(
        &svc.client,
        &svc.base,
        "GET",
        &format!("/admin/deliveries/{id}"),
        None,
    )
    .await;
    assert_eq!(got.json()["id"], id);
    admin(
        &svc.client,
        &svc.base,
        "GET",
        "/admin/deliveries/dlv_none",
        None,
    )
    .await
    .problem(404, "not_found");
    for bad in [
        "status=lost",
        "channel=pigeon",
        "limit=0",
        "limit=501",
        "after=pay_1",
        "colour=red",
    ] {
        admin(
            &svc.client,
            &svc.base,
            "GET",
            &format!("/admin/deliveries?{bad}"),
            None,
        )
        .await
        .problem(400, "invalid_request");
    }
    admin(&svc.client, &svc.base, "GET", "/admin/events?after=x", None)
        .await
        .problem(400, "invalid_request");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_decide_which_events_create_deliveries() {
    let sink = ok_sink().await;
    let svc = common::start(|c| {
        fast_retries(c);
        webhook_to(c, &sink.uri());
        c.notifications.order_enabled = false;
    })
    .await;
    pay(&svc.client, &svc.base, "gate-1").await;
    svc.create(None, common::order_with("gate-2", "pm_card_chargeDeclined"))
        .await;
    let ds = wait_deliveries(&svc.client, &svc.base, "", LONG, all_with("delivered", 1)).await;
    assert_eq!(ds.len(), 1);
    assert_eq!(
        ds[0]["event_type"], "payment.failed",
        "an alert passes alert_enabled"
    );
    let put = admin(
        &svc.client,
        &svc.base,
        "PUT",
        "/admin/settings/notifications",
        Some(&json!({"enabled": false})),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text);
    svc.create(None, common::order_with("gate-3", "pm_card_chargeDeclined"))
        .await;
    let test = admin(
        &svc.client,
        &svc.base,
        "POST",
        "/admin/notifications/test",
        None,
    )
    .await;
    assert_eq!(test.status, 202);
    assert_eq!(test.json()["deliveries"], json!([]));
    let events = admin(&svc.client, &svc.base, "GET", "/admin/events", None)
        .await
        .json();
    assert_eq!(
        events["data"].as_array().unwrap().len(),
        4,
        "events are kept even when no one is told"
    );
    assert_eq!(
        notify_support::all_deliveries(&svc.client, &svc.base, "")
            .await
            .len(),
        1
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_event_reaches_every_enabled_channel_and_a_pass_can_be_forced() {
    let sink = ok_sink().await;
    let svc = common::start(|c| {
        fast_retries(c);
        webhook_to(c, &sink.uri());
    })
    .await;
    let test = admin(
        &svc.client,
        &svc.base,
        "POST",
        "/admin/notifications/test",
        None,
    )
    .await;
    assert_eq!(test.status, 202, "{}", test.text);
    let body = test.json();
    assert_eq!(body["event"]["type"], "notification.test");
    assert_eq!(body["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(body["deliveries"][0]["channel"], "webhook");
    let pass = admin(
        &svc.client,
        &svc.base,
        "POST",
        "/admin/notifications/dispatch?limit=5",
        None,
    )
    .await;
    assert_eq!(pass.status, 200, "{}", pass.text);
    for key in [
        "expanded",
        "claimed",
        "interrupted",
        "paused",
        "dead",
        "full_channels",
    ] {
        assert!(pass.json()[key].is_u64(), "{key}");
    }
    wait_deliveries(&svc.client, &svc.base, "", LONG, all_with("delivered", 1)).await;
    let request = &sink.received_requests().await.unwrap()[0];
    let sent: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(sent["type"], "notification.test");
    admin(
        &svc.client,
        &svc.base,
        "POST",
        "/admin/notifications/dispatch?limit=0",
        None,
    )
    .await
    .problem(400, "invalid_request");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_validated_redacted_and_persisted_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start_in(dir.path(), |_| {}).await;
    let path = "/admin/settings/notifications";
    let shown = admin(&svc.client, &svc.base, "GET", path, None)
        .await
        .json();
    assert_eq!(shown["settings"]["max_attempts"], 12);
    assert_eq!(
        shown["settings"]["retry_schedule_s"],
        json!([10, 30, 120, 600])
    );
    let change = json!({
        "max_attempts": 5,
        "retry_schedule_s": [2, 4],
        "slack": {"enabled": true, "webhook_url": "https://hooks.slack.com/services/T1/B1/sekrit"},
    });
    let put = admin(&svc.client, &svc.base, "PUT", path, Some(&change)).await;
    assert_eq!(put.status, 200, "{}", put.text);
    let body = put.json();
    assert_eq!(body["settings"]["max_attempts"], 5);
    assert_eq!(
        body["settings"]["slack"]["webhook_url"],
        "https://hooks.slack.com/********"
    );
    assert!(!put.text.contains("sekrit"));
    let invalid = admin(
        &svc.client,
        &svc.base,
        "PUT",
        path,
        Some(&json!({"max_attempts": 0})),
    )
    .await;
    let problem = invalid.problem(422, "invalid_settings");
    assert_eq!(problem["fields"], json!(["max_attempts"]));
    let needs = admin(
        &svc.client,
        &svc.base,
        "PUT",
        path,
        Some(&json!({"email": {"enabled": true}})),
    )
    .await;
    needs.problem(422, "invalid_settings");
    admin(
        &svc.client,
        &svc.base,
        "PUT",
        path,
        Some(&json!({"colour": "red"})),
    )
    .await
    .problem(400, "invalid_request");
    admin(&svc.client, &svc.base, "PUT", path, Some(&json!([1])))
        .await
        .problem(400, "invalid_request");
    // The redacted view sent back keeps the secret.
    let back = admin(&svc.client, &svc.base, "PUT", path, Some(&body["settings"])).await;
    assert_eq!(back.status, 200, "{}", back.text);
    svc.shutdown().await;

    let svc = start_in(dir.path(), |_| {}).await;
    let shown = admin(&svc.client, &svc.base, "GET", path, None)
        .await
        .json();
    assert_eq!(shown["settings"]["max_attempts"], 5);
    assert_eq!(shown["settings"]["retry_schedule_s"], json!([2, 4]));
    assert_eq!(shown["settings"]["slack"]["enabled"], true);
    assert_eq!(
        shown["settings"]["slack"]["webhook_url"],
        "https://hooks.slack.com/********"
    );
    svc.shutdown().await;
}
