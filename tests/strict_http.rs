//! Strict HTTP (DESIGN §2, the strictness paragraph), over real HTTP: 415 without
//! `application/json`, 400 for a repeated JSON member, 413 before the body is read (also
//! instead of `100 Continue`), 400/401 — never 405 — for header values that are not visible
//! ASCII, 400 for two `Idempotency-Key` headers, `Allow` on every 405, `HEAD` wherever `GET`.
//! Raw TCP where a client library would tidy the request up.

mod common;

use std::time::Duration;

use common::{order, start, Answer, MERCHANT_KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw answer: the status, the head as text (lower-cased), the body.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Writes `request` as is and reads one answer (the head, then `Content-Length` bytes).
/// Fails the test if nothing whole arrives within 5 s.
async fn raw(base: &str, request: &[u8]) -> Raw {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut buffer = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(end) = find(&buffer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if buffer.len() >= end + 4 + length || n == 0 {
                    return (head, buffer[end + 4..].to_vec());
                }
            }
            assert!(n > 0, "connection closed before an answer");
        }
    };
    let (head, body) = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an answer within 5 s");
    let status = head[9..12].parse().expect("status");
    Raw { status, head, body }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Raw {
    fn problem_code(&self) -> String {
        assert!(
            self.head.contains("content-type: application/problem+json"),
            "{}",
            self.head
        );
        let body: serde_json::Value = serde_json::from_slice(&self.body).expect("json");
        body["code"].as_str().expect("code").to_owned()
    }
}

/// `POST /v1/payments` with a raw body and content type; the answer.
async fn post_payment(svc: &common::Service, content_type: Option<&str>, body: &str) -> Answer {
    let mut request = svc
        .client
        .post(svc.url("/v1/payments"))
        .bearer_auth(MERCHANT_KEY)
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    common::read(request.send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_need_json_media_type_and_single_members() {
    let svc = start(|_| {}).await;
    let body = order("o-strict").to_string();
    post_payment(&svc, Some("text/plain"), &body)
        .await
        .problem(415, "unsupported_media_type");
    post_payment(&svc, None, &body)
        .await
        .problem(415, "unsupported_media_type");
    let twice = r#"{"order_no":"o-strict","amount":1,"amount":5000,"currency":"USD","payment_method":"pm_card_visa"}"#;
    let problem = post_payment(&svc, Some("application/json"), twice)
        .await
        .problem(400, "invalid_request");
    assert_eq!(problem["fields"], serde_json::json!(["amount"]));
    svc.get("/v1/payments?order_no=o-strict")
        .await
        .problem(404, "not_found");
    // The media type is matched without its parameters, in any case.
    let ok = post_payment(&svc, Some("Application/JSON; charset=utf-8"), &body).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    // Admin bodies too.
    let settings = svc
        .client
        .put(svc.url("/admin/settings/notifications"))
        .bearer_auth("admin_demo_token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("{}")
        .send()
        .await
        .unwrap();
    common::read(settings)
        .await
        .problem(415, "unsupported_media_type");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_body_over_the_limit_is_413_before_it_is_sent() {
    let svc = start(|_| {}).await;
    for (length, expect) in [
        ("10000000000", ""),
        ("10000000000", "Expect: 100-continue\r\n"),
        ("200000", "Expect: 100-continue\r\n"),
    ] {
        // Only the head is sent: the answer must come without any byte of the body.
        let head = format!(
            "POST /v1/payments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MERCHANT_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\n{expect}\r\n"
        );
        let answer = raw(&svc.base, head.as_bytes()).await;
        assert_eq!(answer.status, 413, "{}", answer.head);
        assert!(!answer.head.contains("100 continue"), "{}", answer.head);
        assert_eq!(answer.problem_code(), "payload_too_large");
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_are_not_visible_ascii_are_400_or_401_never_405() {
    let svc = start(|_| {}).await;
    let body = order("o-hdr").to_string();
    let request = |headers: &[u8]| {
        let mut r = b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
        r.extend_from_slice(headers);
        r.extend_from_slice(
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        r
    };
    let auth = format!("Authorization: Bearer {MERCHANT_KEY}\r\n");
    // A Cyrillic key, as UTF-8 bytes.
    let mut headers = auth.clone().into_bytes();
    headers.extend_from_slice(b"Idempotency-Key: \xd0\xba\xd0\xbb\r\n");
    let answer = raw(&svc.base, &request(&headers)).await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert_eq!(answer.problem_code(), "invalid_request");
    // Two keys.
    let headers = format!("{auth}Idempotency-Key: k-1\r\nIdempotency-Key: k-2\r\n");
    let answer = raw(&svc.base, &request(headers.as_bytes())).await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert_eq!(answer.problem_code(), "invalid_request");
    // A key with a control character.
    let headers = format!("{auth}Idempotency-Key: a\tb\r\n");
    let answer = raw(&svc.base, &request(headers.as_bytes())).await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    // An Authorization that is not visible ASCII, on a merchant and an admin route.
    let answer = raw(&svc.base, &request(b"Authorization: Bearer \xff\xfe\r\n")).await;
    assert_eq!(answer.status, 401, "{}", answer.head);
    assert_eq!(answer.problem_code(), "unauthorized");
    let admin = raw(
        &svc.base,
        b"GET /admin/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \xc3\xa9\r\n\r\n",
    )
    .await;
    assert_eq!(admin.status, 401, "{}", admin.head);
    // Nothing of it was stored; the same order with a good key still creates.
    svc.get("/v1/payments?order_no=o-hdr")
        .await
        .problem(404, "not_found");
    assert_eq!(svc.create(Some("k-1"), order("o-hdr")).await.status, 201);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_405_carries_allow_and_head_is_answered_wherever_get_is() {
    let svc = start(|_| {}).await;
    for (method, path, allow) in [
        ("DELETE", "/v1/payments", "GET, POST, HEAD"),
        ("PUT", "/v1/payments/pay_x", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
        ("GET", "/v1/provider/webhooks", "POST"),
        ("PATCH", "/admin/settings/notifications", "GET, PUT, HEAD"),
        ("GET", "/admin/notifications/dispatch", "POST"),
    ] {
        let response = svc
            .client
            .request(method.parse().unwrap(), svc.url(path))
            .bearer_auth(MERCHANT_KEY)
            .send()
            .await
            .unwrap();
        let answer = common::read(response).await;
        answer.problem(405, "method_not_allowed");
        assert_eq!(answer.header("allow"), Some(allow), "{method} {path}");
    }
    let created = svc.create(None, order("o-head")).await.json();
    let id = created["id"].as_str().unwrap();
    for (path, auth) in [
        ("/healthz".to_owned(), false),
        ("/readyz".to_owned(), false),
        ("/metrics".to_owned(), false),
        ("/openapi.json".to_owned(), false),
        (format!("/v1/payments/{id}"), true),
        ("/v1/payments?order_no=o-head".to_owned(), true),
        ("/v1/payments?limit=5".to_owned(), true),
        ("/v1/refunds".to_owned(), true),
        ("/v1/events".to_owned(), true),
    ] {
        let get = svc.get(&path).await;
        let mut head = svc.client.head(svc.url(&path));
        if auth {
            head = head.bearer_auth(MERCHANT_KEY);
        }
        let head = common::read(head.send().await.unwrap()).await;
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.text.is_empty(), "HEAD {path} sent a body");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
    }
    // An unknown path stays 404, under any method.
    let answer = common::read(svc.client.head(svc.url("/nope")).send().await.unwrap()).await;
    assert_eq!(answer.status, 404);
    svc.shutdown().await;
}
