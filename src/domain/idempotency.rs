//! Idempotency keys, request fingerprints and stored responses (DESIGN §2 "Idempotency").
//!
//! A key is either an `Idempotency-Key` header value (kept `idempotency.retention_s`, then
//! swept) or, without the header, the order itself (kept forever). The entry remembers the
//! request's fingerprint — SHA-256 of method, path and the canonical JSON of the body,
//! truncated to 128 bits — and, once the request finished, the exact response to replay.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::error::DomainError;

/// `Idempotency-Key` length bound (DESIGN §2: 1–255 visible ASCII characters).
pub const HEADER_KEY_CHARS_MAX: usize = 255;

/// What an idempotency key is made of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyScope {
    /// An `Idempotency-Key` header value.
    Header(String),
    /// No header on a create: the order is the key.
    Order(String),
    /// No header on a refund: `refund:{payment_id}:{operator_id}:{amount}`.
    Refund(String),
}

/// An idempotency key within one merchant's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey {
    pub merchant_id: String,
    pub scope: KeyScope,
}

impl IdempotencyKey {
    /// Whether the entry is swept after the retention period (header keys only).
    pub fn expires(&self) -> bool {
        matches!(self.scope, KeyScope::Header(_))
    }
}

/// Validates an `Idempotency-Key` header value.
///
/// # Errors
/// 400 `invalid_request` naming `Idempotency-Key`.
pub fn validate_header_key(value: &str) -> Result<(), DomainError> {
    let visible = value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if value.is_empty() || value.len() > HEADER_KEY_CHARS_MAX || !visible {
        return Err(DomainError::invalid(
            "Idempotency-Key",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        ));
    }
    Ok(())
}

/// Bytes of SHA-256 kept of a request's whole fingerprint (128 bits).
pub const DIGEST_BYTES: usize = 16;
/// Bytes of SHA-256 kept per top-level body member.
pub const FIELD_DIGEST_BYTES: usize = 4;

/// The identity of one request: method, path, and digests of the canonical body.
///
/// The body itself is not kept: a digest per top-level member is enough to name the
/// fields a reused key changed, and keeping the body would store a second copy of every
/// request for as long as its key lives (docs/durability.md, "Layout"). The digests are
/// truncated SHA-256, as short as their jobs allow, since they are random bytes no
/// compression shortens and every idempotency entry holds them: 128 bits decide whether a
/// reused key's request is the same one; 32 bits per member only name what changed (a
/// changed member goes unnamed with odds of 2⁻³², and the request is still refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub method: String,
    pub path: String,
    /// Per top-level body member (`null` members left out), in name order: its name and the
    /// first [`FIELD_DIGEST_BYTES`] bytes of SHA-256 of its canonical JSON.
    pub fields: Vec<(String, [u8; FIELD_DIGEST_BYTES])>,
    /// The first [`DIGEST_BYTES`] bytes of SHA-256 of `method \n path \n canonical body`
    /// (canonical JSON: keys sorted, null members dropped, no whitespace).
    pub digest: [u8; DIGEST_BYTES],
}

