//! Problem → HTTP response: `application/problem+json`, `Retry-After` where given,
//! `WWW-Authenticate` on 401, `Connection: close` on 401, 408 and 413.

use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use crate::problem::Problem;

/// The HTTP response of `problem`.
pub fn response(problem: &Problem) -> Response {
    let mut response = Response::new(problem.to_json().into());
    *response.status_mut() =
        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        warp::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(seconds) = problem.retry_after_s {
        headers.insert(warp::http::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    // A 408 or 413 leaves the body unread, and so may a 401 (admin routes check the token
    // first): hyper then closes the connection unless the rest of the body is already
    // buffered. Saying so keeps a client from sending its next request on a connection
    // that is closing.
    if matches!(problem.status, 401 | 408 | 413) {
        headers.insert(
            warp::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    if problem.status == 401 {
        headers.insert(
            warp::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    response
}
