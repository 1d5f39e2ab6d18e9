//! Every channel against a loopback fake of its API: one paid order reaches all six, and
//! each fake checks the exact request the real API takes (path, JSON fields, headers,
//! signatures). Secrets never show in the admin API or the metrics.

mod common;
mod notify_support;

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use notify_support::{admin, all_with, fast_retries, wait_deliveries, webhook_to, WEBHOOK_SECRET};

const BOT_TOKEN: &str = "123456:TEST-bot-token";
const RESEND_KEY: &str = "re_test_key_123";
const FEISHU_SECRET: &str = "feishu-signing-secret";

struct Fakes {
    telegram: MockServer,
    slack: MockServer,
    discord: MockServer,
    feishu: MockServer,
    email: MockServer,
    webhook: MockServer,
}

async fn fakes() -> Fakes {
    let f = Fakes {
        telegram: MockServer::start().await,
        slack: MockServer::start().await,
        discord: MockServer::start().await,
        feishu: MockServer::start().await,
        email: MockServer::start().await,
        webhook: MockServer::start().await,
    };
    let ok = |body: Value| ResponseTemplate::new(200).set_body_json(body);
    Mock::given(method("POST"))
        .and(path(format!("/bot{BOT_TOKEN}/sendMessage")))
        .respond_with(ok(json!({"ok": true, "result": {"message_id": 1}})))
        .mount(&f.telegram)
        .await;
    Mock::given(method("POST"))
        .and(path("/services/T000/B000/XXXX"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&f.slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/webhooks/42/discord-token"))
        .respond_with(ok(json!({"id": "1"})))
        .mount(&f.discord)
        .await;
    Mock::given(method("POST"))
        .and(path("/open-apis/bot/v2/hook/feishu-hook"))
        .respond_with(ok(json!({"code": 0, "msg": "success", "data": {}})))
        .mount(&f.feishu)
        .await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ok(json!({"id": "email_1"})))
        .mount(&f.email)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks/paykeep"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&f.webhook)
        .await;
    f
}

fn configure(config: &mut paykeep::config::Config, f: &Fakes) {
    fast_retries(config);
    let n = &mut config.notifications;
    n.telegram.enabled = true;
    n.telegram.api_base_url = f.telegram.uri();
    n.telegram.bot_token = BOT_TOKEN.into();
    n.telegram.chat_ids = vec!["1001".into(), "-1002".into()];
    n.telegram.thread_id = 7;
    n.slack.enabled = true;
    n.slack.webhook_url = format!("{}/services/T000/B000/XXXX", f.slack.uri());
    n.discord.enabled = true;
    n.discord.webhook_url = format!("{}/api/webhooks/42/discord-token", f.discord.uri());
    n.feishu.enabled = true;
    n.feishu.webhook_url = format!("{}/open-apis/bot/v2/hook/feishu-hook", f.feishu.uri());
    n.feishu.secret = FEISHU_SECRET.into();
    n.email.enabled = true;
    n.email.api_base_url = f.email.uri();
    n.email.api_key = RESEND_KEY.into();
    n.email.from = "paykeep <ops@example.com>".into();
    n.email.to = vec!["owner@example.com".into()];
    webhook_to(config, &format!("{}/hooks/paykeep", f.webhook.uri()));
}

async fn only(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 1, "exactly one request");
    requests.remove(0)
}

fn json_of(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("JSON body")
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing header {name}"))
}

fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_paid_order_reaches_every_channel_in_its_api_format() {
    let f = fakes().await;
    let svc = common::start(|c| configure(c, &f)).await;
    let paid = svc.create(None, common::order("chan-1")).await;
    assert_eq!(paid.status, 201, "{}", paid.text);
    let payment_id = paid.json()["id"].as_str().unwrap().to_owned();
    let deliveries = wait_deliveries(
        &svc.client,
        &svc.base,
        "",
        Duration::from_secs(20),
        all_with("delivered", 7),
    )
    .await;
    assert_eq!(
        deliveries.len(),
        7,
        "two Telegram chats and five single-target channels"
    );
    let events = admin(&svc.client, &svc.base, "GET", "/admin/events", None)
        .await
        .json();
    let event = &events["data"][0];
    assert_eq!(event["type"], "payment.succeeded");
    assert_eq!(event["payload"]["payment_id"], payment_id.as_str());
    let event_id = event["id"].as_str().unwrap();
    assert!(deliveries.iter().all(|d| d["event_id"] == event_id));

    check_telegram(&f.telegram, &payment_id).await;
    check_slack(&f.slack, &payment_id).await;
    check_discord(&f.discord, &payment_id).await;
    check_feishu(&f.feishu, &payment_id).await;
    let email_delivery = deliveries.iter().find(|d| d["channel"] == "email").unwrap();
    check_email(&f.email, email_delivery["id"].as_str().unwrap()).await;
    check_webhook(&f.webhook, event_id, &payment_id).await;
    check_no_secret_leaks(&svc).await;
    svc.shutdown().await;
}

