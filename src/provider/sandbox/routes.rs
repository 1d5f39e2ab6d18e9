//! The sandbox's HTTP routes: Stripe's paths, the API-key check (Bearer or Basic), form
//! bodies and query strings, Stripe-shaped errors, `Idempotent-Replayed`, the configured
//! latency and stall. One handler dispatches on method and path:
//!
//! | method, path | does |
//! | --- | --- |
//! | `POST /v1/payment_intents` | [`intents::create`] |
//! | `POST /v1/payment_intents/{id}/capture` | [`intents::capture`] |
//! | `POST /v1/payment_intents/{id}/cancel` | [`intents::cancel`] |
//! | `POST /v1/refunds` | [`refunds::create`] |
//! | `GET /v1/{payment_intents,charges,refunds,balance_transactions}` | a list ([`list`]) |
//! | `GET /v1/{…}/{id}` | one object, `expand[]` allowed |

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;
use subtle::ConstantTimeEq;
use warp::http::{HeaderValue, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::Filter;

use crate::provider::sandbox::answer::{error, Answer};
use crate::provider::sandbox::ledger::{no_such, List};
use crate::provider::sandbox::params::{self, Params, LIST_PARAMS};
use crate::provider::sandbox::{intents, refunds, Sandbox};

/// Largest form body accepted.
const BODY_LIMIT_BYTES: u64 = 64 * 1024;
/// Longest `Idempotency-Key` (docs.stripe.com/api/idempotent_requests: up to 255
/// characters).
const IDEMPOTENCY_KEY_CHARS_MAX: usize = 255;

/// Balance transaction types Stripe lists (docs.stripe.com/api/balance_transactions/object).
const BALANCE_TRANSACTION_TYPES: &[&str] = &[
    "adjustment",
    "advance",
    "advance_funding",
    "anticipation_repayment",
    "application_fee",
    "application_fee_refund",
    "charge",
    "climate_order_purchase",
    "climate_order_refund",
    "connect_collection_transfer",
    "contribution",
    "issuing_authorization_hold",
    "issuing_authorization_release",
    "issuing_dispute",
    "issuing_transaction",
    "obligation_outbound",
    "obligation_reversal_inbound",
    "payment",
    "payment_failure_refund",
    "payment_network_reserve_hold",
    "payment_network_reserve_release",
    "payment_refund",
    "payment_reversal",
    "payment_unreconciled",
    "payout",
    "payout_cancel",
    "payout_failure",
    "payout_minimum_balance_hold",
    "payout_minimum_balance_release",
    "refund",
    "refund_failure",
    "reserve_transaction",
    "reserved_funds",
    "stripe_fee",
    "stripe_fx_fee",
    "tax_fee",
    "topup",
    "topup_reversal",
    "transfer",
    "transfer_cancel",
    "transfer_failure",
    "transfer_refund",
];

type Shared = Arc<Sandbox>;

/// One request as the handler sees it.
struct Request {
    method: Method,
    path: String,
    query: String,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Bytes,
}

/// Every route, each answering JSON.
pub fn routes(sandbox: &Shared) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let sandbox = Arc::clone(sandbox);
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(body())
        .then(
            move |method, path: FullPath, query, authorization, idempotency_key, body| {
                let sandbox = Arc::clone(&sandbox);
                let request = Request {
                    method,
                    path: path.as_str().to_owned(),
                    query,
                    authorization,
                    idempotency_key,
                    body,
                };
                async move { handle(&sandbox, request).await }
            },
        )
        .recover(|rejection: warp::Rejection| async move {
            let answer = if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
                let message = "The request body is larger than the sandbox accepts.";
                error(413, "invalid_request_error", None, message)
            } else {
                let message = "The request could not be read.";
                error(400, "invalid_request_error", None, message)
            };
            Ok::<_, Infallible>(respond(&answer))
        })
        .unify()
}

/// The body within [`BODY_LIMIT_BYTES`], or none when no `Content-Length` announces one
/// (a `GET`).
fn body() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    let sized = warp::body::content_length_limit(BODY_LIMIT_BYTES).and(warp::body::bytes());
    let absent = warp::header::optional::<String>("content-length")
        .and(warp::header::optional::<String>("transfer-encoding"))
        .and_then(
            |length: Option<String>, encoding: Option<String>| async move {
                match (length, encoding) {
                    (None, None) => Ok(Bytes::new()),
                    _ => Err(warp::reject::reject()),
                }
            },
        );
    sized.or(absent).unify()
}

