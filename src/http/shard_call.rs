//! What the two handlers that hand a command to a shard share (`POST /v1/payments` and
//! `POST /v1/payments/{payment_id}/refunds`): the request's merchant, header key and JSON
//! body; claiming a header key for its order; submitting the job and awaiting the shard's
//! reply under a safety bound.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use warp::reply::Response;

use crate::domain::idempotency::{validate_header_key, IdempotencyKey};
use crate::domain::machine::Reply;
use crate::http::payments::reply_response;
use crate::http::{auth, body, HeaderKey, State};
use crate::problem::Problem;
use crate::shard::claims::{other_order_problem, ClaimError, ClaimGuard};
use crate::shard::messages::{Job, PaymentKey};

/// A POST's merchant, `Idempotency-Key` header value and body, checked in that order.
pub(crate) struct Posted {
    pub merchant_id: String,
    pub header_key: Option<String>,
    pub body: Value,
}

/// Authenticates the merchant, checks the header key, reads the body as JSON.
///
/// # Errors
/// 401 without a merchant's key; 400 for a bad header key or body; 415 for a body that is
/// not `application/json`.
pub(crate) fn posted(
    state: &State,
    authorization: Option<&str>,
    header_key: HeaderKey,
    head: &body::BodyHead,
    bytes: &[u8],
) -> Result<Posted, Problem> {
    let merchant_id = auth::merchant(&state.config.merchants, authorization)?.to_owned();
    let header_key = header_key?;
    if let Some(key) = &header_key {
        validate_header_key(key)?;
    }
    Ok(Posted {
        merchant_id,
        header_key,
        body: body::json(head, bytes)?,
    })
}

/// Reads a POST's body (within the limits of [`body::read_request`]), then its merchant,
/// header key and JSON as [`posted`] does.
///
/// # Errors
/// As [`body::read_request`] and [`posted`].
pub(crate) async fn read_posted<S, B>(
    state: &State,
    authorization: Option<String>,
    header_key: HeaderKey,
    head: body::BodyHead,
    stream: S,
) -> Result<Posted, Problem>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    let bytes = body::read_request(state, stream, &head).await?;
    posted(state, authorization.as_deref(), header_key, &head, &bytes)
}

/// Claims a header key for `order_no` (order and refund keys need no claim).
///
/// # Errors
/// 422 `idempotency_key_reused` when the key names another order; 500 when the store
/// cannot be read.
pub(crate) fn claim(
    state: &State,
    key: &IdempotencyKey,
    order_no: &str,
) -> Result<Option<ClaimGuard>, Problem> {
    if !key.expires() {
        return Ok(None);
    }
    match state.claims.claim(key, order_no, &state.store) {
        Ok(guard) => Ok(Some(guard)),
        Err(ClaimError::OtherOrder) => {
            state.metrics.idempotency_conflicts_total.inc();
            Err(other_order_problem().into())
        }
        Err(ClaimError::Store) => Err(Problem::internal()),
    }
}

/// Hands `job` to the shard owning `payment_key` and answers with its reply.
///
/// # Errors
/// 503 `overloaded` when the shard's mailbox is full or no reply comes within the bound: a
/// safety net only, since the shard answers 409 itself once the in-flight wait passes and
/// a running request is bounded by the provider timeout.
pub(crate) async fn submit(
    state: &State,
    payment_key: PaymentKey,
    job: Job,
    reply: oneshot::Receiver<Reply>,
) -> Result<Response, Problem> {
    if let Err(job) = state.shards.submit(payment_key, job) {
        drop(job);
        return Err(Problem::overloaded());
    }
    let bound = state.config.in_flight_wait()
        + state.config.provider_timeout() * 2
        + Duration::from_secs(5);
    match tokio::time::timeout(bound, reply).await {
        Ok(Ok(reply)) => Ok(reply_response(reply)),
        Ok(Err(_)) | Err(_) => Err(Problem::overloaded()),
    }
}
