//! The sandbox's HTTP routes: Stripe's paths, API-key check, form bodies, Stripe-shaped
//! errors, `Idempotent-Replayed`, the configured latency and stall.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use crate::http::auth::is_bearer;
use crate::provider::sandbox::ledger::{error, Answer, Params};
use crate::provider::sandbox::Sandbox;

/// Largest form body accepted.
const BODY_LIMIT_BYTES: u64 = 64 * 1024;
/// Default and largest `limit` of list calls (Stripe's).
const LIST_LIMIT_DEFAULT: usize = 10;
const LIST_LIMIT_MAX: usize = 100;

type Shared = Arc<Sandbox>;

fn with(sandbox: &Shared) -> impl Filter<Extract = (Shared,), Error = Infallible> + Clone {
    let sandbox = Arc::clone(sandbox);
    warp::any().map(move || Arc::clone(&sandbox))
}

fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Every route, each answering JSON.
pub fn routes(sandbox: &Shared) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let auth = warp::header::optional::<String>("authorization");
    let key = warp::header::optional::<String>("idempotency-key");
    let body = warp::body::content_length_limit(BODY_LIMIT_BYTES).and(warp::body::bytes());
    let create_pi = warp::path!("v1" / "payment_intents")
        .and(warp::post())
        .and(with(sandbox))
        .and(auth)
        .and(key)
        .and(body)
        .then(|s: Shared, a, k, b| write(s, a, k, b, Write::PaymentIntent));
    let create_refund = warp::path!("v1" / "refunds")
        .and(warp::post())
        .and(with(sandbox))
        .and(auth)
        .and(key)
        .and(body)
        .then(|s: Shared, a, k, b| write(s, a, k, b, Write::Refund));
    let list_pi = warp::path!("v1" / "payment_intents")
        .and(warp::get())
        .and(with(sandbox))
        .and(auth)
        .and(raw_query())
        .then(|s: Shared, a: Option<String>, q: String| async move {
            read(&s, a.as_deref(), || list_payment_intents(&s, &q)).await
        });
    let get_object = warp::path!("v1" / String / String)
        .and(warp::get())
        .and(with(sandbox))
        .and(auth)
        .then(
            |kind: String, id: String, s: Shared, a: Option<String>| async move {
                read(&s, a.as_deref(), || retrieve(&s, &kind, &id)).await
            },
        );
    let balance = warp::path!("v1" / "balance_transactions")
        .and(warp::get())
        .and(with(sandbox))
        .and(auth)
        .and(raw_query())
        .then(|s: Shared, a: Option<String>, q: String| async move {
            read(&s, a.as_deref(), || list_balance(&s, &q)).await
        });
    create_pi
        .or(create_refund)
        .unify()
        .or(list_pi)
        .unify()
        .or(balance)
        .unify()
        .or(get_object)
        .unify()
        .recover(|_| async {
            Ok::<_, Infallible>(respond(&error(
                404,
                "invalid_request_error",
                Some("resource_missing"),
                "Unrecognized request URL.",
            )))
        })
        .unify()
}

#[derive(Clone, Copy)]
enum Write {
    PaymentIntent,
    Refund,
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

fn authorized(sandbox: &Sandbox, authorization: Option<&str>) -> bool {
    match &sandbox.config.secret_key {
        Some(key) => is_bearer(key, authorization),
        None => authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|k| k.starts_with("sk_")),
    }
}

async fn write(
    sandbox: Shared,
    authorization: Option<String>,
    key: Option<String>,
    body: Bytes,
    what: Write,
) -> Response {
    tokio::time::sleep(sandbox.config.latency).await;
    if !authorized(&sandbox, authorization.as_deref()) {
        return respond(&unauthorized());
    }
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return respond(&error(
            400,
            "invalid_request_error",
            None,
            "The body is not form-encoded.",
        ));
    };
    let params: Params = pairs.into_iter().collect();
    let key = key.as_deref();
    let answer = match what {
        Write::PaymentIntent => sandbox.ledger.create_payment_intent(key, &params).await,
        Write::Refund => sandbox.ledger.create_refund(key, &params).await,
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
    respond(&answer)
}

async fn read(
    sandbox: &Sandbox,
    authorization: Option<&str>,
    f: impl FnOnce() -> Answer,
) -> Response {
    tokio::time::sleep(sandbox.config.latency).await;
    if !authorized(sandbox, authorization) {
        return respond(&unauthorized());
    }
    respond(&f())
}

fn ok(body: Value) -> Answer {
    Answer {
        status: 200,
        body,
        replayed: false,
        stall: false,
        events: Vec::new(),
    }
}

fn retrieve(sandbox: &Sandbox, kind: &str, id: &str) -> Answer {
    let object = match kind {
        "payment_intents" => "payment_intent",
        "refunds" => "refund",
        "charges" => "charge",
        "balance_transactions" => "balance_transaction",
        _ => "",
    };
    match sandbox.ledger.object(id).filter(|o| o["object"] == object) {
        Some(found) => ok(found),
        None => error(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such {object}: '{id}'"),
        ),
    }
}

fn query_map(query: &str) -> BTreeMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn limit_of(query: &BTreeMap<String, String>) -> usize {
    query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(LIST_LIMIT_DEFAULT)
        .clamp(1, LIST_LIMIT_MAX)
}

fn list_payment_intents(sandbox: &Sandbox, query: &str) -> Answer {
    let q = query_map(query);
    ok(sandbox
        .ledger
        .list_payment_intents(limit_of(&q), q.get("starting_after").map(String::as_str)))
}

fn list_balance(sandbox: &Sandbox, query: &str) -> Answer {
    let q = query_map(query);
    let bound =
        |name: &str, default: i64| q.get(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let expand = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .iter()
        .any(|(k, v)| k == "expand[]" && v == "data.source");
    ok(sandbox.ledger.list_balance_transactions(
        bound("created[gte]", 0),
        bound("created[lt]", i64::MAX),
        limit_of(&q),
        q.get("starting_after").map(String::as_str),
        expand,
    ))
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