async fn handle(sandbox: &Sandbox, request: Request) -> Response {
    let started = std::time::Instant::now();
    let operation = operation_of(&request);
    if operation == "metrics" {
        let mut response = Response::new(sandbox.metrics.render().into());
        response.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return response;
    }
    let response = answer(sandbox, request).await;
    let metrics = &sandbox.metrics;
    crate::metrics::record_request(
        &metrics.request_duration_seconds,
        &metrics.requests_total,
        operation,
        started,
        response.status().as_str(),
    );
    response
}

/// The `operation` label of a request (`sandbox::metrics::OPERATIONS`).
fn operation_of(request: &Request) -> &'static str {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (&request.method, segments.as_slice()) {
        (&Method::GET, ["metrics"]) => "metrics",
        (&Method::POST, ["v1", "payment_intents"]) => "create_payment_intent",
        (&Method::POST, ["v1", "payment_intents", _, "capture"]) => "capture",
        (&Method::POST, ["v1", "payment_intents", _, "cancel"]) => "cancel",
        (&Method::POST, ["v1", "refunds"]) => "create_refund",
        (&Method::GET, ["v1", _]) => "list",
        (&Method::GET, ["v1", _, _]) => "retrieve",
        _ => "unrecognized",
    }
}

async fn answer(sandbox: &Sandbox, request: Request) -> Response {
    tokio::time::sleep(sandbox.config.latency).await;
    if !authorized(sandbox, request.authorization.as_deref()) {
        return respond(&unauthorized());
    }
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let answer = match (&request.method, segments.as_slice()) {
        (&Method::POST, ["v1", "payment_intents"]) => write(sandbox, &request, Write::Create).await,
        (&Method::POST, ["v1", "payment_intents", id, "capture"]) => {
            write(sandbox, &request, Write::Capture(id)).await
        }
        (&Method::POST, ["v1", "payment_intents", id, "cancel"]) => {
            write(sandbox, &request, Write::Cancel(id)).await
        }
        (&Method::POST, ["v1", "refunds"]) => write(sandbox, &request, Write::Refund).await,
        (&Method::GET, ["v1", "payment_intents", "search"]) => unrecognized(&request),
        (&Method::GET, ["v1", collection]) => match List::of_collection(collection) {
            Some(kind) => read(&request, |p| list(sandbox, kind, p)),
            None => unrecognized(&request),
        },
        (&Method::GET, ["v1", collection, id]) => match List::of_collection(collection) {
            Some(kind) => read(&request, |p| retrieve(sandbox, kind, id, p)),
            None => unrecognized(&request),
        },
        _ => unrecognized(&request),
    };
    respond(&answer)
}

/// Stripe's 404 for a path it does not serve.
fn unrecognized(request: &Request) -> Answer {
    let message = format!(
        "Unrecognized request URL ({}: {}).",
        request.method, request.path
    );
    error(404, "invalid_request_error", None, &message)
}

/// Stripe's 401 (the key is never echoed).
fn unauthorized() -> Answer {
    error(
        401,
        "invalid_request_error",
        None,
        "Invalid API Key provided.",
    )
}

/// The API key of `Authorization: Bearer KEY` or of HTTP Basic with the key as the user
/// name (`curl -u sk_test_…:`), as Stripe accepts both.
fn api_key(authorization: Option<&str>) -> Option<String> {
    let (scheme, credentials) = authorization?.trim().split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(credentials.to_owned());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, _password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    Some(user.to_owned())
}

fn authorized(sandbox: &Sandbox, authorization: Option<&str>) -> bool {
    let Some(key) = api_key(authorization) else {
        return false;
    };
    match &sandbox.config.secret_key {
        Some(expected) => bool::from(expected.as_bytes().ct_eq(key.as_bytes())),
        None => key.starts_with("sk_"),
    }
}

