//! `GET /v1/events` and `GET /v1/events/{id}`: a merchant's own events (DESIGN §2), the
//! ones its webhook endpoints are sent, kept `retention.events_days`. Another merchant's
//! event is 404; lists are Stripe's shape, newest first, cursor-paged by event id.
//!
//! Filters: `type` (a merchant event type, or `payment.*` / `refund.*`) and
//! `delivery_success` (`false`: some delivery to one of the merchant's endpoints is not
//! delivered yet, or failed; `true`: every one was delivered). A filtered page scans at
//! most [`EVENTS_SCANNED_MAX`] events; past that it answers what it found with
//! `has_more: true`.

use std::collections::HashMap;

use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::delivery::{Channel, DeliveryStatus};
use crate::domain::error::DomainError;
use crate::domain::event::Event;
use crate::domain::ids::{is_valid_id, prefix};
use crate::domain::webhook_endpoint::{is_merchant_event, MERCHANT_EVENT_TYPES};
use crate::http::payments::internal;
use crate::http::{auth, json_response, raw_query, respond, with_authorization, State};
use crate::problem::Problem;
use crate::store::tables::merchant_events::Page;

/// `limit` when absent, and its bounds (DESIGN §2).
pub const LIMIT_DEFAULT: usize = 10;
pub const LIMIT_MAX: usize = 100;
/// Most events one filtered page reads before it answers (bounded work per request).
pub const EVENTS_SCANNED_MAX: usize = 10_000;
/// Events read from the index per step of a scan.
const SCAN_STEP: usize = 200;

/// Routes of this resource.
pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let list = warp::path!("v1" / "events")
        .and(crate::http::get())
        .and(with_authorization(state))
        .and(raw_query())
        .then(
            |state: State, authorization: Option<String>, query: String| async move {
                respond(&state.metrics, "list_events", async {
                    let merchant_id =
                        auth::merchant(&state.config.merchants, authorization.as_deref())?;
                    list(&state, merchant_id, &query)
                })
                .await
            },
        );
    let get = warp::path!("v1" / "events" / String)
        .and(crate::http::get())
        .and(with_authorization(state))
        .then(
            |id: String, state: State, authorization: Option<String>| async move {
                respond(&state.metrics, "get_event", async {
                    let merchant_id =
                        auth::merchant(&state.config.merchants, authorization.as_deref())?;
                    get(&state, merchant_id, &id)
                })
                .await
            },
        );
    list.or(get).unify()
}

fn not_found() -> Problem {
    DomainError::NotFound { what: "event" }.into()
}

fn get(state: &State, merchant_id: &str, id: &str) -> Result<Response, Problem> {
    if !is_valid_id(id, prefix::EVENT) {
        return Err(not_found());
    }
    let seq = state
        .store
        .merchant_event_seq(merchant_id, id)
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let event = state
        .store
        .event_at(seq)
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let view = view(state, &event)?;
    Ok(json_response(StatusCode::OK, view.to_string()))
}

/// The event as the merchant sees it, its payment's merchant text read from the payment.
fn view(state: &State, event: &Event) -> Result<Value, Problem> {
    let payment = if event.entity_type == "payment" {
        state.store.payment(&event.entity_id).map_err(internal)?
    } else {
        None
    };
    Ok(event.merchant_view(payment.as_ref()))
}

/// The list's query, validated.
struct Query {
    limit: usize,
    page: Page,
    kind: Option<String>,
    delivery_success: Option<bool>,
}

fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    DomainError::invalid(field, detail).into()
}

