//! `POST /v1/provider/webhooks`: the provider's signed events (DESIGN §2 "Provider
//! webhooks").
//!
//! 1. The `Stripe-Signature` header is verified over the raw body
//!    ([`crate::provider::signature`]); a missing, bad or stale signature answers 400
//!    `invalid_signature` and writes a critical `payment.webhook_failed` event.
//! 2. An event id already processed answers 200 with `duplicate: true` and does nothing.
//! 3. The event is never trusted for state: the handler retrieves the PaymentIntent it
//!    names from the connector (the source of truth) and hands that view to the payment's
//!    shard, which applies it only forward (a `processing` attempt resolves; nothing else
//!    moves) and re-sends the payment's `pending` refunds. Out-of-order and duplicate events
//!    therefore cannot move a payment backwards.
//! 4. Once applied, the event id is stored; the answer is 200. When the provider cannot be
//!    read, 503 `provider_unavailable`: the provider will deliver the event again.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use crate::domain::charge::ChargeOutcome;
use crate::domain::ids::UlidSource;
use crate::domain::payment::Payment;
use crate::domain::webhook::{webhook_failed_event, ProcessedWebhook};
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::http::payments::internal;
use crate::http::{body, json_response, observe, optional_header, problem, with_state, State};
use crate::problem::Problem;
use crate::provider::signature::{self, SignatureError};
use crate::provider::types::{ProviderError, ProviderPayment, ProviderPaymentStatus};
use crate::shard::messages::{Job, PaymentKey, SyncJob};

/// Longest event id accepted (Stripe's are ~30 characters).
const EVENT_ID_CHARS_MAX: usize = 255;

/// Routes of this resource.
pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("v1" / "provider" / "webhooks")
        .and(warp::post())
        .and(with_state(state))
        .and(optional_header("stripe-signature"))
        .and(body::head())
        .and(warp::body::stream())
        .then(
            |state: State, signature: Option<HeaderValue>, head: body::BodyHead, stream| async move {
                let metrics = Arc::clone(&state.metrics);
                observe(&metrics, "provider_webhook", async move {
                    let limit = state.config.server.body_limit_bytes.get();
                    // A signature that is not text verifies as a missing one.
                    let signature = signature.as_ref().and_then(|v| v.to_str().ok());
                    let result = match body::read_limited(stream, &head, limit, state.config.body_read_timeout()).await {
                        Ok(bytes) => receive(&state, signature, &head, &bytes).await,
                        Err(p) => Err(p.into()),
                    };
                    count(&state, &result);
                    result.map_or_else(|r| problem::response(&r.problem), |(response, _)| response)
                })
                .await
            },
        )
}

/// A refused delivery: the answer, and its `provider_webhooks_total{outcome}` label.
struct Refused {
    problem: Problem,
    /// `invalid_signature`, `provider_unavailable`, or `refused` for anything else.
    outcome: &'static str,
}

impl From<Problem> for Refused {
    fn from(problem: Problem) -> Refused {
        Refused {
            problem,
            outcome: "refused",
        }
    }
}

