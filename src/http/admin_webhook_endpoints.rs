//! Merchant webhook endpoints as the operator sees them (DESIGN §7 "merchant webhook
//! endpoints (read, disable)"), admin token only:
//!
//! - `GET /admin/webhook_endpoints?merchant_id=&status=&limit=&after=`: the endpoints of one
//!   merchant, or of every configured merchant when `merchant_id` is absent, ordered by
//!   merchant id then endpoint id (creation order), in the admin list envelope
//!   (`{"object": "list", "data", "has_more", "next_after"}`; `next_after` is an endpoint id).
//! - `POST /admin/webhook_endpoints/{id}/disable`: disables one endpoint of any merchant,
//!   through the merchant API's own write path (`http::webhook_endpoints::change`), so its
//!   deliveries stop exactly as if the merchant had disabled it. Idempotent: an endpoint
//!   already disabled is answered as it is, nothing written. The merchant can enable it again.
//!
//! Endpoints are read per configured merchant (the store keys them by merchant), at most
//! `webhooks.endpoints_max` each, so a page costs one prefix scan per merchant it covers and
//! finding an endpoint by id one point read per merchant. An endpoint of a merchant since
//! removed from `[[merchants]]` is neither listed nor found here.
//!
//! No answer carries a secret: the view is [`WebhookEndpoint::to_admin_value`], and the body
//! is still cleaned of every listed endpoint's secrets, in every encoding, and of the
//! configured ones (`admin::answer`), in case a merchant wrote one into a description.

use serde_json::Value;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::ids::is_valid_id;
use crate::domain::webhook_endpoint::{EndpointStatus, WebhookEndpoint, ID_PREFIX};
use crate::http::admin::{self, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
use crate::http::{respond, route, webhook_endpoints, with_authorization, State};
use crate::notify::channels::webhook::SECRET_PREFIX;
use crate::problem::Problem;
use crate::redact::Redactor;

/// `GET /admin/webhook_endpoints` and `POST /admin/webhook_endpoints/{id}/disable`;
/// 401 without the admin token, whatever else the request holds.
pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let list = route::get_with_query(
        warp::path!("admin" / "webhook_endpoints"),
        state,
        "admin_webhook_endpoints",
        list,
    );
    let disable = warp::path!("admin" / "webhook_endpoints" / String / "disable")
        .and(warp::post())
        .and(with_authorization(state))
        .then(
            |id: String, state: State, authorization: Option<String>| async move {
                respond(&state.metrics, "admin_webhook_endpoint_disable", async {
                    disable(&state, authorization.as_deref(), &id).await
                })
                .await
            },
        );
    list.or(disable).unify()
}

/// The merchants a list covers, by id: `merchant_id` alone, or every configured one.
///
/// # Errors
/// 400 `invalid_request` naming `merchant_id` when it is not a configured merchant.
fn merchants_in_scope<'a>(
    state: &'a State,
    merchant_id: Option<&String>,
) -> Result<Vec<&'a str>, Problem> {
    let mut all: Vec<&str> = state
        .config
        .merchants
        .iter()
        .map(|m| m.id.as_str())
        .collect();
    all.sort_unstable();
    match merchant_id {
        None => Ok(all),
        Some(wanted) => all
            .into_iter()
            .find(|m| m == wanted)
            .map(|m| vec![m])
            .ok_or_else(|| {
                Problem::invalid(
                    "merchant_id",
                    "merchant_id must be a configured merchant id",
                )
            }),
    }
}

/// The endpoint `id` of whichever of `merchants` owns it.
fn owned_by<'a>(
    state: &State,
    merchants: &[&'a str],
    id: &str,
) -> Result<Option<(&'a str, WebhookEndpoint)>, Problem> {
    if !is_valid_id(id, ID_PREFIX) {
        return Ok(None);
    }
    for merchant_id in merchants {
        if let Some(endpoint) = state
            .store
            .webhook_endpoint(merchant_id, id)
            .map_err(admin::internal)?
        {
            return Ok(Some((merchant_id, endpoint)));
        }
    }
    Ok(None)
}

fn list(state: &State, authorization: Option<&str>, query: &str) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    let params = admin::query(query, &["merchant_id", "status", "limit", "after"])?;
    let limit = admin::limit(&params, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let status = params
        .get("status")
        .map(|text| {
            EndpointStatus::parse(text)
                .ok_or_else(|| Problem::invalid("status", "status must be enabled or disabled"))
        })
        .transpose()?;
    let mut merchants = merchants_in_scope(state, params.get("merchant_id"))?;
    // Where the previous page ended: its last endpoint's merchant and id.
    let cursor = match params.get("after") {
        None => None,
        Some(after) => {
            let (owner, _) = owned_by(state, &merchants, after)?.ok_or_else(|| {
                Problem::invalid(
                    "after",
                    "after must be the id of an endpoint in this list (a page's next_after)",
                )
            })?;
            merchants.retain(|m| *m >= owner);
            Some((owner, after.as_str()))
        }
    };
    let mut found: Vec<WebhookEndpoint> = Vec::new();
    for merchant_id in merchants {
        let endpoints = state
            .store
            .webhook_endpoints(merchant_id)
            .map_err(admin::internal)?;
        found.extend(endpoints.into_iter().filter(|e| {
            cursor.is_none_or(|(owner, after)| merchant_id != owner || e.id.as_str() > after)
                && status.is_none_or(|s| e.status == s)
        }));
        if found.len() > limit {
            break;
        }
    }
    let has_more = found.len() > limit;
    found.truncate(limit);
    let next_after = found.last().map(|e| Value::from(e.id.clone()));
    let data = found.iter().map(WebhookEndpoint::to_admin_value).collect();
    let body = admin::list(data, has_more, next_after).to_string();
    Ok(answer(state, &found, &body))
}

async fn disable(
    state: &State,
    authorization: Option<&str>,
    id: &str,
) -> Result<Response, Problem> {
    admin::authorize(state, authorization)?;
    let merchants = merchants_in_scope(state, None)?;
    let (merchant_id, _) =
        owned_by(state, &merchants, id)?.ok_or_else(|| Problem::not_found("webhook endpoint"))?;
    let now_ms = state.clock.now_ms();
    let mut changed = false;
    let endpoint = webhook_endpoints::change(state, merchant_id, id, |endpoint| {
        let next = endpoint.disabled_by_operator(now_ms);
        changed = next != endpoint;
        Ok(next)
    })
    .await?;
    if changed {
        tracing::info!(operation = "admin.webhook_endpoint_disable", endpoint_id = %endpoint.id, merchant_id = %endpoint.merchant_id, "merchant webhook endpoint disabled by the operator");
    }
    let body = endpoint.to_admin_value().to_string();
    Ok(answer(state, std::slice::from_ref(&endpoint), &body))
}

/// `body` as an admin answer, cleaned of the secrets of `endpoints` (current and previous,
/// whole and the base64 key after `whsec_`, in every encoding) and of the configured ones.
fn answer(state: &State, endpoints: &[WebhookEndpoint], body: &str) -> Response {
    let secrets: Vec<&str> = endpoints
        .iter()
        .flat_map(|e| {
            std::iter::once(e.secret.as_str())
                .chain(e.previous_secret.iter().map(|(s, _)| s.as_str()))
        })
        .flat_map(|s| [s, s.strip_prefix(SECRET_PREFIX).unwrap_or(s)])
        .collect();
    let body = Redactor::new(secrets).redact(body);
    admin::answer(state, StatusCode::OK, body)
}
