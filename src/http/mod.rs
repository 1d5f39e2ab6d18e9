//! The HTTP surface (warp): one handler file per resource, each exposing its routes, merged
//! here with request metrics and problem+json for everything that does not match.

pub mod access_log;
pub mod admin;
pub mod admin_deliveries;
pub mod admin_events;
pub mod admin_notifications;
pub mod admin_overview;
pub mod admin_payments;
pub mod admin_reconciliations;
pub mod admin_settings;
pub mod admin_webhook_endpoints;
pub mod auth;
pub mod body;
pub mod console;
pub mod discrepancies;
pub mod events;
pub mod list;
pub mod openapi;
pub mod ops;
pub mod payments;
pub mod payments_list;
pub mod problem;
pub mod provider_webhooks;
pub mod reconciliations;
pub mod refunds;
pub mod refunds_list;
pub mod request_id;
pub mod route;
pub mod shard_call;
pub mod webhook_endpoints;
/// The connection server every HTTP surface runs on (it lives below the layers: the
/// sandbox uses it too); `http::server` is its old path.
pub use crate::listener as server;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use warp::http::{header, HeaderValue, Method, StatusCode};
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
    ("GET", "/v1/refunds"),
    ("GET", "/v1/refunds/{refund_id}"),
    ("POST", "/v1/webhook_endpoints"),
    ("GET", "/v1/webhook_endpoints"),
    ("GET", "/v1/webhook_endpoints/{webhook_endpoint_id}"),
    ("PATCH", "/v1/webhook_endpoints/{webhook_endpoint_id}"),
    ("DELETE", "/v1/webhook_endpoints/{webhook_endpoint_id}"),
    (
        "POST",
        "/v1/webhook_endpoints/{webhook_endpoint_id}/rotate_secret",
    ),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/{event_id}"),
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
    ("GET", "/admin/payments"),
    ("GET", "/admin/payments/{payment_id}"),
    ("GET", "/admin/reconciliations"),
    ("GET", "/admin/overview"),
    ("GET", "/admin/webhook_endpoints"),
    (
        "POST",
        "/admin/webhook_endpoints/{webhook_endpoint_id}/disable",
    ),
    ("GET", "/console"),
    ("GET", "/console/{asset}"),
];

/// What handlers share.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub shards: Arc<Shards>,
    pub claims: Arc<Claims>,
    pub metrics: Arc<Metrics>,
    /// The gauges `/metrics` samples from the store at each scrape.
    pub ops_metrics: Arc<crate::ops_metrics::OpsMetrics>,
    pub rules: PaymentRules,
    /// Webhooks and reconciliation: the connector and a committer handle.
    pub provider: Arc<crate::provider::ProviderSide>,
    /// The notification side (admin API).
    pub notify: Arc<crate::notify::Notifications>,
    /// Payment creates and failures per minute for the console's overview.
    pub create_history: Arc<admin_overview::CreateHistory>,
    /// The outbox relay to NATS JetStream (its state in `/readyz`).
    pub relay: Arc<crate::relay::Relay>,
    /// Where handlers read the time (the same clock as the shards and the sweeps).
    pub clock: crate::clock::SharedClock,
    /// This instance's `/openapi.json` ([`openapi::document`]: its bound address, its
    /// currencies and limits).
    pub openapi: String,
}

pub type State = Arc<AppState>;

/// Passes the shared state into a handler.
pub fn with_state(state: &State) -> impl Filter<Extract = (State,), Error = Infallible> + Clone {
    let state = Arc::clone(state);
    warp::any().map(move || Arc::clone(&state))
}

/// The shared state and the raw `Authorization` header (absent → `None`), which every
/// authenticated route checks itself so a missing header answers 401 problem+json.
///
/// A value that is not visible ASCII cannot hold a Bearer token: it is passed on as the
/// empty string, which no key matches, so it answers 401 from the handler (DESIGN §2:
/// never a rejection that would surface as 405).
pub fn with_authorization(
    state: &State,
) -> impl Filter<Extract = (State, Option<String>), Error = Infallible> + Clone {
    with_state(state).and(
        optional_header("authorization").map(|value: Option<HeaderValue>| {
            value.map(|v| {
                v.to_str()
                    .ok()
                    .filter(|t| t.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
                    .unwrap_or_default()
                    .to_owned()
            })
        }),
    )
}

/// One header's raw value, `None` when absent; never rejects (a value that is not text is
/// the handler's to refuse).
pub fn optional_header(
    name: &'static str,
) -> impl Filter<Extract = (Option<HeaderValue>,), Error = Infallible> + Clone {
    warp::header::value(name)
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

/// The `Idempotency-Key` header of a POST, checked by the handler after authentication:
/// `Ok(None)` when absent, 400 `invalid_request` when sent twice or not text (its length
/// and characters are checked by `validate_header_key`).
pub type HeaderKey = Result<Option<String>, Problem>;

/// Extracts the [`HeaderKey`]; never rejects, so a bad key cannot turn into 405.
pub fn idempotency_key() -> impl Filter<Extract = (HeaderKey,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|headers: warp::http::HeaderMap| {
        let mut values = headers.get_all("idempotency-key").iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Problem::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be sent once",
            ));
        }
        first.to_str().map(|k| Some(k.to_owned())).map_err(|_| {
            Problem::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )
        })
    })
}

