//! `/v1/payments`: create (or replay) the payment of an order, read one by id or by order
//! (with its refunds embedded, oldest first), and the list ([`super::payments_list`]).

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::oneshot;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use crate::domain::idempotency::{Fingerprint, IdempotencyKey, KeyScope};
use crate::domain::ids::{is_valid_id, prefix};
use crate::domain::machine::{CreateCommand, Reply};
use crate::domain::payment::{CreatePaymentBody, Payment};
use crate::http::{
    auth, body, idempotency_key, json_response, payments_list, problem, respond, route, shard_call,
    with_authorization, State,
};
use crate::problem::Problem;
use crate::shard::messages::{CreateJob, Job, PaymentKey};
use crate::store::replay_cache::CachedReplay;

/// Path of the create endpoint, part of every create's fingerprint.
pub const PAYMENTS_PATH: &str = "/v1/payments";

/// Routes of this resource.
pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let create = warp::path!("v1" / "payments")
        .and(warp::post())
        .and(with_authorization(state))
        .and(idempotency_key())
        .and(body::head())
        .and(warp::body::stream())
        .then(
            |state: State, authorization, key, head, stream| async move {
                respond(&state.metrics, "create_payment", async {
                    let posted =
                        shard_call::read_posted(&state, authorization, key, head, stream).await?;
                    create(&state, posted).await
                })
                .await
            },
        );
    let reads = route::get_one_or_query(
        warp::path!("v1" / "payments" / String),
        warp::path!("v1" / "payments"),
        state,
        ("get_payment", get_by_id),
        ("list_payments", get_by_order),
    );
    create.or(reads).unify()
}

/// A create, once its merchant, header key and JSON body were read ([`shard_call::posted`]).
async fn create(state: &State, posted: shard_call::Posted) -> Result<Response, Problem> {
    let (merchant_id, value) = (posted.merchant_id, posted.body);
    let fingerprint = Fingerprint::new("POST", PAYMENTS_PATH, &value);
    let scope = match posted.header_key {
        Some(key) => KeyScope::Header(key),
        // An `order_no` that is absent or not a string gives a key no entry is stored
        // under (validation refuses such a body below), so it only misses.
        None => KeyScope::Order(value["order_no"].as_str().unwrap_or_default().to_owned()),
    };
    let key = IdempotencyKey {
        merchant_id: merchant_id.clone(),
        scope,
    };
    // Before the typed parse and validation: a finished entry with this fingerprint was
    // made from this very body, which was valid then, so its stored response is the answer
    // (DESIGN §2: same key, same fingerprint → the first response), and a replay skips
    // the work. Anything else is validated before it goes further.
    if let Some(replay) = finished_replay(state, &key, &fingerprint)? {
        return Ok(replay);
    }
    let request = body::typed::<CreatePaymentBody>(value)?.validate(&state.rules)?;
    let claim = shard_call::claim(state, &key, &request.order_no)?;
    let payment_key = PaymentKey {
        merchant_id: merchant_id.clone(),
        order_no: request.order_no.clone(),
    };
    let (reply_tx, reply_rx) = oneshot::channel();
    let job = Job::Create(Box::new(CreateJob {
        command: CreateCommand {
            merchant_id,
            request,
            key,
            fingerprint,
        },
        reply: reply_tx,
        claim,
        wait_deadline: Instant::now() + state.config.in_flight_wait(),
        span: tracing::Span::current(),
    }));
    shard_call::submit(state, payment_key, job, reply_rx).await
}

