//! Operations endpoints, no auth: `/healthz` (process alive), `/readyz` (store open and
//! shards answering, each check with its status and latency), `/metrics` (Prometheus text
//! format 0.0.4) and `/openapi.json` (OpenAPI 3.1 of every route).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use crate::http::{json_response, observe, with_state, State};

/// How long `/readyz` waits for a shard to answer.
const SHARD_PING_TIMEOUT: Duration = Duration::from_secs(1);

pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let healthz = warp::path!("healthz")
        .and(crate::http::get())
        .and(with_state(state))
        .then(|state: State| async move {
            observe(&state.metrics, "healthz", async {
                json_response(StatusCode::OK, json!({"status": "ok"}).to_string())
            })
            .await
        });
    let readyz = warp::path!("readyz")
        .and(crate::http::get())
        .and(with_state(state))
        .then(|state: State| async move {
            let metrics = Arc::clone(&state.metrics);
            observe(&metrics, "readyz", readyz(state)).await
        });
    let metrics = warp::path!("metrics")
        .and(crate::http::get())
        .and(with_state(state))
        .then(|state: State| async move {
            observe(&state.metrics, "metrics", async {
                state
                    .ops_metrics
                    .refresh(&state.store, state.clock.now_ms());
                let mut response = Response::new(state.metrics.render().into());
                response.headers_mut().insert(
                    warp::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                response
            })
            .await
        });
    let openapi = warp::path!("openapi.json")
        .and(crate::http::get())
        .and(with_state(state))
        .then(|state: State| async move {
            observe(&state.metrics, "openapi", async {
                json_response(StatusCode::OK, state.openapi.clone())
            })
            .await
        });
    healthz
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .or(openapi)
        .unify()
}

async fn readyz(state: State) -> Response {
    let (ready, body) = readiness(&state).await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, body.to_string())
}

/// Whether the service is ready, and the `/readyz` body: `{status, checks: {store,
/// shards}}`, each check with its status and latency (the console's overview shows it too).
pub async fn readiness(state: &State) -> (bool, serde_json::Value) {
    let started = Instant::now();
    let store_ok = !state.store.is_failed() && state.store.payment("pay_readyz").is_ok();
    let store_ms = started.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    let answers = state.shards.ping_all(SHARD_PING_TIMEOUT).await;
    let shards_ms = started.elapsed().as_secs_f64() * 1000.0;
    let answering = answers.iter().filter(|a| a.is_some()).count();
    let shards_ok = answering == answers.len();
    let ready = store_ok && shards_ok;
    let status_of = |ok: bool| if ok { "ok" } else { "failing" };
    // The relay is never a reason for not ready: a broker that is away only grows the
    // backlog (issue 18), so it shows as "degraded" with its reason.
    let relay = state.relay.snapshot();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "store": {"status": status_of(store_ok), "latency_ms": store_ms},
            "shards": {
                "status": status_of(shards_ok),
                "latency_ms": shards_ms,
                "answering": answering,
                "total": answers.len(),
                "jobs": answers.iter().map(|a| a.unwrap_or(0)).sum::<usize>(),
            },
            "relay": relay,
        },
    });
    (ready, body)
}