fn parse_query(state: &State, merchant_id: &str, query: &str) -> Result<Query, Problem> {
    const ALLOWED: &[&str] = &[
        "limit",
        "starting_after",
        "ending_before",
        "type",
        "delivery_success",
    ];
    let params: HashMap<String, String> = serde_urlencoded::from_str(query)
        .map_err(|_| invalid("", "the query string could not be parsed"))?;
    if let Some(other) = params.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(invalid(other, format!("unknown query parameter `{other}`")));
    }
    let limit = match params.get("limit") {
        None => LIMIT_DEFAULT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=LIMIT_MAX).contains(n))
            .ok_or_else(|| invalid("limit", format!("limit must be 1..={LIMIT_MAX}")))?,
    };
    // A cursor must be one of this merchant's events: an unknown id, or another
    // merchant's, is 400 naming the parameter.
    let cursor = |name: &str| -> Result<Option<String>, Problem> {
        let Some(id) = params.get(name) else {
            return Ok(None);
        };
        let known = is_valid_id(id, prefix::EVENT)
            && state
                .store
                .merchant_event_seq(merchant_id, id)
                .map_err(internal)?
                .is_some();
        if !known {
            return Err(invalid(name, format!("{name}: no such event `{id}`")));
        }
        Ok(Some(id.clone()))
    };
    let page = match (cursor("starting_after")?, cursor("ending_before")?) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "ending_before",
                "starting_after and ending_before cannot be used together",
            ))
        }
        (Some(id), None) => Page::After(id),
        (None, Some(id)) => Page::Before(id),
        (None, None) => Page::First,
    };
    let kind = params.get("type").cloned();
    if let Some(kind) = &kind {
        let family = kind.strip_suffix(".*").is_some_and(|f| {
            MERCHANT_EVENT_TYPES
                .iter()
                .any(|t| t.starts_with(&format!("{f}.")))
        });
        if !is_merchant_event(kind) && !family {
            return Err(invalid(
                "type",
                format!(
                    "type must be one of {} (or payment.*, refund.*)",
                    MERCHANT_EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    let delivery_success = match params.get("delivery_success").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(invalid(
                "delivery_success",
                "delivery_success must be true or false",
            ))
        }
    };
    Ok(Query {
        limit,
        page,
        kind,
        delivery_success,
    })
}

fn type_matches(filter: &str, kind: &str) -> bool {
    match filter.strip_suffix('*') {
        Some(family) => kind.starts_with(family),
        None => filter == kind,
    }
}

/// Whether every delivery of `event` to the merchant's endpoints was delivered.
fn delivered_everywhere(state: &State, event: &Event) -> Result<bool, Problem> {
    Ok(state
        .store
        .deliveries_of_event(&event.id)
        .map_err(internal)?
        .iter()
        .filter(|d| d.channel == Channel::Merchant)
        .all(|d| d.status == DeliveryStatus::Delivered))
}

fn list(state: &State, merchant_id: &str, query: &str) -> Result<Response, Problem> {
    let q = parse_query(state, merchant_id, query)?;
    let mut found: Vec<Value> = Vec::new();
    let mut cursor = q.page.clone();
    let mut scanned = 0usize;
    let mut has_more = false;
    'scan: loop {
        let mut batch = state
            .store
            .merchant_events_page(merchant_id, &cursor, SCAN_STEP)
            .map_err(internal)?;
        if matches!(cursor, Page::Before(_)) {
            // Closest to the cursor first; the page is put newest first at the end.
            batch.reverse();
        }
        let Some((last, _)) = batch.last().cloned() else {
            break;
        };
        for (_, seq) in batch {
            scanned += 1;
            let Some(event) = state.store.event_at(seq).map_err(internal)? else {
                continue;
            };
            let wanted = q
                .kind
                .as_deref()
                .is_none_or(|k| type_matches(k, &event.kind))
                && match q.delivery_success {
                    None => true,
                    Some(success) => delivered_everywhere(state, &event)? == success,
                };
            if wanted {
                if found.len() == q.limit {
                    has_more = true;
                    break 'scan;
                }
                found.push(view(state, &event)?);
            }
            if scanned >= EVENTS_SCANNED_MAX {
                has_more = true;
                break 'scan;
            }
        }
        cursor = match cursor {
            Page::Before(_) => Page::Before(last),
            _ => Page::After(last),
        };
    }
    if matches!(q.page, Page::Before(_)) {
        found.reverse();
    }
    let body = json!({
        "object": "list",
        "data": found,
        "has_more": has_more,
        "url": "/v1/events",
    });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::type_matches;

    #[test]
    fn type_filters_match_one_type_or_a_family() {
        assert!(type_matches("payment.succeeded", "payment.succeeded"));
        assert!(!type_matches("payment.succeeded", "payment.failed"));
        assert!(type_matches("payment.*", "payment.failed"));
        assert!(!type_matches("payment.*", "refund.failed"));
    }
}
