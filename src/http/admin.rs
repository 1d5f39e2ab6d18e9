//! What the admin handlers share: the admin Bearer check, strict query parsing (unknown
//! parameters are refused), list paging bounds, and the list envelope.

use std::collections::HashMap;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use warp::http::StatusCode;
use warp::reply::Response;

use crate::http::{auth, json_response, State};
use crate::notify::channels;
use crate::problem::Problem;
use crate::redact::Redactor;
use crate::store::StoreError;

/// Default page size of admin lists.
pub const PAGE_LIMIT_DEFAULT: usize = 50;
/// Largest page of admin lists.
pub const PAGE_LIMIT_MAX: usize = 500;

/// Checks `Authorization: Bearer <admin.token>` (constant time).
///
/// # Errors
/// 401 `unauthorized`.
pub fn authorize(state: &State, authorization: Option<&str>) -> Result<(), Problem> {
    auth::admin(&state.config.admin.token, authorization)
}

/// Parses `query`, refusing parameters not in `allowed` and empty values.
///
/// # Errors
/// 400 `invalid_request` naming the parameter.
pub fn query(query: &str, allowed: &[&str]) -> Result<HashMap<String, String>, Problem> {
    let params: HashMap<String, String> = serde_urlencoded::from_str(query)
        .map_err(|_| Problem::invalid("", "the query string could not be parsed"))?;
    if let Some(other) = params.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Problem::invalid(
            other,
            format!("unknown query parameter `{other}`"),
        ));
    }
    if let Some((key, _)) = params.iter().find(|(_, v)| v.is_empty()) {
        return Err(Problem::invalid(key, format!("`{key}` must not be empty")));
    }
    Ok(params)
}

/// `limit` from the query: `default` when absent, else 1..=`max`.
///
/// # Errors
/// 400 `invalid_request` on a value out of range.
pub fn limit(
    params: &HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, Problem> {
    match params.get("limit") {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| Problem::invalid("limit", format!("limit must be 1..={max}"))),
    }
}

/// An RFC 3339 time parameter in Unix milliseconds.
///
/// # Errors
/// 400 `invalid_request` naming the parameter.
pub fn time_ms(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Problem> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| Problem::invalid(name, format!("{name} must be an RFC 3339 time")))?;
    Ok(Some(
        i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
    ))
}

/// `{"object": "list", "data", "has_more", "next_after"}`.
pub fn list(data: Vec<Value>, has_more: bool, next_after: Option<Value>) -> Value {
    json!({
        "object": "list",
        "data": data,
        "has_more": has_more,
        "next_after": if has_more { next_after.unwrap_or(Value::Null) } else { Value::Null },
    })
}

/// The redactor of every configured secret: the service's own (provider key and webhook
/// secret, admin token, merchant keys) and the notification settings in force.
pub fn redactor(state: &State) -> Redactor {
    let notifications = channels::secrets(&state.notify.core.settings.current());
    Redactor::new(
        state
            .config
            .secrets()
            .into_iter()
            .chain(notifications.iter().map(String::as_str)),
    )
}

/// Every admin answer with a body: JSON with every configured secret redacted, whatever
/// the body quotes (an attempt's error, an event's payload, a report).
pub fn answer(state: &State, status: StatusCode, body: impl AsRef<str>) -> Response {
    json_response(status, redactor(state).redact(body.as_ref()))
}

/// Logs a store failure and answers a bare 500.
pub fn internal(error: StoreError) -> Problem {
    if let Some(suppressed) = crate::log_throttle::STORE_FAILURES.admit(&error.to_string()) {
        tracing::error!(operation = "admin", %error, suppressed, "store failure in an admin request");
    }
    Problem::internal()
}
