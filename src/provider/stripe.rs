//! The Stripe-compatible HTTP connector (`provider.kind = "stripe"`), for Stripe itself or
//! the `paykeep sandbox` server.
//!
//! One pooled `reqwest` client with a whole-request timeout (`provider.timeout_ms`). Writes
//! are form-encoded (`application/x-www-form-urlencoded`, nested keys as `a[b]`, per
//! docs.stripe.com/api "Expanding"/"Metadata") and carry an `Idempotency-Key` derived from
//! the payment key (`src/domain/provider_key.rs`), so a retry after a timeout, or after the
//! store was lost, can never move money twice (docs.stripe.com/api/idempotent_requests).
//! Parameters are only what the payment key and the client's request give again, never an
//! id paykeep generated: Stripe refuses a reused key whose parameters differ.
//! `Stripe-Version` is pinned so response shapes do not drift with the account's default.
//!
//! Error mapping, by Stripe's documented error object `{"error": {type, code, decline_code,
//! message, payment_intent}}` (docs.stripe.com/api/errors): 402 (`card_error`) is a
//! decline with its code; 409 (concurrent use of a key), 429, 5xx, timeouts and connection
//! errors are retryable with the same key; any other 4xx is terminal.
//!
//! The provider's error text never leaves this file: a failure's `failure_message` comes
//! from the fixed table of [`crate::provider::declines`] by its code, and the text is
//! logged with the secret key redacted in every encoding (a provider answering 400 with our
//! `Authorization` in its message once put `Bearer sk_live_…` in a merchant's answer).
//!
//! Egress (DESIGN §3): redirects are not followed (a 3xx is no answer, retried with the
//! same key) and no `Referer` is sent. The base URL is the operator's choice, so loopback
//! (the sandbox) is allowed.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::domain::charge::{
    ChargeOutcome, ChargeRequest, ProviderOutcome, RefundOutcome, RefundRequest,
};
use crate::provider::declines::{charge_failure_message, refund_failure_message};
use crate::provider::types::{
    ProviderError, ProviderPayment, ProviderPaymentStatus, SettlementKind, SettlementRow,
};
use crate::provider::Connector;
use crate::redact::Redactor;

/// The API version whose shapes this connector reads.
pub const STRIPE_VERSION: &str = "2024-06-20";
/// Page size of list calls (Stripe's maximum `limit`).
pub const LIST_PAGE_LIMIT: usize = 100;
/// Pages one day's balance transactions may span (100 000 transactions).
pub const LIST_PAGES_MAX: usize = 1_000;
/// Longest wait for a TCP connection, within the request timeout.
const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(5);
/// Idle pooled connections kept per host.
const POOL_IDLE_PER_HOST_MAX: usize = 64;

/// A Stripe-compatible provider at `base_url`.
pub struct StripeConnector {
    client: reqwest::Client,
    base_url: String,
    secret_key: String,
    /// Removes the secret key from the provider's text before it is logged.
    redactor: Redactor,
}

/// How an HTTP exchange ended, before it is read as a charge, a refund or a retrieval.
enum Exchange {
    /// A 2xx with its JSON body.
    Ok(Value),
    /// A non-2xx with Stripe's error object (or `{}` when the body was not one).
    Error { status: u16, error: Value },
    /// No answer: timeout, connection error, unreadable body.
    Unanswered(String),
}

