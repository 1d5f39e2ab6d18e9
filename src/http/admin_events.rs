//! `GET /admin/events?limit=&after=`: the outbox, oldest first ("newest last"), paged by
//! the events' sequence numbers (`after` is the `sequence` of the last event seen; each
//! page says `next_after`).

use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::event::Event;
use crate::domain::time::format_rfc3339_ms;
use crate::http::admin::{self, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
use crate::http::{route, State};
use crate::problem::Problem;

pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    route::get_with_query(warp::path!("admin" / "events"), state, "admin_events", list)
}

fn list(state: &State, authorization: Option<&str>, query: &str) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    let params = admin::query(query, &["limit", "after"])?;
    let limit = admin::limit(&params, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let after = match params.get("after") {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| Problem::invalid("after", "after must be an event sequence number"))?,
    };
    let mut events = state
        .store
        .events_after(after, limit + 1)
        .map_err(admin::internal)?;
    let has_more = events.len() > limit;
    events.truncate(limit);
    let next_after = events.last().map(|(seq, _)| json!(seq.to_string()));
    let data = events.iter().map(|(seq, e)| event_json(*seq, e)).collect();
    Ok(crate::http::admin::answer(
        state,
        StatusCode::OK,
        admin::list(data, has_more, next_after).to_string(),
    ))
}

/// The event object of DESIGN §3, with its outbox `sequence`.
pub fn event_json(seq: u64, event: &Event) -> Value {
    let payload: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
    json!({
        "id": event.id,
        "object": "event",
        "sequence": seq.to_string(),
        "type": event.kind,
        "level": event.level,
        "source": event.source,
        "title": event.title,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "dedupe_key": event.dedupe_key,
        "payload": payload,
        "created_at": format_rfc3339_ms(event.created_at_ms),
    })
}
