//! The Stripe connector against a loopback fake (wiremock) that asserts Stripe's exact
//! request format — method, path, `Authorization`, `Idempotency-Key`, `Stripe-Version`,
//! form encoding and every parameter — and answers with Stripe's documented shapes to check
//! the error mapping: 402 decline with its code, 5xx / 429 / 409 / timeout / connection
//! error retryable, other 4xx terminal.

use std::time::Duration;

use paykeep::domain::charge::{ChargeOutcome, ChargeRequest, RefundOutcome, RefundRequest};
use paykeep::provider::stripe::{StripeConnector, STRIPE_VERSION};
use paykeep::provider::types::{ProviderError, ProviderPaymentStatus, SettlementKind};
use paykeep::provider::Connector;
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "sk_test_fake_key";
/// `charge_key("m_1", "o-1", 2)` (src/domain/provider_key.rs).
const CHARGE_KEY: &str = "pk_d5849b43eef1bdf13cc8e449179dd0306039423d0dcfdac4";
/// `refund_key("m_1", "o-1", Header("r-1"))`.
const REFUND_KEY: &str = "rk_5a747453a9bd664ffa4fc7a51052079b7044bf915ef53add";

fn charge() -> ChargeRequest {
    ChargeRequest {
        merchant_id: "m_1".into(),
        order_no: "o-1".into(),
        attempt: 2,
        idempotency_key: CHARGE_KEY.into(),
        amount: 1999,
        currency: "USD".into(),
        payment_method: "pm_card_visa".into(),
        description: Some("socks & shoes".into()),
    }
}

fn refund() -> RefundRequest {
    RefundRequest {
        refund_id: "re_1".into(),
        provider_payment_id: "pi_1".into(),
        amount: 500,
        currency: "USD".into(),
        idempotency_key: REFUND_KEY.into(),
        reason: Some("damaged".into()),
    }
}

fn connector(server: &MockServer) -> StripeConnector {
    StripeConnector::new(&server.uri(), KEY, Duration::from_millis(500)).unwrap()
}

/// The request's form body as sorted pairs.
fn form(request: &Request) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&request.body).unwrap();
    pairs.sort();
    pairs
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.sort();
    out
}

/// Matches a write exactly as Stripe expects it.
fn stripe_write(path_: &str, key: &str) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path(path_.to_owned()))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("idempotency-key", key))
        .and(header("stripe-version", STRIPE_VERSION))
        .and(header("content-type", "application/x-www-form-urlencoded"))
}