/// The replay fast path: a key whose first request finished holds an immutable entry, so
/// a request with the same fingerprint is answered from it without a trip through the
/// shard: from the store's in-memory replay cache when a recent commit left it there, else
/// from sled. Anything else (no entry, an unfinished one, another fingerprint) takes the
/// serialized path, where the state machine decides.
///
/// # Errors
/// 500 `internal_error` when the store cannot be read.
fn finished_replay(
    state: &State,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
) -> Result<Option<Response>, Problem> {
    match state.store.cached_replay(key) {
        // Cached only once durable: no wait.
        Some(hit) if hit.digest == fingerprint.digest && !past_retention(state, key, &hit) => {
            state.metrics.idempotent_replays_total.inc();
            return Ok(Some(stored_response(hit.status, hit.body, true)));
        }
        Some(hit) if hit.digest != fingerprint.digest => return Ok(None),
        _ => {}
    }
    let Some(entry) = state.store.idempotency(key).map_err(internal)? else {
        return Ok(None);
    };
    if entry.response.is_none() || entry.fingerprint.digest != fingerprint.digest {
        return Ok(None);
    }
    state.store.remember_replay(key, &entry);
    let Some(response) = entry.response else {
        return Ok(None);
    };
    state.metrics.idempotent_replays_total.inc();
    Ok(Some(reply_response(Reply::Response {
        response,
        replayed: true,
    })))
}

/// Whether a cached header-key entry is older than `idempotency.retention_s`, so the sweep
/// may have removed it from the store (the store, not the cache, then decides).
fn past_retention(state: &State, key: &IdempotencyKey, hit: &CachedReplay) -> bool {
    let retention_ms = crate::clock::millis(state.config.idempotency.retention);
    key.expires() && hit.outlived(retention_ms, state.clock.now_ms())
}

/// The HTTP answer of a shard's reply (shared with refunds).
pub(crate) fn reply_response(reply: Reply) -> Response {
    match reply {
        Reply::Error(error) => problem::response(&Problem::from(error)),
        Reply::Response { response, replayed } => {
            stored_response(response.status, response.body, replayed)
        }
    }
}

/// A stored response as sent, with `Idempotent-Replayed: true` when it is a replay.
fn stored_response(status: u16, body: impl Into<warp::hyper::Body>, replayed: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut out = json_response(status, body);
    if replayed {
        out.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    out
}

fn get_by_id(state: &State, authorization: Option<&str>, id: &str) -> Result<Response, Problem> {
    let merchant_id = auth::merchant(&state.config.merchants, authorization)?;
    if !is_valid_id(id, prefix::PAYMENT) {
        return Err(Problem::not_found("payment"));
    }
    let payment = state.store.payment(id).map_err(internal)?;
    answer_payment(state, payment, merchant_id)
}

fn get_by_order(
    state: &State,
    authorization: Option<&str>,
    query: &str,
) -> Result<Response, Problem> {
    let merchant_id = auth::merchant(&state.config.merchants, authorization)?;
    let params: HashMap<String, String> = serde_urlencoded::from_str(query)
        .map_err(|_| Problem::invalid("", "the query string could not be parsed"))?;
    if !params.contains_key("order_no") {
        return payments_list::list(state, merchant_id, query);
    }
    if let Some(other) = params.keys().find(|k| k.as_str() != "order_no") {
        return Err(Problem::invalid(
            other,
            format!("unknown query parameter `{other}`"),
        ));
    }
    let order_no = params
        .get("order_no")
        .filter(|o| !o.is_empty())
        .ok_or_else(|| Problem::invalid("order_no", "the order_no query parameter is required"))?;
    let payment = state
        .store
        .payment_by_order(merchant_id, order_no)
        .map_err(internal)?;
    answer_payment(state, payment, merchant_id)
}

/// 200 with the payment (store reads see only durable state); 404 when absent or another
/// merchant's.
fn answer_payment(
    state: &State,
    payment: Option<Payment>,
    merchant_id: &str,
) -> Result<Response, Problem> {
    let payment = payment
        .filter(|p| p.merchant_id == merchant_id)
        .ok_or_else(|| Problem::not_found("payment"))?;
    Ok(json_response(
        StatusCode::OK,
        payments_list::view(state, &payment)?,
    ))
}

/// Logs a store read failure and answers a bare 500.
pub(crate) fn internal(error: crate::store::StoreError) -> Problem {
    if let Some(suppressed) = crate::log_throttle::STORE_FAILURES.admit(&error.to_string()) {
        tracing::error!(operation = "read", %error, suppressed, "store read failed");
    }
    Problem::internal()
}
