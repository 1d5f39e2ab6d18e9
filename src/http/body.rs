//! Request bodies (DESIGN §2, the strictness paragraph): a declared `Content-Length` over
//! the limit is 413 before any byte is read (so no `100 Continue` is sent), a body is read
//! with a hard byte limit (413 beyond it, whether or not a length was declared), read as
//! JSON only with `Content-Type: application/json` (else 415), parsed refusing a repeated
//! member name (so a fingerprint means one body), then turned into a typed body whose
//! errors name the field (`serde_path_to_error`).

use std::convert::Infallible;
use std::fmt;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use warp::http::HeaderValue;
use warp::Filter;

use crate::http::optional_header;
use crate::problem::Problem;

/// What a request's head says about its body, known before any byte of the body is read.
#[derive(Debug, Clone, Default)]
pub struct BodyHead {
    /// `Content-Length`, when declared (hyper has already refused a malformed one).
    pub content_length: Option<u64>,
    /// `Content-Type`, raw.
    pub content_type: Option<HeaderValue>,
}

impl BodyHead {
    /// Whether `Content-Type` is `application/json` (any parameters, any case).
    pub fn is_json(&self) -> bool {
        self.is_media_type("application/json")
    }

    /// Whether `Content-Type` names `media_type` (lower-case), parameters ignored.
    pub fn is_media_type(&self, media_type: &str) -> bool {
        self.content_type
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
    }
}

/// Extracts the [`BodyHead`] of a request.
pub fn head() -> impl Filter<Extract = (BodyHead,), Error = Infallible> + Clone {
    optional_header("content-length")
        .and(optional_header("content-type"))
        .map(
            |length: Option<HeaderValue>, content_type: Option<HeaderValue>| BodyHead {
                content_length: length
                    .and_then(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok())),
                content_type,
            },
        )
}

/// Reads a JSON request's body under the server's limits ([`read_limited`] with
/// `server.body_limit_bytes` and `server.body_read_timeout_ms`).
///
/// # Errors
/// As [`read_limited`].
pub async fn read_request<S, B>(
    state: &crate::http::State,
    stream: S,
    head: &BodyHead,
) -> Result<Bytes, Problem>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let limit = state.config.server.body_limit_bytes.get();
    read_limited(stream, head, limit, state.config.body_read_timeout()).await
}

/// Reads the whole body within `timeout` (`server.body_read_timeout_ms`), refusing more
/// than `limit` bytes: at once, before polling the body (hyper sends `100 Continue` only
/// when the body is polled), when `head` declares more; else as soon as the bytes read
/// pass it.
///
/// # Errors
/// 413 `payload_too_large`; 408 `request_timeout`; 400 when the body cannot be read.
pub async fn read_limited<S, B>(
    stream: S,
    head: &BodyHead,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, Problem>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if head.content_length.is_some_and(|declared| declared > limit) {
        return Err(too_large(limit));
    }
    tokio::time::timeout(timeout, read_all(stream, limit))
        .await
        .unwrap_or_else(|_| Err(Problem::request_timeout(timeout)))
}