#[tokio::test]
async fn a_charge_is_a_confirmed_form_encoded_payment_intent_with_the_attempt_key() {
    let server = MockServer::start().await;
    let expected = pairs(&[
        ("amount", "1999"),
        ("currency", "usd"),
        ("payment_method", "pm_card_visa"),
        ("payment_method_types[]", "card"),
        ("confirm", "true"),
        ("metadata[merchant_id]", "m_1"),
        ("metadata[order_no]", "o-1"),
        ("metadata[attempt]", "2"),
        ("description", "socks & shoes"),
    ]);
    stripe_write("/v1/payment_intents", CHARGE_KEY)
        .and(move |r: &Request| form(r) == expected)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "pi_123", "object": "payment_intent", "status": "succeeded", "amount": 1999,
            "currency": "usd", "metadata": {"merchant_id": "m_1", "order_no": "o-1", "attempt": "2"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = connector(&server).charge(&charge()).await;
    assert_eq!(
        outcome,
        ChargeOutcome::Succeeded {
            provider_payment_id: "pi_123".into()
        }
    );
    // The raw body really is form-encoded with bracketed keys percent-encoded.
    let received = &server.received_requests().await.unwrap()[0];
    let body = String::from_utf8(received.body.clone()).unwrap();
    assert!(body.contains("metadata%5Border_no%5D=o-1"), "{body}");
    assert!(
        !body.contains("pay_"),
        "no payment id goes to the provider: {body}"
    );
    assert!(body.contains("description=socks+%26+shoes"), "{body}");
}

async fn charge_answer(status: u16, body: serde_json::Value) -> ChargeOutcome {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    connector(&server).charge(&charge()).await
}

#[tokio::test]
async fn card_errors_are_declines_with_the_issuers_code() {
    let outcome = charge_answer(
        402,
        json!({"error": {"type": "card_error", "code": "card_declined",
            "decline_code": "insufficient_funds", "message": "Your card has insufficient funds.",
            "payment_intent": {"id": "pi_9", "status": "requires_payment_method"}}}),
    )
    .await;
    assert_eq!(
        outcome,
        ChargeOutcome::Declined {
            code: "insufficient_funds".into(),
            // From the fixed table, not the provider's text.
            message: "The card has insufficient funds.".into(),
            provider_payment_id: Some("pi_9".into()),
        }
    );
    let generic = charge_answer(
        402,
        json!({"error": {"type": "card_error", "code": "card_declined",
            "decline_code": "generic_decline", "message": "Your card was declined."}}),
    )
    .await;
    assert!(matches!(generic, ChargeOutcome::Declined { code, .. } if code == "card_declined"));
}

#[tokio::test]
async fn server_errors_rate_limits_and_key_conflicts_are_retryable() {
    for status in [500, 502, 503, 429, 409] {
        let outcome = charge_answer(
            status,
            json!({"error": {"type": "api_error", "message": "try again"}}),
        )
        .await;
        assert!(
            matches!(outcome, ChargeOutcome::Retryable { .. }),
            "{status}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn other_client_errors_are_terminal() {
    let outcome = charge_answer(
        400,
        json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
            "message": "No such PaymentMethod: 'pm_x'", "param": "payment_method"}}),
    )
    .await;
    assert!(matches!(outcome, ChargeOutcome::Declined { code, .. } if code == "resource_missing"));
    let idempotency = charge_answer(
        400,
        json!({"error": {"type": "idempotency_error", "message": "Keys for idempotent requests can only be used with the same parameters"}}),
    )
    .await;
    assert!(
        matches!(idempotency, ChargeOutcome::Declined { code, .. } if code == "idempotency_error")
    );
    let auth = charge_answer(
        401,
        json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}),
    )
    .await;
    assert!(matches!(auth, ChargeOutcome::Declined { .. }));
}

#[tokio::test]
async fn the_providers_text_never_reaches_the_failure_message() {
    let echo = format!("Invalid request: Authorization: Bearer {KEY}");
    let outcome = charge_answer(
        400,
        json!({"error": {"type": "invalid_request_error", "code": "parameter_invalid_integer",
            "message": echo}}),
    )
    .await;
    let ChargeOutcome::Declined { code, message, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(code, "parameter_invalid_integer");
    assert_eq!(message, "The card was declined.");
    // A refund's too.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"type": "invalid_request_error", "code": "charge_already_refunded", "message": echo}}),
        ))
        .mount(&server)
        .await;
    let refunded = connector(&server).refund(&refund()).await;
    let RefundOutcome::Failed { message, .. } = refunded else {
        panic!("{refunded:?}")
    };
    assert_eq!(message, "The payment was already refunded.");
}

#[tokio::test]
async fn redirects_are_not_followed_and_no_referer_is_sent() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "pi_x", "status": "succeeded"})),
        )
        .expect(0)
        .mount(&elsewhere)
        .await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "location",
            format!("{}/v1/payment_intents", elsewhere.uri()),
        ))
        .mount(&server)
        .await;
    let outcome = connector(&server).charge(&charge()).await;
    // No answer: retried later with the same key, never a decline or a success.
    assert!(
        matches!(outcome, ChargeOutcome::Retryable { .. }),
        "{outcome:?}"
    );
    for request in server.received_requests().await.unwrap() {
        assert!(request.headers.get("referer").is_none());
    }
    elsewhere.verify().await;
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retryable_and_never_leak_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let outcome = connector(&server).charge(&charge()).await;
    let ChargeOutcome::Retryable { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(!reason.contains(KEY));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let refused = StripeConnector::new(&url, KEY, Duration::from_millis(500))
        .unwrap()
        .charge(&charge())
        .await;
    assert!(matches!(refused, ChargeOutcome::Retryable { .. }));
}

#[tokio::test]
async fn a_processing_intent_is_read_again_before_it_counts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "pi_p", "status": "processing"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_p"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "pi_p", "status": "succeeded"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let outcome = connector(&server).charge(&charge()).await;
    assert!(matches!(outcome, ChargeOutcome::Succeeded { .. }));
}