impl Fingerprint {
    /// Fingerprints a request whose body was already parsed as JSON.
    pub fn new(method: &str, path: &str, body: &serde_json::Value) -> Fingerprint {
        let mut canonical = Vec::with_capacity(256);
        write_canonical(body, &mut canonical);
        let mut hasher = Sha256::new();
        hasher.update(method.as_bytes());
        hasher.update(b"\n");
        hasher.update(path.as_bytes());
        hasher.update(b"\n");
        hasher.update(&canonical);
        let mut fields = Vec::new();
        if let serde_json::Value::Object(map) = body {
            let mut member = Vec::with_capacity(64);
            for (name, value) in map.iter().filter(|(_, v)| !v.is_null()) {
                member.clear();
                write_canonical(value, &mut member);
                fields.push((name.clone(), truncated(&Sha256::digest(&member))));
            }
            fields.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        Fingerprint {
            method: method.to_owned(),
            path: path.to_owned(),
            fields,
            digest: truncated(hasher.finalize().as_slice()),
        }
    }

    /// Names what differs between two requests: `path` when method or path differ, else the
    /// top-level body fields whose values differ (sorted).
    pub fn differing_fields(&self, other: &Fingerprint) -> Vec<String> {
        if self.method != other.method || self.path != other.path {
            return vec!["path".to_owned()];
        }
        let a: std::collections::BTreeMap<&str, &[u8; FIELD_DIGEST_BYTES]> =
            self.fields.iter().map(|(k, d)| (k.as_str(), d)).collect();
        let b: std::collections::BTreeMap<&str, &[u8; FIELD_DIGEST_BYTES]> =
            other.fields.iter().map(|(k, d)| (k.as_str(), d)).collect();
        let keys: BTreeSet<&str> = a.keys().chain(b.keys()).copied().collect();
        keys.into_iter()
            .filter(|k| a.get(k) != b.get(k))
            .map(str::to_owned)
            .collect()
    }
}

/// `value` as canonical JSON text (what the digest is taken over).
pub fn canonical(value: &serde_json::Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
}

/// The first `N` bytes of a SHA-256 digest.
fn truncated<const N: usize>(digest: &[u8]) -> [u8; N] {
    let mut short = [0u8; N];
    short.copy_from_slice(&digest[..N]);
    short
}

/// Writes `value` as canonical JSON: object keys sorted, `null` members left out, no
/// whitespace, strings and numbers as serde_json writes them. Written straight into `out`
/// (no intermediate strings: this runs on every create and replay).
fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> =
                map.iter().filter(|(_, v)| !v.is_null()).collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(key, out);
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        other => write_scalar(other, out),
    }
}

/// serde_json's compact form of a string, number, boolean or null.
fn write_scalar<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing JSON into a Vec cannot fail for these types.
    let _ = serde_json::to_writer(out, value);
}

/// A response as first sent, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What is stored under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyEntry {
    /// The order (payment key) the key belongs to.
    pub order_no: String,
    pub fingerprint: Fingerprint,
    /// `None` while the first request runs; found `None` only after a crash cut it short.
    pub response: Option<StoredResponse>,
    pub created_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_ignores_order_whitespace_and_nulls() {
        let a = Fingerprint::new(
            "POST",
            "/v1/payments",
            &json!({"b": 1, "a": {"y": 2, "x": null}}),
        );
        let b = Fingerprint::new("POST", "/v1/payments", &json!({"a": {"y": 2}, "b": 1}));
        assert_eq!(a, b);
        assert_eq!(
            canonical(&json!({"b": 1, "a": {"y": 2, "x": null}})),
            r#"{"a":{"y":2},"b":1}"#
        );
        let names: Vec<&str> = a.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    /// Stored fingerprints must stay comparable across versions: the canonical bytes and
    /// the digest (SHA-256 of `method\npath\ncanonical`, its first 128 bits) are pinned.
    #[test]
    fn canonical_bytes_and_digest_are_stable() {
        let f = Fingerprint::new(
            "POST",
            "/v1/payments",
            &json!({"b": [1, 2.5, true], "a": "x\"y", "c": null}),
        );
        assert_eq!(
            canonical(&json!({"b": [1, 2.5, true], "a": "x\"y", "c": null})),
            r#"{"a":"x\"y","b":[1,2.5,true]}"#
        );
        assert_eq!(hex::encode(f.digest), "3934609f329dcb60a32413d4822ca797");
    }

    #[test]
    fn differing_fields_are_named() {
        let a = Fingerprint::new(
            "POST",
            "/v1/payments",
            &json!({"amount": 1, "currency": "USD", "o": 1}),
        );
        let b = Fingerprint::new(
            "POST",
            "/v1/payments",
            &json!({"amount": 2, "currency": "EUR", "o": 1}),
        );
        assert_eq!(a.differing_fields(&b), vec!["amount", "currency"]);
        let c = Fingerprint::new("POST", "/v1/payments/x/refunds", &json!({"amount": 1}));
        assert_eq!(a.differing_fields(&c), vec!["path"]);
    }

    #[test]
    fn header_key_rules() {
        assert!(validate_header_key("abc-123").is_ok());
        assert!(validate_header_key("").is_err());
        assert!(validate_header_key(&"k".repeat(256)).is_err());
        assert!(validate_header_key("tab\there").is_err());
        assert!(validate_header_key("ключ").is_err());
    }
}