/// `GET`, and `HEAD` wherever `GET` is (DESIGN §2): hyper sends a HEAD answer's headers
/// without its body.
pub fn get() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
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
        .or(refunds_list::routes(state).boxed())
        .unify()
        .or(webhook_endpoints::routes(state).boxed())
        .unify()
        .or(events::routes(state).boxed())
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
        .or(admin_payments::routes(state).boxed())
        .unify()
        .or(admin_reconciliations::routes(state).boxed())
        .unify()
        .or(admin_overview::routes(state).boxed())
        .unify()
        .or(admin_webhook_endpoints::routes(state).boxed())
        .unify()
        .or(console::routes(state).boxed())
        .unify()
        .or(warp::method().and(warp::path::full()).map(
            move |method, path: warp::path::FullPath| unmatched(&metrics, &method, path.as_str()),
        ))
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
    request_id::note_route(route);
    let started = Instant::now();
    let response = handler.await;
    crate::metrics::record_request(
        &metrics.http_request_duration_seconds,
        &metrics.http_requests_total,
        route,
        started,
        response.status().as_str(),
    );
    response
}

/// The answer when no route took the request, decided from [`ROUTES`]: 404 for a path no
/// route has; 405 with `Allow` for a path some route has under another method; 400 when
/// the route exists but the request could not be read (a header that is not text).
fn unmatched(metrics: &Metrics, method: &Method, path: &str) -> Response {
    request_id::note_route("unmatched");
    let allowed = allowed_methods(path);
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let response = if allowed.is_empty() {
        problem::response(&Problem::new(
            404,
            "not_found",
            "Not found",
            "no such route",
        ))
    } else if allowed.contains(&method) {
        problem::response(&Problem::invalid("", "the request could not be read"))
    } else {
        let mut response = problem::response(&Problem::method_not_allowed());
        if let Ok(allow) = HeaderValue::from_str(&allow_header(&allowed)) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    };
    metrics
        .http_requests_total
        .with_label_values(&["unmatched", response.status().as_str()])
        .inc();
    response
}

/// The methods [`ROUTES`] has for `path` (a `{name}` template segment matches any one
/// non-empty segment). Where templates of several shapes match, only the most literal ones
/// count: `/admin/deliveries/redrive` is that route's path, not a delivery id, so its
/// `Allow` is the methods of `/admin/deliveries/redrive` alone.
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // (method, how many segments matched literally) of every template that matches.
    let matching: Vec<(&'static str, usize)> = ROUTES
        .iter()
        .filter_map(|(method, template)| {
            let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            let matches = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(part, segment)| {
                    part == segment || (part.starts_with('{') && !segment.is_empty())
                });
            let literal = parts.iter().filter(|part| !part.starts_with('{')).count();
            matches.then_some((*method, literal))
        })
        .collect();
    let most_literal = matching.iter().map(|(_, literal)| *literal).max();
    let mut methods: Vec<&'static str> = matching
        .iter()
        .filter(|(_, literal)| Some(*literal) == most_literal)
        .map(|(method, _)| *method)
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// The `Allow` value of `methods`, with `HEAD` beside `GET`.
fn allow_header(methods: &[&str]) -> String {
    let mut all: Vec<&str> = methods.to_vec();
    if all.contains(&"GET") {
        all.push("HEAD");
    }
    all.join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_route_shadows_a_template_in_allow() {
        assert_eq!(allowed_methods("/admin/deliveries/redrive"), ["POST"]);
        assert_eq!(allowed_methods("/admin/deliveries/dlv_1"), ["GET"]);
        assert_eq!(allowed_methods("/v1/payments"), ["GET", "POST"]);
        assert!(allowed_methods("/nowhere").is_empty());
    }
}