#[tokio::test]
async fn a_refund_names_the_intent_and_carries_its_derived_key_and_no_local_id() {
    let server = MockServer::start().await;
    let expected = pairs(&[
        ("payment_intent", "pi_1"),
        ("amount", "500"),
        ("metadata[reason]", "damaged"),
    ]);
    stripe_write("/v1/refunds", REFUND_KEY)
        .and(move |r: &Request| form(r) == expected)
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "re_s1", "object": "refund", "status": "pending"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/refunds/re_s1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "re_s1", "object": "refund", "status": "succeeded"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let outcome = connector(&server).refund(&refund()).await;
    assert_eq!(
        outcome,
        RefundOutcome::Succeeded {
            provider_refund_id: "re_s1".into()
        }
    );
}

#[tokio::test]
async fn refund_refusals_are_failures_and_server_errors_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "type": "invalid_request_error", "code": "charge_already_refunded",
            "message": "Charge ch_1 has already been refunded."}})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let c = connector(&server);
    assert!(matches!(c.refund(&refund()).await,
        RefundOutcome::Failed { code, .. } if code == "charge_already_refunded"));
    assert!(matches!(
        c.refund(&refund()).await,
        RefundOutcome::Retryable { .. }
    ));
}

#[tokio::test]
async fn retrieving_a_payment_reads_status_and_metadata() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_7"))
        .and(header("stripe-version", STRIPE_VERSION))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "pi_7", "object": "payment_intent", "status": "requires_payment_method",
            "amount": 1999, "currency": "usd",
            "metadata": {"merchant_id": "m_7", "order_no": "o-7", "attempt": "3"},
            "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline", "message": "Your card was declined."}
        })))
        .mount(&server)
        .await;
    let c = connector(&server);
    let payment = c.retrieve_payment("pi_7").await.unwrap();
    assert_eq!(
        (payment.merchant_id.as_deref(), payment.order_no.as_deref()),
        (Some("m_7"), Some("o-7"))
    );
    assert_eq!(payment.attempt, Some(3));
    assert_eq!(payment.currency, "USD");
    assert!(
        matches!(payment.status, ProviderPaymentStatus::Failed { ref code, .. } if code == "card_declined")
    );
    assert_eq!(
        c.retrieve_payment("pi_missing").await,
        Err(ProviderError::NotFound)
    );
    assert_eq!(
        c.retrieve_payment("../x").await,
        Err(ProviderError::NotFound)
    );
}

#[tokio::test]
async fn balance_transactions_page_with_starting_after_over_one_utc_day() {
    let server = MockServer::start().await;
    let day = time::macros::date!(2026 - 11 - 20);
    let start = day.midnight().assume_utc().unix_timestamp();
    let list = |data: serde_json::Value, more: bool| json!({"object": "list", "url": "/v1/balance_transactions", "has_more": more, "data": data});
    let base = || {
        Mock::given(method("GET"))
            .and(path("/v1/balance_transactions"))
            .and(query_param("created[gte]", start.to_string()))
            .and(query_param("created[lt]", (start + 86_400).to_string()))
            .and(query_param("limit", "100"))
            .and(query_param("expand[]", "data.source"))
    };
    base()
        .and(query_param("starting_after", "txn_2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(json!([
            {"id": "txn_3", "type": "payout", "amount": -100, "currency": "usd", "status": "available", "source": "po_1"}
        ]), false)))
        .expect(1)
        .mount(&server)
        .await;
    base()
        .and(|r: &Request| !r.url.query().unwrap_or("").contains("starting_after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(json!([
            {"id": "txn_1", "type": "charge", "amount": 1999, "currency": "usd", "status": "available",
             "source": {"id": "ch_1", "object": "charge", "payment_intent": "pi_1"}},
            {"id": "txn_2", "type": "refund", "amount": -500, "currency": "usd", "status": "pending",
             "source": {"id": "re_1", "object": "refund", "payment_intent": "pi_1"}}
        ]), true)))
        .expect(1)
        .mount(&server)
        .await;
    let rows = connector(&server).balance_transactions(day).await.unwrap();
    assert_eq!(rows.len(), 2, "the payout is not money of a payment");
    assert_eq!(
        (rows[0].provider_id.as_str(), rows[0].kind, rows[0].amount),
        ("pi_1", SettlementKind::Charge, 1999)
    );
    assert_eq!(
        (rows[1].provider_id.as_str(), rows[1].kind, rows[1].amount),
        ("re_1", SettlementKind::Refund, 500)
    );
}