async fn check_telegram(server: &MockServer, payment_id: &str) {
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "one sendMessage per chat id");
    let mut chats = Vec::new();
    for request in &requests {
        assert_eq!(request.url.path(), format!("/bot{BOT_TOKEN}/sendMessage"));
        assert_eq!(header(request, "content-type"), "application/json");
        let body = json_of(request);
        chats.push(body["chat_id"].as_i64().unwrap());
        assert_eq!(body["message_thread_id"], 7);
        assert_eq!(body["parse_mode"], "HTML");
        let text = body["text"].as_str().unwrap();
        assert!(text.starts_with("<b>[INFO] Order paid</b>"), "{text}");
        for needle in ["19.99 USD", payment_id, "chan-1"] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
    }
    chats.sort();
    assert_eq!(chats, vec![-1002, 1001]);
}

async fn check_slack(server: &MockServer, payment_id: &str) {
    let request = only(server).await;
    let body = json_of(&request);
    assert_eq!(body["text"], "[INFO] Order paid");
    let section = body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert_eq!(body["blocks"][0]["text"]["type"], "mrkdwn");
    assert!(
        section.contains("*Amount:* 19.99 USD") && section.contains(payment_id),
        "{section}"
    );
}

async fn check_discord(server: &MockServer, payment_id: &str) {
    let request = only(server).await;
    assert_eq!(request.url.query(), Some("wait=true"));
    let body = json_of(&request);
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    let embed = &body["embeds"][0];
    assert_eq!(embed["title"], "Order paid");
    let fields = embed["fields"].as_array().unwrap();
    assert!(fields.contains(&json!({"name": "Amount", "value": "19.99 USD", "inline": true})));
    assert!(fields.contains(&json!({"name": "Payment", "value": payment_id, "inline": true})));
}

async fn check_feishu(server: &MockServer, payment_id: &str) {
    let request = only(server).await;
    let body = json_of(&request);
    assert_eq!(body["msg_type"], "post");
    let timestamp = body["timestamp"].as_str().expect("timestamp is a string");
    let now_s = paykeep::domain::time::now_ms() / 1000;
    assert!((now_s - timestamp.parse::<i64>().unwrap()).abs() < 60);
    // Feishu's algorithm: key = timestamp + "\n" + secret, message empty.
    let key = format!("{timestamp}\n{FEISHU_SECRET}");
    assert_eq!(body["sign"], hmac_base64(key.as_bytes(), b""));
    let post = &body["content"]["post"]["zh_cn"];
    assert_eq!(post["title"], "[INFO] Order paid");
    let text = post["content"].to_string();
    assert!(
        text.contains("Amount: 19.99 USD") && text.contains(payment_id),
        "{text}"
    );
}

async fn check_email(server: &MockServer, delivery_id: &str) {
    let request = only(server).await;
    assert_eq!(request.url.path(), "/emails");
    assert_eq!(
        header(&request, "authorization"),
        format!("Bearer {RESEND_KEY}")
    );
    assert_eq!(header(&request, "idempotency-key"), delivery_id);
    let body = json_of(&request);
    assert_eq!(body["from"], "paykeep <ops@example.com>");
    assert_eq!(body["to"], json!(["owner@example.com"]));
    assert_eq!(body["subject"], "[INFO] Order paid");
    assert!(body["html"].as_str().unwrap().contains("19.99 USD"));
    assert!(body["text"].as_str().unwrap().contains("Amount: 19.99 USD"));
}

async fn check_webhook(server: &MockServer, event_id: &str, payment_id: &str) {
    let request = only(server).await;
    assert_eq!(header(&request, "webhook-id"), event_id);
    let timestamp = header(&request, "webhook-timestamp");
    let now_s = paykeep::domain::time::now_ms() / 1000;
    assert!((now_s - timestamp.parse::<i64>().unwrap()).abs() < 60);
    // Verify as a receiver would: HMAC of "id.timestamp.body" with the decoded secret.
    let key = base64::engine::general_purpose::STANDARD
        .decode(WEBHOOK_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut signed = format!("{event_id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.body);
    assert_eq!(
        header(&request, "webhook-signature"),
        format!("v1,{}", hmac_base64(&key, &signed))
    );
    let body = json_of(&request);
    assert_eq!(body["type"], "payment.succeeded");
    assert_eq!(body["data"]["id"], event_id);
    assert_eq!(body["data"]["payload"]["payment_id"], payment_id);
    assert_eq!(body["data"]["payload"]["amount"], 1999);
}

async fn check_no_secret_leaks(svc: &common::Service) {
    let metrics = svc.get("/metrics").await.text;
    for line in [
        "notification_delivery_success_total{channel=\"telegram\"} 2",
        "notification_delivery_success_total{channel=\"webhook\"} 1",
        "notification_deliveries{status=\"delivered\"} 7",
        "notification_delivery_duration_seconds_count{channel=\"feishu\"} 1",
        "mail_send_duration_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
    let settings = admin(
        &svc.client,
        &svc.base,
        "GET",
        "/admin/settings/notifications",
        None,
    )
    .await;
    let deliveries = admin(&svc.client, &svc.base, "GET", "/admin/deliveries", None).await;
    for text in [&metrics, &settings.text, &deliveries.text] {
        for secret in [
            BOT_TOKEN,
            RESEND_KEY,
            FEISHU_SECRET,
            "discord-token",
            "XXXX",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "feishu-hook",
        ] {
            assert!(!text.contains(secret), "{secret} leaked");
        }
    }
    assert_eq!(
        settings.json()["settings"]["telegram"]["bot_token"],
        "********"
    );
}
