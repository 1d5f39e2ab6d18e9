//! The HTTP surface (warp): one handler file per resource, each exposing its routes, merged
//! here with request metrics and problem+json for everything that does not match.

pub mod admin;
pub mod admin_deliveries;
pub mod admin_events;
pub mod admin_notifications;
pub mod admin_settings;
pub mod auth;
pub mod body;
pub mod discrepancies;
pub mod openapi;
pub mod ops;
pub mod payments;
pub mod problem;
pub mod provider_webhooks;
pub mod reconciliations;
pub mod refunds;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::config::Config;
use crate::domain::payment::PaymentRules;
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::shard::claims::Claims;
use crate::shard::Shards;
use crate::store::Store;

/// Every route of the service as (method, OpenAPI path); `/openapi.json` must document
/// exactly these (a test checks it).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/payments"),
    ("GET", "/v1/payments"),
    ("GET", "/v1/payments/{payment_id}"),
    ("POST", "/v1/payments/{payment_id}/refunds"),
    ("POST", "/v1/provider/webhooks"),
    ("POST", "/admin/reconciliations"),
    ("GET", "/admin/reconciliations/{reconciliation_id}"),
    ("POST", "/admin/discrepancies/{discrepancy_id}/resolve"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/admin/notifications/dispatch"),
    ("POST", "/admin/notifications/test"),
    ("GET", "/admin/events"),
    ("GET", "/admin/deliveries"),
    ("GET", "/admin/deliveries/{delivery_id}"),
    ("POST", "/admin/deliveries/{delivery_id}/redrive"),
    ("POST", "/admin/deliveries/redrive"),
    ("GET", "/admin/settings/notifications"),
    ("PUT", "/admin/settings/notifications"),
];

/// What handlers share.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub shards: Arc<Shards>,
    pub claims: Arc<Claims>,
    pub metrics: Arc<Metrics>,
    pub rules: PaymentRules,
    /// Webhooks and reconciliation: the connector and a committer handle.
    pub provider: Arc<crate::provider::ProviderSide>,
    /// The notification side (admin API).
    pub notify: Arc<crate::notify::Notifications>,
}

pub type State = Arc<AppState>;

/// Passes the shared state into a handler.
pub fn with_state(state: &State) -> impl Filter<Extract = (State,), Error = Infallible> + Clone {
    let state = Arc::clone(state);
    warp::any().map(move || Arc::clone(&state))
}

/// The shared state and the raw `Authorization` header (absent → `None`), which every
/// authenticated route checks itself so a missing header answers 401 problem+json.
pub fn with_authorization(
    state: &State,
) -> impl Filter<Extract = (State, Option<String>), Error = warp::Rejection> + Clone {
    with_state(state).and(warp::header::optional::<String>("authorization"))
}

/// The raw query string, empty when there is none.
pub fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// All routes, recovered into problem+json.
///
/// Each resource's routes are boxed: unboxed, the `or` chain nests every handler's future
/// inline, so each request's future is as large as the largest handler's and is copied
/// whole as hyper moves it. (memmove led the replay profile; boxing alone measured within
/// noise, see BENCHMARKS.md, and it keeps the route type shallow.)
pub fn routes(state: &State) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let metrics = Arc::clone(&state.metrics);
    payments::routes(state)
        .boxed()
        .or(refunds::routes(state).boxed())
        .unify()
        .or(provider_webhooks::routes(state).boxed())
        .unify()
        .or(reconciliations::routes(state).boxed())
        .unify()
        .or(discrepancies::routes(state).boxed())
        .unify()
        .or(ops::routes(state).boxed())
        .unify()
        .or(admin_notifications::routes(state).boxed())
        .unify()
        .or(admin_events::routes(state).boxed())
        .unify()
        .or(admin_deliveries::routes(state).boxed())
        .unify()
        .or(admin_settings::routes(state).boxed())
        .unify()
        .recover(move |rejection| recover(Arc::clone(&metrics), rejection))
        .unify()
}

/// Runs a handler that may fail: observed as in [`observe`], a [`Problem`] answered as
/// problem+json. The one wrapper every route's handler goes through.
pub async fn respond(
    metrics: &Metrics,
    route: &'static str,
    handler: impl Future<Output = Result<Response, Problem>>,
) -> Response {
    observe(metrics, route, async {
        handler.await.unwrap_or_else(|p| problem::response(&p))
    })
    .await
}

/// Runs a handler, recording `http_requests_total{route,status}` and
/// `http_request_duration_seconds{route}`.
pub async fn observe(
    metrics: &Metrics,
    route: &'static str,
    handler: impl Future<Output = Response>,
) -> Response {
    let started = Instant::now();
    let response = handler.await;
    metrics
        .http_request_duration_seconds
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests_total
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    response
}

async fn recover(metrics: Arc<Metrics>, rejection: Rejection) -> Result<Response, Infallible> {
    let problem = if rejection.is_not_found() {
        Problem::new(404, "not_found", "Not found", "no such route")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        Problem::new(
            405,
            "method_not_allowed",
            "Method not allowed",
            "method not allowed on this route",
        )
    } else {
        Problem::invalid("", "the request could not be read")
    };
    let response = problem::response(&problem);
    metrics
        .http_requests_total
        .with_label_values(&["unmatched", response.status().as_str()])
        .inc();
    Ok(response)
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: impl Into<warp::hyper::Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    response
}
