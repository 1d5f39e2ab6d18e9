//! Prefixed identifiers (`pay_`, `re_`, `evt_`, `dlv_`, `rec_`, `dis_`) and the id source
//! the state machines draw from, so tests can make ids deterministic.

use std::fmt::Write as _;

/// Id prefixes of DESIGN §2 ("Ids carry a type prefix").
pub mod prefix {
    pub const PAYMENT: &str = "pay_";
    pub const REFUND: &str = "re_";
    pub const EVENT: &str = "evt_";
    pub const DELIVERY: &str = "dlv_";
    pub const RECONCILIATION: &str = "rec_";
    pub const DISCREPANCY: &str = "dis_";
}

/// Longest id we accept in a path (`pay_` + 26-character ULID, with room to spare).
pub const ID_LENGTH_MAX: usize = 64;

/// Where state machines get new ids from.
pub trait IdSource {
    /// A new id: `prefix` followed by a lower-case ULID (time-ordered, 26 characters).
    fn next_id(&mut self, prefix: &str) -> String;
}

/// ULIDs from the clock and the thread RNG (production).
#[derive(Debug, Default)]
pub struct UlidSource;

impl IdSource for UlidSource {
    fn next_id(&mut self, prefix: &str) -> String {
        new_id(prefix)
    }
}

/// A fresh `prefix` + ULID id.
pub fn new_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 26);
    id.push_str(prefix);
    let _ = write!(id, "{}", ulid::Ulid::new().to_string().to_lowercase());
    id
}

/// The id of the order's payment: `pay_` + the first 128 bits of
/// SHA-256(`"paykeep.payment_id" \0 merchant_id \0 order_no`) as 26 lower-case Crockford
/// base32 characters (ULID's alphabet, so the id looks like every other id).
///
/// Derived, not drawn: an order has one payment for its whole life (attempts live inside
/// it), so the id is a function of the payment key. The store then needs no index from the
/// order to the id (docs/durability.md, "Layout"), and a store rebuilt from nothing gives
/// the order the same id again. Only the merchant that owns the order can read it by id.
pub fn payment_id(merchant_id: &str, order_no: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [
        b"paykeep.payment_id".as_slice(),
        merchant_id.as_bytes(),
        order_no.as_bytes(),
    ] {
        hash.update(part);
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    let mut id = String::with_capacity(prefix::PAYMENT.len() + 26);
    id.push_str(prefix::PAYMENT);
    let _ = write!(
        id,
        "{}",
        ulid::Ulid(u128::from_be_bytes(first))
            .to_string()
            .to_lowercase()
    );
    id
}

/// Sequential ids for tests: `pay_0001`, `pay_0002`, …
#[derive(Debug, Default)]
pub struct SequentialIds {
    next: u64,
}

impl IdSource for SequentialIds {
    fn next_id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{:04}", self.next)
    }
}

/// Whether `id` looks like one of ours with `prefix`: the prefix, then 1–60 of `[0-9a-z]`.
pub fn is_valid_id(id: &str, prefix: &str) -> bool {
    id.len() <= ID_LENGTH_MAX
        && id.strip_prefix(prefix).is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulid_ids_are_prefixed_and_valid() {
        let id = new_id(prefix::PAYMENT);
        assert!(id.starts_with("pay_"));
        assert_eq!(id.len(), 30);
        assert!(is_valid_id(&id, prefix::PAYMENT));
        assert!(!is_valid_id(&id, prefix::REFUND));
        assert!(!is_valid_id("pay_", prefix::PAYMENT));
        assert!(!is_valid_id("pay_ABC", prefix::PAYMENT));
    }

    #[test]
    fn a_payment_id_is_a_function_of_the_payment_key() {
        let id = payment_id("m_demo", "o-1");
        assert_eq!(id, payment_id("m_demo", "o-1"));
        assert!(is_valid_id(&id, prefix::PAYMENT));
        assert_eq!(id.len(), 30);
        assert_ne!(id, payment_id("m_demo", "o-2"));
        assert_ne!(id, payment_id("m_dem", "oo-1"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(payment_id("ab", "c"), payment_id("a", "bc"));
    }
}
