//! `X-Request-Id` (DESIGN §3): every request carries one, the client's if it sent a valid
//! one, else a new ULID; the answer echoes it, and it is on every log line the request
//! causes (the request's span, which the shard job runs in too).
//!
//! A valid id is 1..=[`REQUEST_ID_LEN_MAX`] visible ASCII characters, sent once. Anything
//! else is replaced by a new ULID, and the answer says why in [`REPLACED_HEADER`]
//! (`too_long`, `not_visible_ascii`, `empty`, `repeated`), so a client that logs its own
//! id can tell its line from ours.
//!
//! While the request runs, [`note_route`] and [`note_merchant`] fill in what the access log
//! line (`http::access_log`) reports besides: the route label and the authenticated
//! merchant. They live in a task-local set by the access log for the request's future.

use std::sync::{Arc, Mutex};

use warp::http::{HeaderMap, HeaderValue};

/// The request id header, in requests and answers.
pub const HEADER: &str = "x-request-id";
/// Present on an answer whose request id was replaced; its value says why.
pub const REPLACED_HEADER: &str = "x-request-id-replaced";
/// Longest request id accepted from a client, in characters (issue 17).
pub const REQUEST_ID_LEN_MAX: usize = 128;

/// The request id of a request, and why the client's was replaced (if it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId {
    pub id: String,
    pub replaced: Option<&'static str>,
}

/// The id for a request with `headers`: the client's valid `X-Request-Id`, else a new one.
pub fn accept(headers: &HeaderMap) -> RequestId {
    let mut values = headers.get_all(HEADER).iter();
    let Some(first) = values.next() else {
        return fresh(None);
    };
    if values.next().is_some() {
        return fresh(Some("repeated"));
    }
    match check(first) {
        Ok(id) => RequestId { id, replaced: None },
        Err(why) => fresh(Some(why)),
    }
}

fn check(value: &HeaderValue) -> Result<String, &'static str> {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Err("empty");
    }
    if bytes.len() > REQUEST_ID_LEN_MAX {
        return Err("too_long");
    }
    if !bytes.iter().all(u8::is_ascii_graphic) {
        return Err("not_visible_ascii");
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn fresh(replaced: Option<&'static str>) -> RequestId {
    RequestId {
        id: ulid::Ulid::new().to_string(),
        replaced,
    }
}

/// What a request's handlers learn that its access-log line reports.
#[derive(Debug, Default)]
pub struct Noted {
    /// The route label of `http_requests_total` (`unmatched` when none took it).
    pub route: Option<&'static str>,
    /// The merchant the request authenticated as.
    pub merchant_id: Option<String>,
}

tokio::task_local! {
    /// The running request's [`Noted`], set by `http::access_log`.
    pub static NOTED: Arc<Mutex<Noted>>;
}

/// Records the route label of the running request (no-op outside a request).
pub fn note_route(route: &'static str) {
    let _ = NOTED.try_with(|noted| {
        if let Ok(mut noted) = noted.lock() {
            noted.route = Some(route);
        }
    });
}

/// Records the merchant the running request authenticated as, for its access-log line and
/// the `merchant_id` field of its span (so later lines of the request carry it too).
pub fn note_merchant(merchant_id: &str) {
    tracing::Span::current().record("merchant_id", merchant_id);
    let _ = NOTED.try_with(|noted| {
        if let Ok(mut noted) = noted.lock() {
            noted.merchant_id = Some(merchant_id.to_owned());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(HEADER, HeaderValue::from_bytes(v).expect("header"));
        }
        headers
    }

    #[test]
    fn a_valid_client_id_is_kept() {
        let id = "req-42_A.b:c/d".to_owned();
        assert_eq!(
            accept(&with(&[id.as_bytes()])),
            RequestId { id, replaced: None }
        );
        let longest = "x".repeat(REQUEST_ID_LEN_MAX);
        assert_eq!(accept(&with(&[longest.as_bytes()])).id, longest);
    }

    #[test]
    fn a_missing_id_is_made_without_saying_replaced() {
        let made = accept(&HeaderMap::new());
        assert_eq!(made.replaced, None);
        assert!(made.id.parse::<ulid::Ulid>().is_ok(), "{}", made.id);
    }

    #[test]
    fn bad_ids_are_replaced_and_say_why() {
        let too_long = "x".repeat(REQUEST_ID_LEN_MAX + 1);
        let cases: [(&[&[u8]], &str); 5] = [
            (&[too_long.as_bytes()], "too_long"),
            (&[b"has space"], "not_visible_ascii"),
            (&[b"caf\xc3\xa9"], "not_visible_ascii"),
            (&[b""], "empty"),
            (&[b"a", b"b"], "repeated"),
        ];
        for (values, why) in cases {
            let got = accept(&with(values));
            assert_eq!(got.replaced, Some(why));
            assert!(got.id.parse::<ulid::Ulid>().is_ok());
        }
    }
}
