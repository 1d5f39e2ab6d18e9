//! Request bodies: read with a hard byte limit (413 beyond it, whether or not a
//! `Content-Length` was sent), parsed as JSON, then into a typed body whose errors name
//! the field (`serde_path_to_error`).

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Reads the whole body, refusing more than `limit` bytes.
///
/// # Errors
/// 413 `payload_too_large`; 400 when the body cannot be read.
pub async fn read_limited<S, B>(stream: S, limit: u64) -> Result<Bytes, Problem>
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

/// Parses `bytes` as a JSON object.
///
/// # Errors
/// 400 `invalid_request` when it is not valid JSON or not an object.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, Problem> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Problem::invalid("", format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Problem::invalid("", "the body must be a JSON object"));
    }
    Ok(value)
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
    fn non_objects_are_refused() {
        assert!(parse_json(b"[1]").is_err());
        assert!(parse_json(b"{").is_err());
        assert!(parse_json(b"{}").is_ok());
    }
}