impl StripeConnector {
    /// A connector for `base_url` (no trailing `/v1`).
    ///
    /// # Errors
    /// A message when the HTTP client cannot be built (start-up only).
    pub fn new(
        base_url: &str,
        secret_key: &str,
        timeout: Duration,
    ) -> Result<StripeConnector, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(CONNECT_TIMEOUT_MAX))
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST_MAX)
            .user_agent(concat!("paykeep/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(StripeConnector {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret_key: secret_key.to_owned(),
            redactor: Redactor::new([secret_key]),
        })
    }

    /// Logs the provider's own text of a refused request, redacted; it goes nowhere else.
    fn log_refusal(&self, path: &str, exchange: &Exchange) {
        if let Exchange::Error { status, error } = exchange {
            let text = serde_json::to_string(error).unwrap_or_default();
            tracing::warn!(
                operation = "provider",
                path,
                status,
                provider_error = %self.redactor.redact(&text),
                "provider refused a request"
            );
        }
    }

    /// `POST {path}` with `params` form-encoded and `Idempotency-Key: key`.
    async fn post(&self, path: &str, params: &[(String, String)], key: &str) -> Exchange {
        let body = match serde_urlencoded::to_string(params) {
            Ok(body) => body,
            Err(e) => return Exchange::Unanswered(format!("form encoding failed: {e}")),
        };
        let request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.secret_key)
            .header("Stripe-Version", STRIPE_VERSION)
            .header("Idempotency-Key", key)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        let answer = exchange(request).await;
        self.log_refusal(path, &answer);
        answer
    }

    /// `GET {path}` with `query` pairs.
    async fn get(&self, path: &str, query: &[(String, String)]) -> Exchange {
        let request = self
            .client
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.secret_key)
            .header("Stripe-Version", STRIPE_VERSION)
            .query(query);
        let answer = exchange(request).await;
        self.log_refusal(path, &answer);
        answer
    }
}

async fn exchange(request: reqwest::RequestBuilder) -> Exchange {
    let response = match request.send().await {
        Ok(r) => r,
        // Never format the request itself: it holds the secret key.
        Err(e) if e.is_timeout() => return Exchange::Unanswered("timed out".to_owned()),
        Err(e) if e.is_connect() => return Exchange::Unanswered("connection failed".to_owned()),
        Err(_) => return Exchange::Unanswered("request failed".to_owned()),
    };
    let status = response.status().as_u16();
    if (300..400).contains(&status) {
        return Exchange::Unanswered(format!(
            "provider answered {status}, a redirect, which is not followed"
        ));
    }
    let body = match response.json::<Value>().await {
        Ok(body) => body,
        Err(_) if (200..300).contains(&status) => {
            return Exchange::Unanswered("unreadable response body".to_owned())
        }
        Err(_) => Value::Null,
    };
    if (200..300).contains(&status) {
        Exchange::Ok(body)
    } else {
        Exchange::Error {
            status,
            error: body.get("error").cloned().unwrap_or(Value::Null),
        }
    }
}

/// 409 (key in use), 429 and 5xx are worth retrying with the same key.
fn retryable_status(status: u16) -> bool {
    status == 409 || status == 429 || status >= 500
}

fn text(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// Stripe's decline reason: the issuer's `decline_code` when it says more than
/// `generic_decline`, else `code`.
fn decline_code(error: &Value) -> String {
    text(error, "decline_code")
        .filter(|d| d != "generic_decline")
        .or_else(|| text(error, "code"))
        .or_else(|| text(error, "type"))
        .unwrap_or_else(|| "card_declined".to_owned())
}

/// A declined charge of `error` (Stripe's error object), its message from the table.
fn declined(error: &Value, provider_payment_id: Option<String>) -> ChargeOutcome {
    let code = decline_code(error);
    ChargeOutcome::Declined {
        message: charge_failure_message(&code).to_owned(),
        code,
        provider_payment_id,
    }
}

/// Reads a PaymentIntent's status as an outcome; `None` when it is not final.
fn payment_intent_outcome(pi: &Value) -> Option<ChargeOutcome> {
    let id = text(pi, "id").unwrap_or_default();
    match pi.get("status").and_then(Value::as_str) {
        Some("succeeded") => Some(ChargeOutcome::Succeeded {
            provider_payment_id: id,
        }),
        Some("requires_payment_method") | Some("canceled") => {
            let error = pi
                .get("last_payment_error")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"code": "payment_failed"}));
            Some(declined(&error, Some(id)))
        }
        // 3-D Secure needs the customer; a server-side confirmation cannot finish it.
        Some("requires_action") => Some(declined(
            &serde_json::json!({"code": "authentication_required"}),
            Some(id),
        )),
        _ => None,
    }
}

