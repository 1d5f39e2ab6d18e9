//! `/v1/webhook_endpoints`: a merchant's own signed webhook endpoints (DESIGN §2, §3
//! "Merchant webhook endpoints"): create (the secret answered once), list, get, update,
//! delete, and rotate the secret with an overlap. Another merchant's endpoint is 404.
//!
//! Every change goes through the committer under the notifier's endpoints lock
//! (`notify::Core::endpoints_lock`): changes are rare, and the lock makes the
//! `webhooks.endpoints_max` check and the write one step and keeps a delivery's health
//! update from overwriting a merchant's change. A refused request stores nothing.
//!
//! A create takes an optional `Idempotency-Key` (DESIGN §2, every POST): the key is claimed
//! like a payment's (`shard::claims`, one namespace per merchant, so a key a payment used is
//! 422 `idempotency_key_reused` here and the other way round), and its entry, holding the
//! 201 answer, is written with the endpoint; a retry with the same body gets that answer
//! replayed (`Idempotent-Replayed: true`), secret included, as Stripe does.

use base64::Engine;
use rand::RngCore;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::error::DomainError;
use crate::domain::idempotency::{
    validate_header_key, Fingerprint, IdempotencyEntry, IdempotencyKey, KeyScope, StoredResponse,
};
use crate::domain::ids::{is_valid_id, new_id};
use crate::domain::webhook_endpoint::{
    CreateEndpointBody, UpdateEndpointBody, WebhookEndpoint, ID_PREFIX, SECRET_BYTES,
};
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::http::payments::internal;
use crate::http::{
    auth, body, idempotency_key, json_response, respond, with_authorization, HeaderKey, State,
};
use crate::notify::channels::webhook::SECRET_PREFIX;
use crate::problem::Problem;
use crate::shard::claims::ClaimError;

/// Path of the create, part of its fingerprint.
pub const ENDPOINTS_PATH: &str = "/v1/webhook_endpoints";

/// What an endpoint create claims its `Idempotency-Key` for, in place of an order number
/// (no order number is empty, so no payment create can share the claim).
const ENDPOINT_CLAIM: &str = "";

/// Routes of this resource.
pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let create = warp::path!("v1" / "webhook_endpoints")
        .and(warp::post())
        .and(with_authorization(state))
        .and(idempotency_key())
        .and(body::head())
        .and(warp::body::stream())
        .then(
            |state: State, authorization: Option<String>, key: HeaderKey, head, stream| async move {
                respond(&state.metrics, "create_webhook_endpoint", async {
                    let merchant_id = merchant(&state, authorization.as_deref())?;
                    let key = key?;
                    if let Some(key) = &key {
                        validate_header_key(key)?;
                    }
                    let bytes = body::read_request(&state, stream, &head).await?;
                    let value = body::json(&head, &bytes)?;
                    let fingerprint = Fingerprint::new("POST", ENDPOINTS_PATH, &value);
                    let request = body::typed::<CreateEndpointBody>(value)?;
                    let key = key.map(|k| IdempotencyKey {
                        merchant_id: merchant_id.clone(),
                        scope: KeyScope::Header(k),
                    });
                    create(&state, &merchant_id, request, key, fingerprint).await
                })
                .await
            },
        );
    let list = warp::path!("v1" / "webhook_endpoints")
        .and(crate::http::get())
        .and(with_authorization(state))
        .then(|state: State, authorization: Option<String>| async move {
            respond(&state.metrics, "list_webhook_endpoints", async {
                let merchant_id = merchant(&state, authorization.as_deref())?;
                list(&state, &merchant_id)
            })
            .await
        });
    let get = warp::path!("v1" / "webhook_endpoints" / String)
        .and(crate::http::get())
        .and(with_authorization(state))
        .then(
            |id: String, state: State, authorization: Option<String>| async move {
                respond(&state.metrics, "get_webhook_endpoint", async {
                    let merchant_id = merchant(&state, authorization.as_deref())?;
                    let endpoint = find(&state, &merchant_id, &id)?;
                    Ok(answer(StatusCode::OK, &endpoint.to_value()))
                })
                .await
            },
        );
    let update = warp::path!("v1" / "webhook_endpoints" / String)
        .and(warp::patch())
        .and(with_authorization(state))
        .and(body::head())
        .and(warp::body::stream())
        .then(
            |id: String, state: State, authorization: Option<String>, head, stream| async move {
                respond(&state.metrics, "update_webhook_endpoint", async {
                    let merchant_id = merchant(&state, authorization.as_deref())?;
                    let bytes = body::read_request(&state, stream, &head).await?;
                    let value = body::json(&head, &bytes)?;
                    let request = body::typed::<UpdateEndpointBody>(value)?;
                    update(&state, &merchant_id, &id, request).await
                })
                .await
            },
        );
    let delete = warp::path!("v1" / "webhook_endpoints" / String)
        .and(warp::delete())
        .and(with_authorization(state))
        .then(
            |id: String, state: State, authorization: Option<String>| async move {
                respond(&state.metrics, "delete_webhook_endpoint", async {
                    let merchant_id = merchant(&state, authorization.as_deref())?;
                    delete(&state, &merchant_id, &id).await
                })
                .await
            },
        );
    let rotate = warp::path!("v1" / "webhook_endpoints" / String / "rotate_secret")
        .and(warp::post())
        .and(with_authorization(state))
        .then(
            |id: String, state: State, authorization: Option<String>| async move {
                respond(&state.metrics, "rotate_webhook_endpoint_secret", async {
                    let merchant_id = merchant(&state, authorization.as_deref())?;
                    rotate(&state, &merchant_id, &id).await
                })
                .await
            },
        );
    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(rotate)
        .unify()
}

