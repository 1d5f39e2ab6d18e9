//! Deliveries: `GET /admin/deliveries?status=&channel=&limit=&after=` (`status=dead` is
//! the dead-letter list), `GET /admin/deliveries/{id}`, `POST /admin/deliveries/{id}/redrive`
//! (one dead delivery back to pending) and `POST /admin/deliveries/redrive?channel=&since=&until=`
//! (bulk; `since`/`until` bound the deliveries' creation time, RFC 3339).

use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::delivery::{Channel, Delivery, DeliveryStatus};
use crate::domain::ids::{is_valid_id, prefix};
use crate::http::admin::{self, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
use crate::http::{raw_query, respond, route, with_authorization, State};
use crate::notify::ops::{OpsError, RedriveFilter};
use crate::problem::Problem;

/// Records looked at per list request when a channel filter skips most of them.
pub const LIST_SCAN_MAX: usize = 10_000;

pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let list = route::get_with_query(
        warp::path!("admin" / "deliveries"),
        state,
        "admin_deliveries",
        list,
    );
    let one = route::get_with_segment(
        warp::path!("admin" / "deliveries" / String),
        state,
        "admin_delivery",
        get,
    );
    let redrive_one = warp::path!("admin" / "deliveries" / String / "redrive")
        .and(warp::post())
        .and(with_authorization(state))
        .then(
            |id: String, state: State, authorization: Option<String>| async move {
                respond(&state.metrics, "admin_redrive", async {
                    redrive(&state, authorization.as_deref(), &id).await
                })
                .await
            },
        );
    let redrive_bulk = warp::path!("admin" / "deliveries" / "redrive")
        .and(warp::post())
        .and(with_authorization(state))
        .and(raw_query())
        .then(
            |state: State, authorization: Option<String>, query: String| async move {
                respond(&state.metrics, "admin_redrive_bulk", async {
                    redrive_bulk(&state, authorization.as_deref(), &query).await
                })
                .await
            },
        );
    list.or(one)
        .unify()
        .or(redrive_bulk)
        .unify()
        .or(redrive_one)
        .unify()
}

fn parse_channel(text: &str) -> Result<Channel, Problem> {
    Channel::parse(text).ok_or_else(|| {
        Problem::invalid(
            "channel",
            format!("channel must be one of {}", Channel::names()),
        )
    })
}

fn list(state: &State, authorization: Option<&str>, query: &str) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    let params = admin::query(query, &["status", "channel", "limit", "after"])?;
    let limit = admin::limit(&params, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let status = match params.get("status") {
        None => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            Problem::invalid(
                "status",
                "status must be one of pending, sending, delivered, retry_scheduled, dead, paused",
            )
        })?),
    };
    let channel = params
        .get("channel")
        .map(|c| parse_channel(c))
        .transpose()?;
    let mut after = params.get("after").cloned();
    if let Some(a) = &after {
        if !is_valid_id(a, prefix::DELIVERY) {
            return Err(Problem::invalid("after", "after must be a delivery id"));
        }
    }
    let mut found: Vec<Delivery> = Vec::new();
    let mut scanned = 0;
    let mut scan_cut = false;
    while found.len() <= limit {
        let page = match status {
            Some(s) => state
                .store
                .deliveries_with_status(s, after.as_deref(), limit + 1),
            None => state.store.deliveries_after(after.as_deref(), limit + 1),
        }
        .map_err(admin::internal)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        scanned += page.len();
        let exhausted = page.len() <= limit;
        found.extend(
            page.into_iter()
                .filter(|d| channel.is_none_or(|c| c == d.channel)),
        );
        if exhausted {
            break;
        }
        if scanned >= LIST_SCAN_MAX {
            scan_cut = true;
            break;
        }
    }
    let has_more = found.len() > limit || scan_cut;
    found.truncate(limit);
    // When the scan bound cut the page short, resume after the last record scanned.
    let next_after = if scan_cut && found.len() < limit {
        after.map(Value::from)
    } else {
        found.last().map(|d| Value::from(d.id.clone()))
    };
    let data = found.iter().map(Delivery::to_json_value).collect();
    Ok(crate::http::admin::answer(
        state,
        StatusCode::OK,
        admin::list(data, has_more, next_after).to_string(),
    ))
}

fn get(state: &State, authorization: Option<&str>, id: &str) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    if !is_valid_id(id, prefix::DELIVERY) {
        return Err(Problem::not_found("delivery"));
    }
    let delivery = state
        .store
        .delivery_or_planned(id)
        .map_err(admin::internal)?
        .ok_or_else(|| Problem::not_found("delivery"))?;
    Ok(crate::http::admin::answer(
        state,
        StatusCode::OK,
        delivery.to_json_value().to_string(),
    ))
}

async fn redrive(
    state: &State,
    authorization: Option<&str>,
    id: &str,
) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    if !is_valid_id(id, prefix::DELIVERY) {
        return Err(Problem::not_found("delivery"));
    }
    match state.notify.core.redrive(id).await {
        Ok(delivery) => Ok(crate::http::admin::answer(
            state,
            StatusCode::OK,
            delivery.to_json_value().to_string(),
        )),
        Err(OpsError::NotFound) => Err(Problem::not_found("delivery")),
        Err(OpsError::NotDead { status }) => Err(Problem::new(
            409,
            "delivery_not_dead",
            "Delivery not dead",
            format!("only dead deliveries can be redriven; this one is {status}"),
        )),
        Err(OpsError::Store(e)) => Err(admin::internal(e)),
        Err(OpsError::Settings(_)) => Err(Problem::internal()),
    }
}

async fn redrive_bulk(
    state: &State,
    authorization: Option<&str>,
    query: &str,
) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    let params = admin::query(query, &["channel", "since", "until"])?;
    let filter = RedriveFilter {
        channel: params
            .get("channel")
            .map(|c| parse_channel(c))
            .transpose()?,
        since_ms: admin::time_ms(&params, "since")?,
        until_ms: admin::time_ms(&params, "until")?,
    };
    match state.notify.core.redrive_bulk(filter).await {
        Ok(done) => Ok(crate::http::admin::answer(
            state,
            StatusCode::OK,
            json!({"redriven": done.redriven, "has_more": done.has_more}).to_string(),
        )),
        Err(OpsError::Store(e)) => Err(admin::internal(e)),
        Err(_) => Err(Problem::internal()),
    }
}
