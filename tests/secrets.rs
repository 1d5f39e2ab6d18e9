//! Secrets never leave (DESIGN §3): receivers that echo a channel's secret back — raw,
//! percent-encoded (either hex case) or base64 (either alphabet), the whole webhook URL or
//! only its path — leave no trace of it in stored attempt errors, the admin API's answers
//! or the settings view. Over real HTTP, against loopback fakes.

mod common;
mod notify_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use notify_support::{admin, all_with, pay, wait_deliveries};

const TOKEN: &str = "7012345678:AAH-sEcReT_t0ken~part";
const SLACK_PATH: &str = "/services/T0ABCDEF1/B0ABCDEF2/sLaCkSeCrEtToKeN0123456";
const DISCORD_PATH: &str = "/api/webhooks/1234567890/dIsCoRdSeCrEtToKeN-0123456789abcdef";

/// Every form a server might echo `secret` in.
fn forms(secret: &str) -> Vec<String> {
    let upper = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    let mut lower = String::new();
    let mut chars = upper.chars();
    while let Some(c) = chars.next() {
        lower.push(c);
        if c == '%' {
            lower.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    vec![
        secret.to_owned(),
        upper,
        lower,
        STANDARD.encode(secret),
        URL_SAFE.encode(secret),
    ]
}

/// A fake that answers each request 400 with the next echo of `echoes`, wrapped by `wrap`.
async fn echoing(echoes: Vec<String>, wrap: fn(&str) -> serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    let next = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .respond_with(move |_: &Request| {
            let i = next.fetch_add(1, Ordering::Relaxed) % echoes.len();
            ResponseTemplate::new(400).set_body_json(wrap(&format!("you sent <{}>", echoes[i])))
        })
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_secrets_in_every_form_are_redacted_everywhere() {
    let telegram = echoing(
        forms(TOKEN),
        |text| json!({"ok": false, "error_code": 400, "description": text}),
    )
    .await;
    let slack_echoes: Vec<String> = forms(SLACK_PATH).into_iter().collect();
    let slack = echoing(slack_echoes, |text| json!({"error": text})).await;
    let discord = echoing(forms(DISCORD_PATH), |text| json!({"message": text})).await;
    let slack_url = format!("{}{SLACK_PATH}", slack.uri());
    let discord_url = format!("{}{DISCORD_PATH}", discord.uri());
    // Also whole URLs, echoed by another request.
    let mut secrets = forms(TOKEN);
    secrets.extend(forms(SLACK_PATH));
    secrets.extend(forms(DISCORD_PATH));
    secrets.extend(forms(&slack_url));
    secrets.extend(forms(&discord_url));
    let (t_uri, s_url, d_url) = (telegram.uri(), slack_url.clone(), discord_url.clone());
    let svc = common::start(move |c| {
        let n = &mut c.notifications;
        n.telegram.enabled = true;
        n.telegram.api_base_url = t_uri;
        n.telegram.bot_token = TOKEN.to_owned();
        n.telegram.chat_ids = vec!["42".to_owned()];
        n.slack.enabled = true;
        n.slack.webhook_url = s_url;
        n.discord.enabled = true;
        n.discord.webhook_url = d_url;
    })
    .await;
    let payments = forms(TOKEN).len();
    for i in 0..payments {
        pay(&svc.client, &svc.base, &format!("o-secret-{i}")).await;
    }
    let deliveries = wait_deliveries(
        &svc.client,
        &svc.base,
        "",
        Duration::from_secs(20),
        all_with("dead", payments * 3),
    )
    .await;
    for delivery in &deliveries {
        // DESIGN §3: a stored attempt error is at most 512 bytes.
        assert!(delivery["reason"].as_str().unwrap().len() <= 512);
        for attempt in delivery["attempts"].as_array().unwrap() {
            assert!(attempt["error"].as_str().unwrap().len() <= 512);
        }
        let text = delivery.to_string();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret} leaked: {text}");
        }
    }
    let redacted = deliveries
        .iter()
        .filter(|d| d.to_string().contains("[redacted]"))
        .count();
    assert!(
        redacted >= payments * 2,
        "{redacted} of {}",
        deliveries.len()
    );
    // The other admin answers.
    for path in [
        "/admin/settings/notifications",
        "/admin/events?limit=100",
        "/admin/deliveries?status=dead&limit=100",
    ] {
        let answer = admin(&svc.client, &svc.base, "GET", path, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        for secret in &secrets {
            assert!(
                !answer.text.contains(secret.as_str()),
                "{path}: {secret} leaked"
            );
        }
    }
    for server in [&telegram, &slack, &discord] {
        assert!(!server.received_requests().await.unwrap().is_empty());
    }
    svc.shutdown().await;
}
