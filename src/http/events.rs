//! `GET /v1/events` and `GET /v1/events/{id}`: a merchant's own events (DESIGN §2), the
//! ones its webhook endpoints are sent, kept `retention.events_days`. Another merchant's
//! event is 404; lists are Stripe's shape, newest first, cursor-paged by event id.
//!
//! Filters: `type` (a merchant event type, or `payment.*` / `refund.*`) and
//! `delivery_success` (`false`: some delivery to one of the merchant's endpoints is not
//! delivered yet, or failed; `true`: every one was delivered). A filtered page examines
//! at most [`crate::store::tables::merchant_index::ITEMS_SCANNED_MAX`] events; past that
//! it answers what it found with `has_more: true` and the last examined event's id as
//! `next_starting_after` ([`crate::http::list::answer`]).

use serde_json::Value;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::delivery::{Channel, DeliveryStatus};
use crate::domain::error::DomainError;
use crate::domain::event::Event;
use crate::domain::event::{is_merchant_event, MERCHANT_EVENT_TYPES};
use crate::domain::ids::{is_valid_id, prefix};
use crate::http::list::{self, ListQuery};
use crate::http::payments::internal;
use crate::http::{auth, json_response, raw_query, respond, with_authorization, State};
use crate::problem::Problem;
use crate::store::tables::merchant_index::{Item, MerchantList, Window};

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
    let cursor = state
        .store
        .merchant_event(merchant_id, id)
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let event = state
        .store
        .event_at(cursor.item.seq)
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

fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    DomainError::invalid(field, detail).into()
}

/// The `type` filter, validated: a merchant event type, or `payment.*` / `refund.*`.
fn type_filter(query: &ListQuery) -> Result<Option<&str>, Problem> {
    let Some(kind) = query.params.get("type") else {
        return Ok(None);
    };
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
    Ok(Some(kind))
}

fn delivery_filter(query: &ListQuery) -> Result<Option<bool>, Problem> {
    match query.params.get("delivery_success").map(String::as_str) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(invalid(
            "delivery_success",
            "delivery_success must be true or false",
        )),
    }
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
    let q = ListQuery::parse(query, &["type", "delivery_success"], false)?;
    let kind = type_filter(&q)?;
    let delivery_success = delivery_filter(&q)?;
    let page = q.page(|id| Ok(state.store.merchant_event(merchant_id, id)?))?;
    let pick = |item: &Item| -> Result<Option<String>, Problem> {
        let Some(event) = state.store.event_at(item.seq)? else {
            return Ok(None);
        };
        let wanted = kind.is_none_or(|k| type_matches(k, &event.kind))
            && match delivery_success {
                None => true,
                Some(success) => delivered_everywhere(state, &event)? == success,
            };
        Ok(if wanted {
            Some(view(state, &event)?.to_string())
        } else {
            None
        })
    };
    let listed = state.store.list_page(
        MerchantList::Events,
        merchant_id,
        &page,
        Window::default(),
        q.limit,
        pick,
    )?;
    Ok(list::answer("/v1/events", &q, listed))
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