/// The writes, by path.
#[derive(Clone, Copy)]
enum Write<'a> {
    Create,
    Capture(&'a str),
    Cancel(&'a str),
    Refund,
}

async fn write(sandbox: &Sandbox, request: &Request, what: Write<'_>) -> Answer {
    let params = match params::parse(&request.body) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    let key = request.idempotency_key.as_deref();
    if key.is_some_and(|k| k.chars().count() > IDEMPOTENCY_KEY_CHARS_MAX) {
        let message = format!(
            "Keys for idempotent requests can be no longer than {IDEMPOTENCY_KEY_CHARS_MAX} \
             characters."
        );
        return error(400, "invalid_request_error", None, &message);
    }
    let ledger = &sandbox.ledger;
    let path = request.path.as_str();
    let answer = match what {
        Write::Create => ledger.idempotent(path, key, &params, intents::create).await,
        Write::Capture(id) => {
            let op = |l: &_, p: &_, _: Option<&str>| intents::capture(l, p, id);
            ledger.idempotent(path, key, &params, op).await
        }
        Write::Cancel(id) => {
            let op = |l: &_, p: &_, _: Option<&str>| intents::cancel(l, p, id);
            ledger.idempotent(path, key, &params, op).await
        }
        Write::Refund => ledger.idempotent(path, key, &params, refunds::create).await,
    };
    if !answer.replayed {
        for (kind, object) in &answer.events {
            sandbox.events.emit(kind, object.clone(), key);
        }
    }
    // `pm_sim_slow` charges answer late every time, replays included: the caller never
    // learns the result from the charge call (a webhook or a retrieval must tell it).
    let slow = params.get("payment_method").map(String::as_str) == Some("pm_sim_slow");
    if answer.stall || slow {
        tokio::time::sleep(sandbox.config.stall).await;
    }
    answer
}

/// A read: its query string parsed, then `f`.
fn read(request: &Request, f: impl FnOnce(&Params) -> Result<Value, Answer>) -> Answer {
    match params::parse(request.query.as_bytes()).and_then(|p| f(&p)) {
        Ok(body) => Answer::new(200, body),
        Err(refused) => refused,
    }
}

fn retrieve(sandbox: &Sandbox, kind: List, id: &str, query: &Params) -> Result<Value, Answer> {
    params::known(query, &["expand[*]"])?;
    let expand = params::expand(query, kind.expandable(), false)?;
    let mut object = sandbox
        .ledger
        .object_of(kind, id)
        .ok_or_else(|| no_such(kind, id))?;
    sandbox.ledger.expand(&mut object, &expand);
    Ok(object)
}

/// The filters a list takes beside paging, each matched against the field of that name.
fn filters(kind: List) -> &'static [&'static str] {
    match kind {
        List::PaymentIntents => &[],
        List::Charges => &["payment_intent"],
        List::Refunds => &["charge", "payment_intent"],
        List::BalanceTransactions => &["type", "source"],
    }
}

fn list(sandbox: &Sandbox, kind: List, query: &Params) -> Result<Value, Answer> {
    let accepted: Vec<&str> = LIST_PARAMS.iter().chain(filters(kind)).copied().collect();
    params::known(query, &accepted)?;
    let page = params::page(query)?;
    let expand = params::expand(query, kind.expandable(), true)?;
    if kind == List::BalanceTransactions {
        params::one_of(query, "type", BALANCE_TRANSACTION_TYPES)?;
    }
    let wanted: Vec<(&str, &String)> = filters(kind)
        .iter()
        .filter_map(|name| Some((*name, query.get(*name)?)))
        .collect();
    let matches = |object: &Value| {
        wanted
            .iter()
            .all(|(field, value)| object[*field].as_str() == Some(value.as_str()))
    };
    sandbox.ledger.list(kind, &page, matches, &expand)
}

fn respond(answer: &Answer) -> Response {
    let mut response = Response::new(answer.body.to_string().into());
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "request-id",
        HeaderValue::from_str(&crate::domain::ids::new_id("req_"))
            .unwrap_or(HeaderValue::from_static("req_")),
    );
    if answer.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_carry_the_key() {
        assert_eq!(
            api_key(Some("Bearer sk_test_1")).as_deref(),
            Some("sk_test_1")
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("sk_test_1:");
        assert_eq!(
            api_key(Some(&format!("Basic {basic}"))).as_deref(),
            Some("sk_test_1")
        );
        assert_eq!(api_key(Some("Basic !!!")), None);
        assert_eq!(api_key(Some("Token sk_test_1")), None);
        assert_eq!(api_key(None), None);
    }
}
