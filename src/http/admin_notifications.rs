//! `POST /admin/notifications/dispatch?limit=N` (run a dispatch pass now, for cron or
//! compensation; answers its counts) and `POST /admin/notifications/test` (enqueue a
//! `notification.test` event to every enabled channel; answers 202 with the event and the
//! deliveries it created).

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::delivery::Delivery;
use crate::http::admin;
use crate::http::admin_events::event_json;
use crate::http::{raw_query, respond, with_authorization, State};
use crate::notify::dispatcher::{PASS_LIMIT_DEFAULT, PASS_LIMIT_MAX};
use crate::problem::Problem;

pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let dispatch = warp::path!("admin" / "notifications" / "dispatch")
        .and(warp::post())
        .and(with_authorization(state))
        .and(raw_query())
        .then(
            |state: State, authorization: Option<String>, query: String| async move {
                respond(&state.metrics, "admin_dispatch", async {
                    dispatch(&state, authorization.as_deref(), &query).await
                })
                .await
            },
        );
    let test = warp::path!("admin" / "notifications" / "test")
        .and(warp::post())
        .and(with_authorization(state))
        .then(|state: State, authorization: Option<String>| async move {
            respond(&state.metrics, "admin_test_notification", async {
                test(&state, authorization.as_deref()).await
            })
            .await
        });
    dispatch.or(test).unify()
}

async fn dispatch(
    state: &State,
    authorization: Option<&str>,
    query: &str,
) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    let params = admin::query(query, &["limit"])?;
    let limit = admin::limit(&params, PASS_LIMIT_DEFAULT, PASS_LIMIT_MAX)?;
    let counts = state
        .notify
        .dispatcher
        .pass(limit)
        .await
        .map_err(admin::internal)?;
    Ok(crate::http::admin::answer(
        state,
        StatusCode::OK,
        serde_json::to_string(&counts).unwrap_or_default(),
    ))
}

async fn test(state: &State, authorization: Option<&str>) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    let (event, deliveries) = state
        .notify
        .core
        .send_test()
        .await
        .map_err(admin::internal)?;
    let seq = state.store.last_event_seq().unwrap_or(0);
    let body = json!({
        "event": event_json(seq, &event),
        "deliveries": deliveries.iter().map(Delivery::to_json_value).collect::<Vec<_>>(),
    });
    Ok(crate::http::admin::answer(
        state,
        StatusCode::ACCEPTED,
        body.to_string(),
    ))
}