/// The form of `POST /v1/payment_intents` (docs.stripe.com/api/payment_intents/create).
pub fn payment_intent_params(request: &ChargeRequest) -> Vec<(String, String)> {
    let mut params = vec![
        ("amount".to_owned(), request.amount.to_string()),
        ("currency".to_owned(), request.currency.to_lowercase()),
        ("payment_method".to_owned(), request.payment_method.clone()),
        ("payment_method_types[]".to_owned(), "card".to_owned()),
        ("confirm".to_owned(), "true".to_owned()),
        (
            "metadata[merchant_id]".to_owned(),
            request.merchant_id.clone(),
        ),
        ("metadata[order_no]".to_owned(), request.order_no.clone()),
        ("metadata[attempt]".to_owned(), request.attempt.to_string()),
    ];
    if let Some(description) = &request.description {
        params.push(("description".to_owned(), description.clone()));
    }
    params
}

/// The form of `POST /v1/refunds` (docs.stripe.com/api/refunds/create).
pub fn refund_params(request: &RefundRequest) -> Vec<(String, String)> {
    let mut params = vec![
        (
            "payment_intent".to_owned(),
            request.provider_payment_id.clone(),
        ),
        ("amount".to_owned(), request.amount.to_string()),
    ];
    if let Some(reason) = &request.reason {
        // Stripe's own `reason` is an enum; the merchant's words travel as metadata.
        params.push(("metadata[reason]".to_owned(), reason.clone()));
    }
    params
}

/// What a write (a charge or a refund) is at Stripe.
struct Write<O> {
    /// The collection it creates an object in (`POST`) and reads it back from (`GET
    /// {collection}/{id}`).
    collection: &'static str,
    /// The object's name in a retry reason.
    what: &'static str,
    /// The outcome an object says, `None` while it is not final.
    outcome_of: fn(&Value) -> Option<O>,
    /// The outcome of a refusal, from Stripe's error object.
    refused: fn(Value) -> O,
}

/// A charge: a confirmed PaymentIntent.
const CHARGE: Write<ChargeOutcome> = Write {
    collection: "/v1/payment_intents",
    what: "payment intent",
    outcome_of: payment_intent_outcome,
    refused: |error| {
        let provider_payment_id = error.get("payment_intent").and_then(|pi| text(pi, "id"));
        declined(&error, provider_payment_id)
    },
};

/// A refund.
const REFUND: Write<RefundOutcome> = Write {
    collection: "/v1/refunds",
    what: "refund",
    outcome_of: refund_outcome,
    refused: |error| {
        let code = text(&error, "code")
            .or_else(|| text(&error, "type"))
            .unwrap_or_else(|| "refund_refused".to_owned());
        RefundOutcome::Failed {
            message: refund_failure_message(&code).to_owned(),
            code,
            provider_refund_id: None,
        }
    },
};

impl StripeConnector {
    /// Runs `write` with `params` and `Idempotency-Key: key`: the outcome of the object the
    /// provider answered with, read again now when it is not final (or a replayed
    /// non-final answer); a refusal's outcome; or retry later (a retryable status, no
    /// answer, an object still not final).
    async fn write<O: ProviderOutcome>(
        &self,
        write: &Write<O>,
        params: &[(String, String)],
        key: &str,
    ) -> O {
        let object = match self.post(write.collection, params, key).await {
            Exchange::Ok(object) => object,
            Exchange::Error { status, .. } if retryable_status(status) => {
                return O::retryable(format!("provider answered {status}"));
            }
            Exchange::Error { error, .. } => return (write.refused)(error),
            Exchange::Unanswered(reason) => return O::retryable(reason),
        };
        if let Some(outcome) = (write.outcome_of)(&object) {
            return outcome;
        }
        let (collection, what) = (write.collection, write.what);
        let id = text(&object, "id").unwrap_or_default();
        match self.get(&format!("{collection}/{id}"), &[]).await {
            Exchange::Ok(now) => (write.outcome_of)(&now)
                .unwrap_or_else(|| O::retryable(format!("{what} not final yet"))),
            _ => O::retryable(format!("{what} not final yet; retrieval failed")),
        }
    }
}

