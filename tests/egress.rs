//! Egress rules of DESIGN §3 over real HTTP: private and special targets refused at
//! configuration time in every address form (unless `notifications.allow_private_targets`),
//! refused again at connect time by the resolver (a name resolving to 127.0.0.1), redirects
//! never followed (a 307 to loopback is a dead delivery; the internal service sees nothing)
//! and no `Referer`.

mod common;
mod notify_support;

use std::sync::Arc;
use std::time::Duration;

use paykeep::config::Config;
use paykeep::notify::egress;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use notify_support::{admin, all_with, pay, wait_deliveries, WEBHOOK_SECRET};

/// The address forms of issue 13, and a few more of each class.
const REFUSED: &[&str] = &[
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://10.0.0.1/",
    "http://localhost:6379/",
    "http://[::1]:22/",
    "http://0/",
    "http://2130706433/",
    "http://127.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://192.168.0.10/hook",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_special_targets_are_refused_at_configuration_time() {
    let svc = common::start(|c| c.notifications.allow_private_targets = false).await;
    let mut urls: Vec<&str> = REFUSED.to_vec();
    urls.push("http://user:password@example.com/hook");
    for url in urls {
        let answer = admin(
            &svc.client,
            &svc.base,
            "PUT",
            "/admin/settings/notifications",
            Some(&json!({"webhook": {"enabled": true, "url": url, "secret": WEBHOOK_SECRET}})),
        )
        .await;
        let problem = answer.problem(422, "invalid_settings");
        assert_eq!(problem["fields"], json!(["webhook.url"]), "{url}");
        // Other channels' URLs too.
        let answer = admin(
            &svc.client,
            &svc.base,
            "PUT",
            "/admin/settings/notifications",
            Some(&json!({"slack": {"enabled": true, "webhook_url": url}})),
        )
        .await;
        answer.problem(422, "invalid_settings");
    }
    // A public host is accepted, and allow_private_targets lets a private one in.
    let public = admin(
        &svc.client,
        &svc.base,
        "PUT",
        "/admin/settings/notifications",
        Some(&json!({"slack": {"enabled": false, "webhook_url": "https://hooks.slack.com/services/T0/B0/x"}})),
    )
    .await;
    assert_eq!(public.status, 200, "{}", public.text);
    let allowed = admin(
        &svc.client,
        &svc.base,
        "PUT",
        "/admin/settings/notifications",
        Some(&json!({"allow_private_targets": true, "slack": {"enabled": false, "webhook_url": "http://10.0.0.1/hook"}})),
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    svc.shutdown().await;

    // At start-up, the error names the key.
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.notifications.allow_private_targets = false;
    config.notifications.webhook.enabled = true;
    config.notifications.webhook.url = "http://169.254.169.254/".to_owned();
    config.notifications.webhook.secret = WEBHOOK_SECRET.to_owned();
    let error = Config::validate(&config).unwrap_err().to_string();
    assert!(error.contains("notifications.webhook.url"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let port = server.address().port();
    let url = format!("http://localhost:{port}/");
    let refusing = egress::client(1, Arc::new(|| false)).unwrap();
    let error = refusing.get(&url).send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    assert!(
        format!("{error:?}").contains("no public address"),
        "{error:?}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    let allowing = egress::client(1, Arc::new(|| true)).unwrap();
    assert_eq!(allowing.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_loopback_is_not_followed_and_no_referer_is_sent() {
    let internal = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("internal secrets"))
        .mount(&internal)
        .await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/internal/admin", internal.uri())),
        )
        .mount(&receiver)
        .await;
    let url = format!("{}/hook", receiver.uri());
    let svc = common::start(move |c| notify_support::webhook_to(c, &url)).await;
    pay(&svc.client, &svc.base, "o-redirect").await;
    let dead = wait_deliveries(
        &svc.client,
        &svc.base,
        "",
        Duration::from_secs(20),
        all_with("dead", 1),
    )
    .await;
    let attempts = dead[0]["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        1,
        "a 3xx is a destination error: dead at once"
    );
    assert_eq!(attempts[0]["http_status"], 307);
    assert!(!dead[0].to_string().contains("internal secrets"));
    assert!(internal.received_requests().await.unwrap().is_empty());
    for request in receiver.received_requests().await.unwrap() {
        assert!(request.headers.get("referer").is_none());
    }
    svc.shutdown().await;
}
