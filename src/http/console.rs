//! `GET /console` and `GET /console/{asset}`: the operator console (DESIGN §7), a page of
//! plain HTML, CSS and JavaScript in `src/console/`, embedded in the binary at build time
//! (no CDN, no build step). Every action it offers goes through the admin API with the
//! token the operator signs in with (kept in the tab's sessionStorage, sent as Bearer).
//!
//! Every answer carries a Content-Security-Policy that allows only the page's own origin:
//! scripts, styles, images and API calls from `'self'`, nothing inline, no framing. The
//! script builds the page from text nodes only, so whatever a merchant or a provider put in
//! a payment, an event or an error is shown as text, never run as HTML.

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use crate::http::{observe, problem, with_state, State};
use crate::problem::Problem;

/// The policy of every console answer: the page's own origin only, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its name under `/console/` and its media type.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The page itself, served at `/console`.
const INDEX: Asset = Asset {
    name: "",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../console/index.html"),
};

/// The files the page loads, served at `/console/{name}`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../console/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../console/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../console/icon.svg"),
    },
];

pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let page = warp::path!("console")
        .and(crate::http::get())
        .and(with_state(state))
        .then(|state: State| async move {
            observe(&state.metrics, "console", async { asset_response(&INDEX) }).await
        });
    let asset = warp::path!("console" / String)
        .and(crate::http::get())
        .and(with_state(state))
        .then(|name: String, state: State| async move {
            observe(&state.metrics, "console_asset", async {
                match ASSETS.iter().find(|a| a.name == name) {
                    Some(asset) => asset_response(asset),
                    None => problem::response(&Problem::not_found("console file")),
                }
            })
            .await
        });
    page.or(asset).unify()
}

fn asset_response(asset: &Asset) -> Response {
    let mut response = Response::new(asset.body.into());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The files change with the binary: revalidate rather than run a stale script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_files_of_its_own_origin() {
        for asset in ASSETS {
            assert!(
                INDEX.body.contains(&format!("/console/{}", asset.name)),
                "{} is not used by the page",
                asset.name
            );
        }
        for text in std::iter::once(&INDEX).chain(ASSETS).map(|a| a.body) {
            // The SVG namespace is a name, not a place anything is loaded from.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("innerHTML") && !text.contains("outerHTML"));
            assert!(!text.contains("insertAdjacentHTML") && !text.contains("eval("));
        }
        assert!(!INDEX.body.contains("<script>") && !INDEX.body.contains("style="));
    }
}
