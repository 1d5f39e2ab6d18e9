//! `POST /admin/discrepancies/{id}/resolve`: an operator records how a reconciliation
//! discrepancy was settled (`{"resolution", "operator"}`). Resolving again with the same
//! words answers the discrepancy as it is; with others, 409 `already_resolved`.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::ids::{is_valid_id, prefix};
use crate::http::reconciliations::recon_problem;
use crate::http::{auth, body, respond, with_authorization, State};
use crate::problem::Problem;
use crate::recon::run::resolve;

/// `resolution` length bound in characters.
pub const RESOLUTION_CHARS_MAX: usize = 1000;
/// `operator` length bound in characters.
pub const OPERATOR_CHARS_MAX: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    resolution: String,
    operator: String,
}

/// Routes of this resource.
pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("admin" / "discrepancies" / String / "resolve")
        .and(warp::post())
        .and(with_authorization(state))
        .and(body::head())
        .and(warp::body::stream())
        .then(
            |id: String,
             state: State,
             authorization: Option<String>,
             head: body::BodyHead,
             stream| async move {
                respond(&state.metrics, "resolve_discrepancy", async {
                    auth::admin(&state.config.admin.token, authorization.as_deref())?;
                    let bytes = body::read_request(&state, stream, &head).await?;
                    resolve_one(&state, &id, &head, &bytes).await
                })
                .await
            },
        )
}

fn check(field: &str, value: &str, chars_max: usize) -> Result<(), Problem> {
    let count = value.chars().count();
    if count == 0 || count > chars_max || value.chars().any(char::is_control) {
        return Err(Problem::invalid(
            field,
            format!("{field} must be 1..={chars_max} characters without control characters"),
        ));
    }
    Ok(())
}

async fn resolve_one(
    state: &State,
    id: &str,
    head: &body::BodyHead,
    bytes: &[u8],
) -> Result<Response, Problem> {
    let request: ResolveBody = body::typed(body::json(head, bytes)?)?;
    check("resolution", &request.resolution, RESOLUTION_CHARS_MAX)?;
    check("operator", &request.operator, OPERATOR_CHARS_MAX)?;
    if !is_valid_id(id, prefix::DISCREPANCY) {
        return Err(Problem::not_found("discrepancy"));
    }
    let provider = &state.provider;
    let resolved = resolve(
        &state.store,
        &provider.committer,
        &provider.resolving,
        id,
        &request.resolution,
        &request.operator,
        state.clock.now_ms(),
    )
    .await
    .map_err(recon_problem)?;
    Ok(crate::http::admin::answer(
        state,
        StatusCode::OK,
        resolved.to_value().to_string(),
    ))
}
