//! Byte keys of the sled trees. Components are joined with 0x00, which no component may
//! contain (merchant ids are `[A-Za-z0-9_-]`, order numbers and keys have no control bytes).

use crate::domain::idempotency::{IdempotencyKey, KeyScope};

const SEP: u8 = 0;

/// `orders` tree: `merchant \0 order_no`.
pub fn order_key(merchant_id: &str, order_no: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(merchant_id.len() + order_no.len() + 1);
    key.extend_from_slice(merchant_id.as_bytes());
    key.push(SEP);
    key.extend_from_slice(order_no.as_bytes());
    key
}

/// `idempotency` tree: `merchant \0 tag \0 value`, tag `h` header, `o` order, `r` refund.
pub fn idempotency_key(key: &IdempotencyKey) -> Vec<u8> {
    let (tag, value) = match &key.scope {
        KeyScope::Header(v) => (b'h', v),
        KeyScope::Order(v) => (b'o', v),
        KeyScope::Refund(v) => (b'r', v),
    };
    let mut out = Vec::with_capacity(key.merchant_id.len() + value.len() + 4);
    out.extend_from_slice(key.merchant_id.as_bytes());
    out.push(SEP);
    out.push(tag);
    out.push(SEP);
    out.extend_from_slice(value.as_bytes());
    out
}

/// `expiry_batches` tree: the newest `created_at_ms` of the batch's entries (big-endian),
/// so a range scan below a cutoff yields only batches whose entries have all expired,
/// then 16 random bytes (a ULID) that make the key unique.
pub fn expiry_batch_id(newest_created_at_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&newest_created_at_ms.max(0).to_be_bytes());
    out.extend_from_slice(&ulid::Ulid::new().0.to_be_bytes());
    out
}

/// Parses an idempotency key back from its bytes.
pub fn parse_idempotency_key(bytes: &[u8]) -> Option<IdempotencyKey> {
    let mut parts = bytes.splitn(3, |b| *b == SEP);
    let merchant_id = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let tag = parts.next()?;
    let value = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let scope = match tag {
        b"h" => KeyScope::Header(value),
        b"o" => KeyScope::Order(value),
        b"r" => KeyScope::Refund(value),
        _ => return None,
    };
    Some(IdempotencyKey { merchant_id, scope })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_round_trip() {
        for scope in [
            KeyScope::Header("a:b c".into()),
            KeyScope::Order("o-1".into()),
            KeyScope::Refund("refund:pay_1:op:5".into()),
        ] {
            let key = IdempotencyKey {
                merchant_id: "m_demo".into(),
                scope,
            };
            assert_eq!(
                parse_idempotency_key(&idempotency_key(&key)),
                Some(key.clone())
            );
        }
    }
}