async fn read_all<S, B>(stream: S, limit: u64) -> Result<Bytes, Problem>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|_| Problem::invalid("", "the request body could not be read"))?;
        if (body.len() + chunk.remaining()) as u64 > limit {
            return Err(too_large(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// 413 `payload_too_large`.
pub fn too_large(limit: u64) -> Problem {
    Problem::new(
        413,
        "payload_too_large",
        "Payload too large",
        format!("the request body exceeds {limit} bytes"),
    )
}

/// The JSON object of a request: `bytes` read as JSON only when `head` says
/// `application/json` (an empty body without it is not refused here, but as not JSON).
///
/// # Errors
/// 415 `unsupported_media_type`; 400 `invalid_request` as [`parse_json`].
pub fn json(head: &BodyHead, bytes: &[u8]) -> Result<Value, Problem> {
    if !bytes.is_empty() && !head.is_json() {
        return Err(Problem::unsupported_media_type(
            "a JSON body needs Content-Type: application/json",
        ));
    }
    parse_json(bytes)
}

/// Parses `bytes` as a JSON object, refusing a member name repeated in one object at any
/// depth (serde_json's `Value` keeps the last one, so `{"amount":1,"amount":5000}` would
/// mean 5000 to us and 1 to a proxy that reads the first).
///
/// # Errors
/// 400 `invalid_request` when it is not valid JSON, not an object, or repeats a member
/// (`fields` names it).
pub fn parse_json(bytes: &[u8]) -> Result<Value, Problem> {
    let value = match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(value)) => value,
        Err(e) => {
            let message = e.to_string();
            let field = message
                .strip_prefix(DUPLICATE_PREFIX)
                .and_then(|rest| rest.split('`').next())
                .unwrap_or_default();
            return Err(Problem::invalid(
                field,
                format!("the body is not valid JSON: {message}"),
            ));
        }
    };
    if !value.is_object() {
        return Err(Problem::invalid("", "the body must be a JSON object"));
    }
    Ok(value)
}

/// Start of the error message of a repeated member; the name follows, then a backtick.
const DUPLICATE_PREFIX: &str = "repeated member `";

/// A JSON value deserialized like `serde_json::Value`, except that an object repeating a
/// member name is an error.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    /// A number with no fraction is an integer whatever its spelling (JSON Schema and
    /// RFC 8259 do not tell `12.0` from `12`), so `"amount": 12.0` reads as 12 and
    /// fingerprints as 12; only within ±2^53, where an f64 holds every integer exactly.
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        const EXACT_MAX: f64 = 9_007_199_254_740_992.0;
        if v.fract() == 0.0 && v.abs() <= EXACT_MAX {
            // Exact: |v| <= 2^53 fits i64 and the cast keeps every integer of that range.
            return Ok(Value::from(v as i64));
        }
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Strict::deserialize(deserializer).map(|s| s.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if object.contains_key(&name) {
                return Err(de::Error::custom(format!("{DUPLICATE_PREFIX}{name}`")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(name, value);
        }
        Ok(Value::Object(object))
    }
}

/// Deserializes `value` into `T`, naming the field at fault.
///
/// # Errors
/// 400 `invalid_request` with `fields: [path]`.
pub fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        // The path already ends in an unknown field's name; a missing field is named only
        // in the message.
        let field = if path == "." {
            named_field(&message).unwrap_or_default().to_owned()
        } else {
            path
        };
        Problem::invalid(&field, format!("{field}: {message}"))
    })
}

/// The name in serde's "missing field `x`" or "unknown field `x`, expected …".
fn named_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::payment::CreatePaymentBody;
    use serde_json::json;

    fn field(value: serde_json::Value) -> String {
        typed::<CreatePaymentBody>(value).unwrap_err().fields[0].clone()
    }

    #[test]
    fn errors_name_the_field() {
        let ok = json!({"order_no": "o", "amount": 1, "currency": "USD", "payment_method": "pm"});
        assert!(typed::<CreatePaymentBody>(ok.clone()).is_ok());
        let mut v = ok.clone();
        v["amount"] = json!("12");
        assert_eq!(field(v), "amount");
        let mut v = ok.clone();
        v["amount"] = json!(-5);
        assert_eq!(field(v), "amount");
        let mut v = ok.clone();
        v["extra"] = json!(1);
        assert_eq!(field(v), "extra");
        let mut v = ok.clone();
        v.as_object_mut().unwrap().remove("currency");
        assert_eq!(field(v), "currency");
        let mut v = ok;
        v["metadata"] = json!({"k": 5});
        assert_eq!(field(v), "metadata.k");
    }

    #[test]
    fn repeated_members_are_refused_at_any_depth() {
        let p = parse_json(br#"{"amount":1,"amount":5000}"#).unwrap_err();
        assert_eq!(
            (p.status, p.fields.clone()),
            (400, vec!["amount".to_owned()])
        );
        let p = parse_json(br#"{"metadata":{"k":"a","k":"b"}}"#).unwrap_err();
        assert_eq!(p.fields, vec!["k".to_owned()]);
        let p = parse_json(br#"{"a":[{"x":1,"x":1}]}"#).unwrap_err();
        assert_eq!(p.fields, vec!["x".to_owned()]);
        let same = parse_json(br#"{"a":{"k":1},"b":{"k":1},"n":null,"f":1.5,"l":[true]}"#);
        assert_eq!(
            same.unwrap(),
            json!({"a":{"k":1},"b":{"k":1},"n":null,"f":1.5,"l":[true]})
        );
    }

    #[test]
    fn json_needs_its_media_type() {
        let head = |t: &'static str| BodyHead {
            content_length: None,
            content_type: Some(HeaderValue::from_static(t)),
        };
        assert!(json(&head("application/json"), b"{}").is_ok());
        assert!(json(&head("Application/JSON; charset=utf-8"), b"{}").is_ok());
        assert_eq!(json(&head("text/plain"), b"{}").unwrap_err().status, 415);
        assert_eq!(json(&BodyHead::default(), b"{}").unwrap_err().status, 415);
        assert_eq!(json(&BodyHead::default(), b"").unwrap_err().status, 400);
    }

    #[test]
    fn non_objects_are_refused() {
        assert!(parse_json(b"[1]").is_err());
        assert!(parse_json(b"{").is_err());
        assert!(parse_json(b"{}").is_ok());
    }
}