fn merchant(state: &State, authorization: Option<&str>) -> Result<String, Problem> {
    Ok(auth::merchant(&state.config.merchants, authorization)?.to_owned())
}

/// A new `whsec_` secret: 32 random bytes, base64.
fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The egress rules of DESIGN §3 as the settings now say (`allow_private_targets`).
fn egress_check(state: &State) -> impl Fn(&str) -> Result<(), String> {
    let allow_private = state.notify.core.settings.current().allow_private_targets;
    move |url: &str| crate::notify::egress::check_url(url, allow_private)
}

fn answer(status: StatusCode, value: &serde_json::Value) -> Response {
    json_response(status, value.to_string())
}

/// The merchant's endpoint `id`; 404 when absent or another merchant's.
fn find(state: &State, merchant_id: &str, id: &str) -> Result<WebhookEndpoint, Problem> {
    if !is_valid_id(id, ID_PREFIX) {
        return Err(DomainError::NotFound {
            what: "webhook endpoint",
        }
        .into());
    }
    state
        .store
        .webhook_endpoint(merchant_id, id)
        .map_err(internal)?
        .ok_or_else(|| {
            DomainError::NotFound {
                what: "webhook endpoint",
            }
            .into()
        })
}

async fn commit(state: &State, op: WriteOp) -> Result<(), Problem> {
    commit_all(state, vec![op]).await
}

async fn commit_all(state: &State, ops: Vec<WriteOp>) -> Result<(), Problem> {
    state
        .notify
        .core
        .committer
        .commit(WriteSet { ops })
        .await
        .map_err(|error| {
            tracing::error!(operation = "webhook_endpoints", %error, "committing an endpoint change failed");
            Problem::internal()
        })
}

async fn create(
    state: &State,
    merchant_id: &str,
    request: CreateEndpointBody,
    key: Option<IdempotencyKey>,
    fingerprint: Fingerprint,
) -> Result<Response, Problem> {
    let check = egress_check(state);
    let endpoint = request.into_endpoint(
        merchant_id,
        new_id(ID_PREFIX),
        new_secret(),
        &check,
        state.clock.now_ms(),
    )?;
    let _claim = match &key {
        Some(key) => Some(
            state
                .claims
                .claim(key, ENDPOINT_CLAIM, &state.store)
                .map_err(|e| match e {
                    ClaimError::OtherOrder => Problem::from(DomainError::IdempotencyKeyReused {
                        fields: vec!["path".to_owned()],
                    }),
                    ClaimError::Store => Problem::internal(),
                })?,
        ),
        None => None,
    };
    let _guard = state.notify.core.endpoints_lock.lock().await;
    if let Some(key) = &key {
        if let Some(entry) = state.store.idempotency(key).map_err(internal)? {
            if entry.fingerprint.digest != fingerprint.digest {
                let fields = entry.fingerprint.differing_fields(&fingerprint);
                return Err(DomainError::IdempotencyKeyReused { fields }.into());
            }
            if let Some(response) = entry.response {
                state.metrics.idempotent_replays_total.inc();
                return Ok(crate::http::payments::reply_response(
                    crate::domain::machine::Reply::Response {
                        response,
                        replayed: true,
                    },
                ));
            }
        }
    }
    let count = state
        .store
        .webhook_endpoints(merchant_id)
        .map_err(internal)?
        .len();
    let endpoints_max = state.config.webhooks.endpoints_max.get();
    if count >= endpoints_max {
        return Err(DomainError::EndpointsLimit { endpoints_max }.into());
    }
    let body = endpoint.to_value_with_secret().to_string();
    let mut ops = vec![WriteOp::WebhookEndpoint(Box::new(endpoint))];
    if let Some(key) = key {
        let entry = IdempotencyEntry {
            order_no: ENDPOINT_CLAIM.to_owned(),
            fingerprint,
            response: Some(StoredResponse {
                status: StatusCode::CREATED.as_u16(),
                body: body.clone(),
            }),
            created_at_ms: state.clock.now_ms(),
        };
        ops.push(WriteOp::Idempotency { key, entry });
    }
    commit_all(state, ops).await?;
    Ok(json_response(StatusCode::CREATED, body))
}