fn refund_outcome(refund: &Value) -> Option<RefundOutcome> {
    let id = text(refund, "id");
    match refund.get("status").and_then(Value::as_str) {
        Some("succeeded") => Some(RefundOutcome::Succeeded {
            provider_refund_id: id.unwrap_or_default(),
        }),
        Some("failed") | Some("canceled") => {
            let code = text(refund, "failure_reason").unwrap_or_else(|| "refund_failed".to_owned());
            Some(RefundOutcome::Failed {
                message: refund_failure_message(&code).to_owned(),
                code,
                provider_refund_id: id,
            })
        }
        _ => None,
    }
}

fn provider_error(exchange: Exchange) -> ProviderError {
    match exchange {
        Exchange::Ok(_) => ProviderError::Rejected {
            reason: "unexpected answer".to_owned(),
        },
        Exchange::Error { status: 404, .. } => ProviderError::NotFound,
        Exchange::Error { status, .. } if retryable_status(status) => ProviderError::Unavailable {
            reason: format!("provider answered {status}"),
        },
        // The provider's text is in the log (`log_refusal`), not in the error.
        Exchange::Error { status, .. } => ProviderError::Rejected {
            reason: format!("provider answered {status}"),
        },
        Exchange::Unanswered(reason) => ProviderError::Unavailable { reason },
    }
}

/// Reads a PaymentIntent as the provider's view of a payment.
pub fn provider_payment(pi: &Value) -> Option<ProviderPayment> {
    let metadata = pi.get("metadata").cloned().unwrap_or(Value::Null);
    let status = match payment_intent_outcome(pi) {
        Some(ChargeOutcome::Succeeded { .. }) => ProviderPaymentStatus::Succeeded,
        Some(ChargeOutcome::Declined { code, message, .. }) => {
            ProviderPaymentStatus::Failed { code, message }
        }
        _ => ProviderPaymentStatus::Pending,
    };
    Some(ProviderPayment {
        id: text(pi, "id")?,
        merchant_id: text(&metadata, "merchant_id"),
        order_no: text(&metadata, "order_no"),
        attempt: text(&metadata, "attempt").and_then(|a| a.parse().ok()),
        amount: pi.get("amount").and_then(Value::as_u64).unwrap_or(0),
        currency: text(pi, "currency").unwrap_or_default().to_uppercase(),
        status,
    })
}

/// Reads one balance transaction (with `source` expanded or not) as a settlement row;
/// `None` for types that are not a charge or a refund (payouts, fees, adjustments).
pub fn settlement_row(txn: &Value) -> Option<SettlementRow> {
    let kind = match txn.get("type").and_then(Value::as_str)? {
        "charge" | "payment" => SettlementKind::Charge,
        "refund" | "payment_refund" => SettlementKind::Refund,
        _ => return None,
    };
    let source = txn.get("source")?;
    let provider_id = match (kind, source) {
        (_, Value::String(id)) => id.clone(),
        (SettlementKind::Charge, object) => {
            text(object, "payment_intent").or_else(|| text(object, "id"))?
        }
        (SettlementKind::Refund, object) => text(object, "id")?,
    };
    let status = match txn.get("status").and_then(Value::as_str) {
        Some("available") | Some("pending") => "succeeded".to_owned(),
        Some(other) => other.to_owned(),
        None => "unknown".to_owned(),
    };
    Some(SettlementRow {
        provider_id,
        kind,
        amount: txn.get("amount").and_then(Value::as_i64)?.unsigned_abs(),
        currency: text(txn, "currency")?.to_uppercase(),
        status,
    })
}