/// Counts a delivery in `provider_webhooks_total{outcome}`.
fn count(state: &State, result: &Result<(Response, &'static str), Refused>) {
    let outcome = match result {
        Ok((_, outcome)) => outcome,
        Err(refused) => refused.outcome,
    };
    state
        .provider
        .metrics
        .provider_webhooks_total
        .with_label_values(&[outcome])
        .inc();
}

/// Verifies, deduplicates and applies one delivery; the second value is the outcome label
/// of `provider_webhooks_total`.
async fn receive(
    state: &State,
    signature_header: Option<&str>,
    head: &body::BodyHead,
    bytes: &[u8],
) -> Result<(Response, &'static str), Refused> {
    let provider = &state.config.provider;
    let now_ms = state.clock.now_ms();
    if let Err(error) = signature::verify(
        &provider.webhook_secret,
        signature_header,
        bytes,
        provider.webhook_tolerance.as_secs(),
        now_ms / 1000,
    ) {
        alert(state, error, bytes, now_ms).await;
        return Err(Refused {
            problem: Problem::new(
                400,
                "invalid_signature",
                "Invalid signature",
                format!("the Stripe-Signature header does not verify: {error}"),
            ),
            outcome: "invalid_signature",
        });
    }
    let event = body::json(head, bytes)?;
    let id = event["id"].as_str().unwrap_or_default();
    let kind = event["type"].as_str().unwrap_or_default();
    if id.is_empty() || id.len() > EVENT_ID_CHARS_MAX || kind.is_empty() {
        return Err(Problem::invalid("id", "an event needs an id and a type").into());
    }
    if state.store.webhook_event(id).map_err(internal)?.is_some() {
        let body = json!({"received": true, "duplicate": true}).to_string();
        return Ok((json_response(StatusCode::OK, body), "duplicate"));
    }
    let applied = sync(state, &event).await?;
    let processed = ProcessedWebhook {
        id: id.to_owned(),
        kind: kind.to_owned(),
        received_at_ms: now_ms,
    };
    let write_set = WriteSet {
        ops: vec![WriteOp::WebhookEvent(processed)],
    };
    state
        .provider
        .committer
        .commit(write_set)
        .await
        .map_err(internal)?;
    let outcome = if applied { "applied" } else { "ignored" };
    let body = json!({"received": true}).to_string();
    Ok((json_response(StatusCode::OK, body), outcome))
}

/// Writes the critical `payment.webhook_failed` event (deduplicated per minute and reason).
async fn alert(state: &State, error: SignatureError, bytes: &[u8], now_ms: i64) {
    tracing::warn!(
        operation = "provider_webhook",
        reason = error.reason(),
        "provider webhook refused"
    );
    let digest = hex::encode(Sha256::digest(bytes));
    let event = webhook_failed_event(
        error.reason(),
        &digest,
        bytes.len(),
        &mut UlidSource,
        now_ms,
    );
    let write_set = WriteSet {
        ops: vec![WriteOp::Event(event)],
    };
    if let Err(error) = state.provider.committer.commit(write_set).await {
        tracing::error!(operation = "provider_webhook", %error, "alert event not written");
    }
}

/// The PaymentIntent an event is about: the object itself for `payment_intent.*`, its
/// `payment_intent` field for charges and refunds; `None` for other events.
fn intent_of(event: &Value) -> Option<&str> {
    let object = &event["data"]["object"];
    match object["object"].as_str()? {
        "payment_intent" => object["id"].as_str(),
        "charge" | "refund" => object["payment_intent"].as_str(),
        _ => None,
    }
}

/// Reads the payment from the provider and hands it to the payment's shard; `false` when
/// the event is about nothing of ours.
async fn sync(state: &State, event: &Value) -> Result<bool, Refused> {
    let Some(intent) = intent_of(event) else {
        return Ok(false);
    };
    let timeout = state.config.provider_timeout();
    let connector = &state.provider.connector;
    let retrieved = tokio::time::timeout(timeout, connector.retrieve_payment(intent)).await;
    let seen = match retrieved {
        Ok(Ok(seen)) => seen,
        // Not the provider's, so not ours either: nothing to apply.
        Ok(Err(ProviderError::NotFound)) => return Ok(false),
        Ok(Err(error)) => {
            tracing::warn!(operation = "provider_webhook", %error, "payment retrieval failed");
            return Err(unavailable());
        }
        Err(_) => return Err(unavailable()),
    };
    let Some(payment) = our_payment(state, &seen)? else {
        return Ok(false);
    };
    let (done, finished) = oneshot::channel();
    let job = Job::Sync(Box::new(SyncJob {
        resolved: resolved(&payment, &seen),
        done,
        span: tracing::Span::current(),
    }));
    let key = PaymentKey {
        merchant_id: payment.merchant_id,
        order_no: payment.order_no,
    };
    if state.shards.submit(key, job).is_err() {
        return Err(Problem::overloaded().into());
    }
    let bound = timeout * 2 + Duration::from_secs(5);
    match tokio::time::timeout(bound, finished).await {
        Ok(Ok(())) => Ok(true),
        _ => Err(unavailable()),
    }
}

fn unavailable() -> Refused {
    Refused {
        problem: Problem::new(
            503,
            "provider_unavailable",
            "Provider unavailable",
            "the provider could not be read to verify the event; deliver it again later",
        )
        .with_retry_after(5),
        outcome: "provider_unavailable",
    }
}

/// Our payment behind a provider payment: the one of the payment key in
/// `metadata[merchant_id]` and `metadata[order_no]` (DESIGN §2 "Provider"; the payment id
/// follows from the key, so no index by provider id is kept, and a store rebuilt after a
/// loss finds the payment the same way).
fn our_payment(state: &State, seen: &ProviderPayment) -> Result<Option<Payment>, Problem> {
    match (&seen.merchant_id, &seen.order_no) {
        (Some(merchant_id), Some(order_no)) => state
            .store
            .payment_by_order(merchant_id, order_no)
            .map_err(internal),
        _ => Ok(None),
    }
}

/// The final outcome to apply, when the provider's view is final, names the attempt, and
/// agrees with the payment on what was charged.
fn resolved(payment: &Payment, seen: &ProviderPayment) -> Option<(u32, ChargeOutcome)> {
    let attempt = seen.attempt?;
    if seen.amount != payment.amount || seen.currency != payment.currency {
        tracing::warn!(
            operation = "provider_webhook",
            payment_id = %payment.id,
            "provider amount or currency differs from ours; not applied (reconciliation will report it)"
        );
        return None;
    }
    let outcome = match &seen.status {
        ProviderPaymentStatus::Succeeded => ChargeOutcome::Succeeded {
            provider_payment_id: seen.id.clone(),
        },
        ProviderPaymentStatus::Failed { code, message } => ChargeOutcome::Declined {
            code: code.clone(),
            message: message.clone(),
            provider_payment_id: Some(seen.id.clone()),
        },
        ProviderPaymentStatus::Pending => return None,
    };
    Some((attempt, outcome))
}
