//! The provider idempotency keys of charges and refunds (DESIGN §2, "The provider
//! idempotency key"): derived from the payment key and the client's request, never from an
//! id paykeep generated. A store lost or rebuilt from nothing makes new refund and event
//! ids, but a retried request derives the same provider key again, so the provider replays
//! its first answer instead of moving money a second time.
//!
//! Both keys are a prefix and the first 48 hex digits (192 bits) of a SHA-256 over fields
//! joined by a NUL byte. No field can hold a NUL (`order_no` and `operator_id` refuse
//! control characters, header keys are visible ASCII), so the joined bytes name the fields
//! unambiguously. Stripe allows keys up to 255 characters
//! (docs.stripe.com/api/idempotent_requests); these are 51.

use sha2::{Digest, Sha256};

/// Prefix of a charge's provider key.
pub const CHARGE_KEY_PREFIX: &str = "pk_";
/// Prefix of a refund's provider key.
pub const REFUND_KEY_PREFIX: &str = "rk_";
/// Hex digits of the digest kept in a key.
pub const KEY_DIGEST_HEX_CHARS: usize = 48;

/// The refund's own key, the part of a refund's provider key that tells it apart from the
/// order's other refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundKeySource<'a> {
    /// The refund request's `Idempotency-Key` header value.
    Header(&'a str),
    /// No header: the operator and the amount asked for (the default key's own parts, without
    /// the payment id it also holds).
    Operator { operator_id: &'a str, amount: u64 },
}

/// The provider idempotency key of attempt `attempt` of the order's payment:
/// `pk_` + hex(SHA-256(merchant_id \0 order_no \0 attempt))[..48], `attempt` in decimal.
///
/// Attempts count from 1; each new attempt (a new `Idempotency-Key` on a failed payment)
/// has its own key, and every retry of one attempt sends the same key.
pub fn charge_key(merchant_id: &str, order_no: &str, attempt: u32) -> String {
    let attempt = attempt.to_string();
    derive(
        CHARGE_KEY_PREFIX,
        &[
            merchant_id.as_bytes(),
            order_no.as_bytes(),
            attempt.as_bytes(),
        ],
    )
}

/// The provider idempotency key of a refund of the order's payment:
///
/// - with an `Idempotency-Key` header:
///   `rk_` + hex(SHA-256(merchant_id \0 order_no \0 "header" \0 key))[..48];
/// - without: `rk_` + hex(SHA-256(merchant_id \0 order_no \0 "operator" \0 operator_id \0
///   amount))[..48], `amount` (what the refund takes from the payment, minor units) in
///   decimal.
///
/// The tag (`header`, `operator`) keeps a header key from ever naming the same refund as an
/// operator and amount.
pub fn refund_key(merchant_id: &str, order_no: &str, source: RefundKeySource<'_>) -> String {
    let payment_key = [merchant_id.as_bytes(), order_no.as_bytes()];
    match source {
        RefundKeySource::Header(key) => derive(
            REFUND_KEY_PREFIX,
            &[payment_key[0], payment_key[1], b"header", key.as_bytes()],
        ),
        RefundKeySource::Operator {
            operator_id,
            amount,
        } => {
            let amount = amount.to_string();
            derive(
                REFUND_KEY_PREFIX,
                &[
                    payment_key[0],
                    payment_key[1],
                    b"operator",
                    operator_id.as_bytes(),
                    amount.as_bytes(),
                ],
            )
        }
    }
}

/// `prefix` + the first [`KEY_DIGEST_HEX_CHARS`] hex digits of SHA-256 of `fields` joined
/// by NUL bytes.
fn derive(prefix: &str, fields: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            hasher.update([0u8]);
        }
        hasher.update(field);
    }
    let digest = hex::encode(hasher.finalize());
    format!("{prefix}{}", &digest[..KEY_DIGEST_HEX_CHARS])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed outside Rust: `printf 'm_1\0o-1\0001' | sha256sum` (`\0001` is a NUL, then `1`),
    /// and Python's `hashlib.sha256(b'\0'.join(fields))` for the others.
    #[test]
    fn charge_keys_match_fixed_vectors() {
        assert_eq!(
            charge_key("m_1", "o-1", 1),
            "pk_919ad0b7a2ba68e395bdceb2c1d38b03e8580b9eae2512d1"
        );
        assert_eq!(
            charge_key("m_1", "o-1", 2),
            "pk_d5849b43eef1bdf13cc8e449179dd0306039423d0dcfdac4"
        );
    }

    #[test]
    fn refund_keys_match_fixed_vectors() {
        assert_eq!(
            refund_key("m_1", "o-1", RefundKeySource::Header("r-1")),
            "rk_5a747453a9bd664ffa4fc7a51052079b7044bf915ef53add"
        );
        assert_eq!(
            refund_key(
                "m_1",
                "o-1",
                RefundKeySource::Operator {
                    operator_id: "alice",
                    amount: 500
                }
            ),
            "rk_f3b1f43236ad1be54f78076bb6ae7bdaf152ca836fabd745"
        );
    }

    #[test]
    fn every_input_changes_the_charge_key() {
        let base = charge_key("m_1", "o-1", 1);
        assert_eq!(base.len(), 3 + KEY_DIGEST_HEX_CHARS);
        assert_eq!(
            charge_key("m_1", "o-1", 1),
            base,
            "pure: the same inputs, the same key"
        );
        assert_ne!(
            charge_key("m_1", "o-1", 2),
            base,
            "each attempt has its own key"
        );
        assert_ne!(charge_key("m_2", "o-1", 1), base);
        assert_ne!(charge_key("m_1", "o-2", 1), base);
        // The separator keeps field boundaries: "m_1" + "o-1" is not "m_1o" + "-1".
        assert_ne!(charge_key("m_1o", "-1", 1), base);
        assert_ne!(charge_key("m_1", "o-11", 1), charge_key("m_1", "o-1", 11));
    }

    #[test]
    fn every_input_changes_the_refund_key() {
        let operator = |operator_id, amount| RefundKeySource::Operator {
            operator_id,
            amount,
        };
        let base = refund_key("m_1", "o-1", operator("alice", 500));
        assert!(base.starts_with("rk_"));
        assert_eq!(base.len(), 3 + KEY_DIGEST_HEX_CHARS);
        assert_eq!(refund_key("m_1", "o-1", operator("alice", 500)), base);
        assert_ne!(refund_key("m_1", "o-1", operator("alice", 501)), base);
        assert_ne!(refund_key("m_1", "o-1", operator("bob", 500)), base);
        assert_ne!(refund_key("m_1", "o-2", operator("alice", 500)), base);
        assert_ne!(refund_key("m_2", "o-1", operator("alice", 500)), base);
        let header = refund_key("m_1", "o-1", RefundKeySource::Header("r-1"));
        assert_ne!(
            header,
            refund_key("m_1", "o-1", RefundKeySource::Header("r-2"))
        );
        assert_ne!(
            header,
            refund_key("m_1", "o-2", RefundKeySource::Header("r-1"))
        );
        // A header key naming the operator is still another refund than the operator's.
        assert_ne!(
            refund_key("m_1", "o-1", RefundKeySource::Header("alice")),
            base
        );
    }

    #[test]
    fn charge_and_refund_keys_never_meet() {
        let charge = charge_key("m_1", "o-1", 1);
        let refund = refund_key("m_1", "o-1", RefundKeySource::Header("1"));
        assert_ne!(charge[3..], refund[3..]);
        assert!(charge.starts_with("pk_") && refund.starts_with("rk_"));
    }
}
