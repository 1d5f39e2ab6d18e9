//! Byte keys of the sled trees. Components are joined with 0x00, which no component may
//! contain (merchant ids are `[A-Za-z0-9_-]`, order numbers and keys have no control bytes).

use crate::domain::idempotency::{IdempotencyKey, KeyScope};

const SEP: u8 = 0;

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
