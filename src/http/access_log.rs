//! The access log (DESIGN §3): a service layer around every request that gives it a
//! request id ([`request_id`]), runs it inside a `request` span carrying that id (so every
//! line it causes, the shard job's included, carries it), echoes the id in the answer, and
//! writes one line when the answer is ready: `method, route, status, duration_ms,
//! request_id, merchant_id` (target `paykeep::access`, level info).
//!
//! The line never holds a header or a body: nothing secret can reach it. `duration_ms` runs
//! until the answer's head is ready (a streamed body is not waited for).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::Instrument;
use warp::http::{HeaderValue, Request, Response};
use warp::hyper::service::Service;
use warp::hyper::Body;

use crate::http::request_id::{self, Noted, NOTED};

/// The layer: wraps the service of `http::routes` (or the sandbox's).
#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S> AccessLog<S> {
    pub fn new(inner: S) -> AccessLog<S> {
        AccessLog { inner }
    }
}

impl<S> Service<Request<Body>> for AccessLog<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let id = request_id::accept(request.headers());
        let method = request.method().clone();
        // Handlers see the id that is used, not a refused one.
        if let Ok(value) = HeaderValue::from_str(&id.id) {
            request.headers_mut().insert(request_id::HEADER, value);
        }
        let span = tracing::info_span!(
            "request",
            request_id = %id.id,
            merchant_id = tracing::field::Empty
        );
        let noted = Arc::new(Mutex::new(Noted::default()));
        let handled = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let handled = NOTED.scope(Arc::clone(&noted), handled);
        Box::pin(async move {
            let Ok(mut response) = handled.instrument(span.clone()).await;
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&id.id) {
                headers.insert(request_id::HEADER, value);
            }
            if let Some(why) = id.replaced {
                headers.insert(request_id::REPLACED_HEADER, HeaderValue::from_static(why));
            }
            let (route, merchant_id) = noted
                .lock()
                .map(|n| (n.route, n.merchant_id.clone()))
                .unwrap_or_default();
            let _entered = span.enter();
            tracing::info!(
                target: "paykeep::access",
                method = %method,
                route = route.unwrap_or("unmatched"),
                status = response.status().as_u16(),
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                request_id = %id.id,
                merchant_id = merchant_id.as_deref().unwrap_or(""),
                "request"
            );
            Ok(response)
        })
    }
}
