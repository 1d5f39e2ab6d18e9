//! `/admin/reconciliations`: run a reconciliation of one UTC day (against the provider's
//! balance transactions, or an uploaded CSV settlement report) and read a stored report.
//!
//! `POST` with JSON `{"date": "YYYY-MM-DD"}` (and no query: one day per request) compares
//! with the provider; with `Content-Type: text/csv` and `?date=YYYY-MM-DD` it compares with
//! the uploaded report (header `provider_payment_id,amount,currency,status`, at most
//! [`CSV_BODY_BYTES_MAX`]). Answers 201 with the report and its discrepancies.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::ids::{is_valid_id, prefix};
use crate::http::payments::internal;
use crate::http::{auth, body, raw_query, respond, route, with_authorization, State};
use crate::problem::Problem;
use crate::recon::csv_report;
use crate::recon::run::{Recon, ReconError};

/// Largest uploaded settlement report (a day of a busy merchant, not the JSON body limit).
pub const CSV_BODY_BYTES_MAX: u64 = 16 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    date: String,
}

/// Routes of this resource.
pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let run = warp::path!("admin" / "reconciliations")
        .and(warp::post())
        .and(with_authorization(state))
        .and(body::head())
        .and(raw_query())
        .and(warp::body::stream())
        .then(
            |state: State,
             authorization: Option<String>,
             head: body::BodyHead,
             query: String,
             stream| async move {
                respond(&state.metrics, "create_reconciliation", async {
                    let csv = head.is_media_type("text/csv");
                    let limit = if csv {
                        CSV_BODY_BYTES_MAX
                    } else {
                        state.config.server.body_limit_bytes.get()
                    };
                    auth::admin(&state.config.admin.token, authorization.as_deref())?;
                    let bytes =
                        body::read_limited(stream, &head, limit, state.config.body_read_timeout())
                            .await?;
                    run_one(&state, &head, &query, &bytes).await
                })
                .await
            },
        );
    let get = route::get_with_segment(
        warp::path!("admin" / "reconciliations" / String),
        state,
        "get_reconciliation",
        get_one,
    );
    run.or(get).unify()
}

/// Parses `YYYY-MM-DD`, refusing days that have not begun (UTC).
fn parse_date(text: &str) -> Result<time::Date, Problem> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format)
        .map_err(|_| Problem::invalid("date", "date must be YYYY-MM-DD"))?;
    if date > time::OffsetDateTime::now_utc().date() {
        return Err(Problem::invalid(
            "date",
            "date must not be in the future (UTC)",
        ));
    }
    Ok(date)
}

async fn run_one(
    state: &State,
    head: &body::BodyHead,
    query: &str,
    bytes: &[u8],
) -> Result<Response, Problem> {
    let params = crate::http::admin::query(query, &["date"])?;
    let (date, uploaded) = if head.is_media_type("text/csv") {
        let date = params
            .get("date")
            .ok_or_else(|| Problem::invalid("date", "a CSV upload needs ?date=YYYY-MM-DD"))?;
        let rows = csv_report::parse(bytes).map_err(|e| Problem::invalid("body", e))?;
        (parse_date(date)?, Some(rows))
    } else {
        // One day per request: with a JSON body it is the body's, never a second one
        // beside it in the query (which would otherwise be read by nobody).
        if params.contains_key("date") {
            return Err(Problem::invalid(
                "date",
                "with a JSON body the date goes in the body, not in the query",
            ));
        }
        let run: RunBody = body::typed(body::json(head, bytes)?)?;
        (parse_date(&run.date)?, None)
    };
    let recon = Recon {
        store: &state.store,
        committer: &state.provider.committer,
        connector: state.provider.connector.as_ref(),
        clock: state.clock.as_ref(),
    };
    let (report, discrepancies) = recon.run(date, uploaded).await.map_err(recon_problem)?;
    let counter = &state.provider.metrics.reconciliation_discrepancies_total;
    for d in &discrepancies {
        counter.with_label_values(&[d.kind.as_str()]).inc();
    }
    Ok(crate::http::admin::answer(
        state,
        StatusCode::CREATED,
        report.to_value(&discrepancies).to_string(),
    ))
}

/// The problem of a failed run or resolve.
pub fn recon_problem(error: ReconError) -> Problem {
    match error {
        ReconError::Provider(e) => {
            tracing::warn!(operation = "reconciliation", error = %e, "provider unavailable");
            Problem::new(
                503,
                "provider_unavailable",
                "Provider unavailable",
                "the provider's balance transactions or payments could not be read; try again later",
            )
            .with_retry_after(5)
        }
        ReconError::Store(e) => internal(e),
        ReconError::TooMany | ReconError::TooManyUnmatched => Problem::new(
            422,
            "reconciliation_too_large",
            "Reconciliation too large",
            error.to_string(),
        ),
        ReconError::TotalOverflow { .. } => Problem::new(
            422,
            "reconciliation_overflow",
            "Reconciliation totals overflow",
            format!("{error}; no report was stored"),
        ),
        ReconError::NotFound => Problem::not_found("discrepancy"),
        ReconError::AlreadyResolved => Problem::new(
            409,
            "already_resolved",
            "Already resolved",
            "the discrepancy was resolved with another resolution or by another operator",
        ),
        ReconError::Busy => Problem::new(
            409,
            "resolve_in_progress",
            "Resolve in progress",
            "another resolve of this discrepancy is running; retry",
        )
        .with_retry_after(1),
    }
}

fn get_one(state: &State, authorization: Option<&str>, id: &str) -> Result<Response, Problem> {
    auth::admin(&state.config.admin.token, authorization)?;
    if !is_valid_id(id, prefix::RECONCILIATION) {
        return Err(Problem::not_found("reconciliation"));
    }
    let report = state
        .store
        .reconciliation(id)
        .map_err(internal)?
        .ok_or_else(|| Problem::not_found("reconciliation"))?;
    let mut discrepancies = Vec::with_capacity(report.discrepancy_ids.len());
    for id in &report.discrepancy_ids {
        discrepancies.extend(state.store.discrepancy(id).map_err(internal)?);
    }
    Ok(crate::http::admin::answer(
        state,
        StatusCode::OK,
        report.to_value(&discrepancies).to_string(),
    ))
}
