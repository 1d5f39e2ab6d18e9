//! RFC 9457 problem details: the one error shape every endpoint answers with, and the one
//! place a [`DomainError`] becomes one (its code, status and title come from
//! [`DomainError::table`]).
//!
//! `code` is stable and documented (README "Error codes"); `type` is
//! `https://paykeep.dev/problems/{code}`. 5xx problems carry a generic detail only.
//!
//! Problem → HTTP response: `application/problem+json`, `Retry-After` where given,
//! `WWW-Authenticate` on 401, `Connection: close` on 401, 408 and 413.

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use crate::domain::error::DomainError;

/// Base of the `type` URI of every problem.
pub const PROBLEM_TYPE_BASE: &str = "https://paykeep.dev/problems/";

/// One problem answer (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status, 400..=599.
    pub status: u16,
    /// Stable machine-readable code, e.g. `idempotency_key_reused`.
    pub code: &'static str,
    /// Short human title, fixed per code.
    pub title: &'static str,
    /// What happened in this request; names fields, never secrets or internals.
    pub detail: String,
    /// The payment concerned, where the code has one (`order_already_paid`).
    pub payment_id: Option<String>,
    /// Fields at fault, where the code has them (validation, idempotency mismatch).
    pub fields: Vec<String>,
    /// Seconds for the `Retry-After` header (409 in use, 503 overload).
    pub retry_after_s: Option<u32>,
}

/// The problem of a domain error: code, status and title from [`DomainError::table`], the
/// detail from its `Display`; 5xx details are the generic ones of that table's variants.
impl From<DomainError> for Problem {
    fn from(error: DomainError) -> Problem {
        let row = error.table();
        let mut problem = Problem::new(row.status, row.code, row.title, error.to_string());
        problem.payment_id = error.payment_id().map(str::to_owned);
        problem.fields = error.fields();
        problem.retry_after_s = error.retry_after_s();
        problem
    }
}

impl Problem {
    pub fn new(
        status: u16,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            code,
            title,
            detail: detail.into(),
            payment_id: None,
            fields: Vec::new(),
            retry_after_s: None,
        }
    }

    /// 400 `invalid_request`: a body or parameter failed validation; `field` is its JSON path.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        let mut p = Problem::new(400, "invalid_request", "Invalid request", detail);
        if !field.is_empty() {
            p.fields.push(field.to_owned());
        }
        p
    }

    /// 404 `not_found` (also for another merchant's resources).
    pub fn not_found(what: &str) -> Self {
        Problem::new(404, "not_found", "Not found", format!("no such {what}"))
    }

    /// 500 `internal_error`; the cause is logged by the caller, never sent.
    pub fn internal() -> Self {
        Problem::new(
            500,
            "internal_error",
            "Internal error",
            "the request could not be completed; it is safe to retry with the same Idempotency-Key",
        )
    }

    /// 503 `overloaded` with `Retry-After: 1`.
    pub fn overloaded() -> Self {
        let mut p = Problem::new(
            503,
            "overloaded",
            "Service overloaded",
            "too many requests in flight; retry after the given delay",
        );
        p.retry_after_s = Some(1);
        p
    }

    /// 415 `unsupported_media_type`: a body sent without the media type its route reads
    /// (DESIGN §2: JSON only with `Content-Type: application/json`).
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Problem::new(
            415,
            "unsupported_media_type",
            "Unsupported media type",
            detail,
        )
    }

    /// 408 `request_timeout`: a declared body did not arrive within
    /// `server.body_read_timeout_ms`.
    pub fn request_timeout(timeout: std::time::Duration) -> Self {
        Problem::new(
            408,
            "request_timeout",
            "Request timeout",
            format!(
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
        )
    }

    /// 405 `method_not_allowed`: a known path, another method (the answer carries `Allow`).
    pub fn method_not_allowed() -> Self {
        Problem::new(
            405,
            "method_not_allowed",
            "Method not allowed",
            "method not allowed on this route",
        )
    }

    pub fn with_payment_id(mut self, payment_id: impl Into<String>) -> Self {
        self.payment_id = Some(payment_id.into());
        self
    }

    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = fields;
        self
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The JSON body: `{type, title, status, code, detail[, payment_id][, fields]}`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "type")]
            kind: String,
            title: &'a str,
            status: u16,
            code: &'a str,
            detail: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            payment_id: Option<&'a str>,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            fields: &'a [String],
        }
        let body = Body {
            kind: format!("{PROBLEM_TYPE_BASE}{}", self.code),
            title: self.title,
            status: self.status,
            code: self.code,
            detail: &self.detail,
            payment_id: self.payment_id.as_deref(),
            fields: &self.fields,
        };
        serde_json::to_string(&body).unwrap_or_else(|_| String::from("{}"))
    }
}

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