#[async_trait]
impl Connector for StripeConnector {
    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn charge(&self, request: &ChargeRequest) -> ChargeOutcome {
        let params = payment_intent_params(request);
        self.write(&CHARGE, &params, &request.idempotency_key).await
    }

    async fn refund(&self, request: &RefundRequest) -> RefundOutcome {
        let params = refund_params(request);
        self.write(&REFUND, &params, &request.idempotency_key).await
    }

    async fn retrieve_payment(
        &self,
        provider_payment_id: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        let valid = !provider_payment_id.is_empty()
            && provider_payment_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(ProviderError::NotFound);
        }
        match self
            .get(&format!("/v1/payment_intents/{provider_payment_id}"), &[])
            .await
        {
            Exchange::Ok(pi) => provider_payment(&pi).ok_or(ProviderError::Rejected {
                reason: "unreadable payment intent".to_owned(),
            }),
            other => Err(provider_error(other)),
        }
    }

    async fn balance_transactions(
        &self,
        day: time::Date,
    ) -> Result<Vec<SettlementRow>, ProviderError> {
        let start_s = day.midnight().assume_utc().unix_timestamp();
        let end_s = start_s + 86_400;
        let mut rows = Vec::new();
        let mut starting_after: Option<String> = None;
        for _ in 0..LIST_PAGES_MAX {
            let mut query = vec![
                ("created[gte]".to_owned(), start_s.to_string()),
                ("created[lt]".to_owned(), end_s.to_string()),
                ("limit".to_owned(), LIST_PAGE_LIMIT.to_string()),
                ("expand[]".to_owned(), "data.source".to_owned()),
            ];
            if let Some(after) = &starting_after {
                query.push(("starting_after".to_owned(), after.clone()));
            }
            let page = match self.get("/v1/balance_transactions", &query).await {
                Exchange::Ok(page) => page,
                other => return Err(provider_error(other)),
            };
            let data = page
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            rows.extend(data.iter().filter_map(settlement_row));
            let has_more = page
                .get("has_more")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            match data.last().and_then(|t| text(t, "id")) {
                Some(last) if has_more => starting_after = Some(last),
                _ => return Ok(rows),
            }
        }
        Err(ProviderError::Rejected {
            reason: format!("more than {LIST_PAGES_MAX} pages of balance transactions"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn declines_prefer_the_issuers_reason() {
        let generic = json!({"type": "card_error", "code": "card_declined", "decline_code": "generic_decline"});
        assert_eq!(decline_code(&generic), "card_declined");
        let funds = json!({"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"});
        assert_eq!(decline_code(&funds), "insufficient_funds");
        assert_eq!(
            decline_code(&json!({"type": "invalid_request_error"})),
            "invalid_request_error"
        );
    }

    #[test]
    fn balance_transactions_read_with_or_without_expansion() {
        let charge = json!({"id": "txn_1", "type": "charge", "amount": 1999, "currency": "usd",
            "status": "available", "source": {"id": "ch_1", "object": "charge", "payment_intent": "pi_1"}});
        let row = settlement_row(&charge).unwrap();
        assert_eq!(
            (row.provider_id.as_str(), row.kind, row.amount),
            ("pi_1", SettlementKind::Charge, 1999)
        );
        assert_eq!(
            (row.currency.as_str(), row.status.as_str()),
            ("USD", "succeeded")
        );
        let refund = json!({"id": "txn_2", "type": "refund", "amount": -500, "currency": "usd",
            "status": "pending", "source": "re_1"});
        let row = settlement_row(&refund).unwrap();
        assert_eq!(
            (row.provider_id.as_str(), row.kind, row.amount),
            ("re_1", SettlementKind::Refund, 500)
        );
        let payout = json!({"id": "txn_3", "type": "payout", "amount": -100, "currency": "usd", "source": "po_1"});
        assert!(settlement_row(&payout).is_none());
    }
}
