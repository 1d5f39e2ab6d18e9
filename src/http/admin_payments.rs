//! `GET /admin/payments/{id}` and `GET /admin/payments?merchant_id=&order_no=`: one payment
//! of any merchant as the operator console shows it — the payment object of DESIGN §2 with
//! its refunds, the outbox events about it or its refunds, and their deliveries. Read-only,
//! admin token only (DESIGN §7).
//!
//! The outbox has no index by payment, so events are found by reading it backwards from
//! the newest, at most [`EVENTS_SCAN_MAX`] events; `events_scan.complete` says whether that
//! reached the oldest event kept.

use std::collections::HashSet;

use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::delivery::Delivery;
use crate::domain::ids::{is_valid_id, prefix};
use crate::domain::payment::Payment;
use crate::domain::refund::Refund;
use crate::http::admin;
use crate::http::admin_events::event_json;
use crate::http::{route, State};
use crate::problem::Problem;

/// Newest outbox events read to find a payment's events.
pub const EVENTS_SCAN_MAX: u64 = 20_000;
/// Events read per store call during that scan.
const EVENTS_SCAN_PAGE: u64 = 1_000;
/// Events of one payment shown (a payment has a handful: its outcome per attempt and its
/// refunds').
const PAYMENT_EVENTS_MAX: usize = 200;

pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    route::get_one_or_query(
        warp::path!("admin" / "payments" / String),
        warp::path!("admin" / "payments"),
        state,
        ("admin_payment", by_id),
        ("admin_payment_by_order", by_order),
    )
}

fn by_id(state: &State, authorization: Option<&str>, id: &str) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    if !is_valid_id(id, prefix::PAYMENT) {
        return Err(Problem::not_found("payment"));
    }
    let payment = state.store.payment(id).map_err(admin::internal)?;
    answer(state, payment)
}

fn by_order(state: &State, authorization: Option<&str>, query: &str) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    let params = admin::query(query, &["merchant_id", "order_no"])?;
    let (Some(merchant_id), Some(order_no)) = (params.get("merchant_id"), params.get("order_no"))
    else {
        return Err(Problem::invalid(
            "order_no",
            "both merchant_id and order_no are required",
        ));
    };
    let payment = state
        .store
        .payment_by_order(merchant_id, order_no)
        .map_err(admin::internal)?;
    answer(state, payment)
}

/// `{"object": "admin_payment", payment, events, deliveries, events_scan}`; 404 when absent.
fn answer(state: &State, payment: Option<Payment>) -> Result<Response, Problem> {
    let payment = payment.ok_or_else(|| Problem::not_found("payment"))?;
    let refunds = state
        .store
        .refunds_of_payment(&payment.id)
        .map_err(admin::internal)?;
    let refund_values: Vec<Value> = refunds.iter().map(Refund::to_value).collect();
    let mut entities: HashSet<&str> = refunds.iter().map(|r| r.id.as_str()).collect();
    entities.insert(&payment.id);
    let (events, complete) = events_about(state, &entities)?;
    let mut deliveries: Vec<Delivery> = Vec::new();
    for (_, event) in &events {
        deliveries.extend(
            state
                .store
                .deliveries_of_event(&event.id)
                .map_err(admin::internal)?,
        );
    }
    let body = json!({
        "object": "admin_payment",
        "payment": payment.view(&refund_values),
        "events": events.iter().map(|(seq, e)| event_json(*seq, e)).collect::<Vec<_>>(),
        "deliveries": deliveries.iter().map(Delivery::to_json_value).collect::<Vec<_>>(),
        "events_scan": {"max": EVENTS_SCAN_MAX, "complete": complete},
    });
    Ok(admin::answer(state, StatusCode::OK, body.to_string()))
}

/// The events whose entity is one of `entities`, oldest first, from the newest
/// [`EVENTS_SCAN_MAX`] of the outbox; and whether the scan reached the start of the outbox.
fn events_about(
    state: &State,
    entities: &HashSet<&str>,
) -> Result<(Vec<(u64, crate::domain::event::Event)>, bool), Problem> {
    let last = state.store.last_event_seq().map_err(admin::internal)?;
    let floor = last.saturating_sub(EVENTS_SCAN_MAX);
    let mut found = Vec::new();
    let mut upper = last;
    while upper > floor && found.len() < PAYMENT_EVENTS_MAX {
        let from = upper.saturating_sub(EVENTS_SCAN_PAGE).max(floor);
        let page = state
            .store
            .events_after(from, (upper - from) as usize)
            .map_err(admin::internal)?;
        found.extend(
            page.into_iter()
                .filter(|(_, e)| entities.contains(e.entity_id.as_str())),
        );
        upper = from;
    }
    found.sort_by_key(|(seq, _)| *seq);
    found.truncate(PAYMENT_EVENTS_MAX);
    // Sequence numbers start at 1 (events_after(0, ..) reads from the first).
    let complete = floor == 0;
    Ok((found, complete))
}
