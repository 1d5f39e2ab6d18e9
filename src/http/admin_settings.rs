//! `GET /admin/settings/notifications` (the settings in force, secrets redacted, plus the
//! paused channels) and `PUT /admin/settings/notifications` (the `[notifications]`
//! section as JSON, same keys, any subset: validated, persisted, in force at once; a
//! redacted secret sent back unchanged keeps its value; naming a paused channel's section
//! resumes it).

use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::http::admin;
use crate::http::{body, respond, with_authorization, State};
use crate::notify::ops::OpsError;
use crate::notify::settings::SettingsError;
use crate::problem::Problem;

pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let get = warp::path!("admin" / "settings" / "notifications")
        .and(crate::http::get())
        .and(with_authorization(state))
        .then(|state: State, authorization: Option<String>| async move {
            respond(&state.metrics, "admin_settings_get", async {
                admin::authorize(&state, authorization.as_deref())?;
                Ok(crate::http::admin::answer(
                    &state,
                    StatusCode::OK,
                    state.notify.core.settings.redacted_json().to_string(),
                ))
            })
            .await
        });
    let put = warp::path!("admin" / "settings" / "notifications")
        .and(warp::put())
        .and(with_authorization(state))
        .and(body::head())
        .and(warp::body::stream())
        .then(
            |state: State, authorization: Option<String>, head: body::BodyHead, stream| async move {
                respond(&state.metrics, "admin_settings_put", async {
                    admin::authorize(&state, authorization.as_deref())?;
                    let bytes = body::read_request(&state, stream, &head).await?;
                    put(&state, &head, &bytes).await
                })
                .await
            },
        );
    get.or(put).unify()
}

async fn put(state: &State, head: &body::BodyHead, bytes: &[u8]) -> Result<Response, Problem> {
    let value = body::json(head, bytes)?;
    match state.notify.core.apply_settings(&value).await {
        Ok(settings) => Ok(crate::http::admin::answer(
            state,
            StatusCode::OK,
            settings.to_string(),
        )),
        Err(OpsError::Settings(SettingsError::Malformed { detail })) => {
            Err(Problem::invalid("", detail))
        }
        Err(OpsError::Settings(SettingsError::Invalid { key, reason })) => Err(Problem::new(
            422,
            "invalid_settings",
            "Invalid settings",
            format!("{key}: {reason}"),
        )
        .with_fields(vec![key])),
        Err(OpsError::Store(e)) => Err(admin::internal(e)),
        Err(_) => Err(Problem::internal()),
    }
}
