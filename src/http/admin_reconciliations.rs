//! `GET /admin/reconciliations?limit=&after=`: the stored reconciliation reports, oldest
//! first (report ids are time-ordered), paged by `after` (the last report id seen; each page
//! says `next_after`). Each report is its summary — counts, totals, `discrepancy_count` —
//! without its discrepancies (`GET /admin/reconciliations/{id}` has them). Read-only, admin
//! token only (DESIGN §7: the console's list of reports).

use serde_json::Value;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::ids::{is_valid_id, prefix};
use crate::http::admin::{self, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
use crate::http::{route, State};
use crate::problem::Problem;

pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    route::get_with_query(
        warp::path!("admin" / "reconciliations"),
        state,
        "admin_reconciliations",
        list,
    )
}

fn list(state: &State, authorization: Option<&str>, query: &str) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    let params = admin::query(query, &["limit", "after"])?;
    let limit = admin::limit(&params, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let after = params.get("after").map(String::as_str);
    if after.is_some_and(|a| !is_valid_id(a, prefix::RECONCILIATION)) {
        return Err(Problem::invalid(
            "after",
            "after must be a reconciliation id",
        ));
    }
    let mut reports = state
        .store
        .reconciliations_after(after, limit + 1)
        .map_err(admin::internal)?;
    let has_more = reports.len() > limit;
    reports.truncate(limit);
    let next_after = reports.last().map(|r| Value::from(r.id.clone()));
    let data = reports
        .iter()
        .map(|r| {
            let mut summary = r.to_value(&[]);
            if let Some(object) = summary.as_object_mut() {
                object.remove("discrepancies");
            }
            summary
        })
        .collect();
    Ok(admin::answer(
        state,
        StatusCode::OK,
        admin::list(data, has_more, next_after).to_string(),
    ))
}