fn list(state: &State, merchant_id: &str) -> Result<Response, Problem> {
    let data: Vec<serde_json::Value> = state
        .store
        .webhook_endpoints(merchant_id)
        .map_err(internal)?
        .iter()
        .map(WebhookEndpoint::to_value)
        .collect();
    // At most `webhooks.endpoints_max` (≤ 256): one page holds them all.
    Ok(answer(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "has_more": false,
            "url": "/v1/webhook_endpoints",
        }),
    ))
}

async fn update(
    state: &State,
    merchant_id: &str,
    id: &str,
    request: UpdateEndpointBody,
) -> Result<Response, Problem> {
    let check = egress_check(state);
    let now_ms = state.clock.now_ms();
    let endpoint = change(state, merchant_id, id, |endpoint| {
        Ok(request.apply(endpoint, &check, now_ms)?)
    })
    .await?;
    Ok(answer(StatusCode::OK, &endpoint.to_value()))
}

/// Changes the endpoint `id` of `merchant_id`: under the endpoints lock, `edit` gets it as
/// stored now and returns it changed, and the change is committed as one
/// `WriteOp::WebhookEndpoint` (nothing is written when `edit` returns it unchanged). The
/// one write path of the merchant's update and the operator's disable
/// (`http::admin_webhook_endpoints`), so both stop deliveries the same way. Returns the
/// endpoint as stored after.
///
/// # Errors
/// 404 `not_found` when absent or another merchant's; `edit`'s problem; 500 when the
/// commit fails. Nothing is stored on an error.
pub(crate) async fn change(
    state: &State,
    merchant_id: &str,
    id: &str,
    edit: impl FnOnce(WebhookEndpoint) -> Result<WebhookEndpoint, Problem>,
) -> Result<WebhookEndpoint, Problem> {
    let _guard = state.notify.core.endpoints_lock.lock().await;
    let before = find(state, merchant_id, id)?;
    let after = edit(before.clone())?;
    if after != before {
        commit(state, WriteOp::WebhookEndpoint(Box::new(after.clone()))).await?;
    }
    Ok(after)
}

async fn delete(state: &State, merchant_id: &str, id: &str) -> Result<Response, Problem> {
    let _guard = state.notify.core.endpoints_lock.lock().await;
    let endpoint = find(state, merchant_id, id)?;
    commit(
        state,
        WriteOp::RemoveWebhookEndpoint {
            merchant_id: merchant_id.to_owned(),
            id: endpoint.id.clone(),
        },
    )
    .await?;
    Ok(answer(
        StatusCode::OK,
        &json!({"id": endpoint.id, "object": "webhook_endpoint", "deleted": true}),
    ))
}

async fn rotate(state: &State, merchant_id: &str, id: &str) -> Result<Response, Problem> {
    let _guard = state.notify.core.endpoints_lock.lock().await;
    let mut endpoint = find(state, merchant_id, id)?;
    endpoint.rotate(
        new_secret(),
        state.clock.now_ms(),
        state.config.webhooks.rotation_overlap_ms(),
    );
    commit(state, WriteOp::WebhookEndpoint(Box::new(endpoint.clone()))).await?;
    Ok(answer(StatusCode::OK, &endpoint.to_value_with_secret()))
}
