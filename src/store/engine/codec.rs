//! The on-disk value format: one version byte, then bincode 2 (standard config) of the
//! record's serde form. A reader refuses any other version instead of misreading it.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::StoreError;

/// Current format version, the first byte of every stored value.
pub const CODEC_VERSION: u8 = 1;

/// Encodes `value` as `[CODEC_VERSION] ++ bincode`.
///
/// # Errors
/// [`StoreError::Codec`] if serde refuses the value (never for paykeep's own records).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![CODEC_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard()).map_err(
        |e| StoreError::Codec {
            detail: e.to_string(),
        },
    )?;
    Ok(out)
}

/// Decodes a value written by [`encode`].
///
/// # Errors
/// [`StoreError::Codec`] on an unknown version byte, truncated or trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Err(StoreError::Codec {
            detail: "empty value".to_owned(),
        });
    };
    if version != CODEC_VERSION {
        return Err(StoreError::Codec {
            detail: format!("unknown codec version {version}"),
        });
    }
    let (value, read) = bincode::serde::decode_from_slice(rest, bincode::config::standard())
        .map_err(|e| StoreError::Codec {
            detail: e.to_string(),
        })?;
    if read != rest.len() {
        return Err(StoreError::Codec {
            detail: "trailing bytes".to_owned(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::idempotency::{Fingerprint, IdempotencyEntry, StoredResponse};
    use crate::domain::payment::{Payment, PaymentStatus, RefundStatus};
    use proptest::prelude::*;

    fn payment_strategy() -> impl Strategy<Value = Payment> {
        (
            "[a-z0-9]{1,20}",
            any::<u64>(),
            prop::option::of(".{0,30}"),
            prop::collection::btree_map("[a-z]{1,5}", ".{0,10}", 0..4),
            any::<i64>(),
            0u8..3,
        )
            .prop_map(|(order_no, amount, description, metadata, t, s)| Payment {
                id: "pay_x".into(),
                merchant_id: "m".into(),
                order_no,
                amount,
                currency: "USD".into(),
                status: [
                    PaymentStatus::Processing,
                    PaymentStatus::Succeeded,
                    PaymentStatus::Failed,
                ][s as usize],
                payment_method: "pm".into(),
                provider: "simulator".into(),
                provider_payment_id: description.clone(),
                failure_code: None,
                failure_message: description.clone(),
                attempt_count: 3,
                amount_refunded: amount / 2,
                refund_status: RefundStatus::Partial,
                description,
                customer_email: None,
                metadata,
                created_at_ms: t,
                updated_at_ms: t,
                succeeded_at_ms: Some(t),
            })
    }

    proptest! {
        #[test]
        fn payments_round_trip(p in payment_strategy()) {
            let bytes = encode(&p).unwrap();
            prop_assert_eq!(bytes[0], CODEC_VERSION);
            prop_assert_eq!(decode::<Payment>(&bytes).unwrap(), p);
        }

        #[test]
        fn truncated_values_are_refused_not_misread(p in payment_strategy(), cut in 1usize..8) {
            let bytes = encode(&p).unwrap();
            let cut = bytes.len().saturating_sub(cut).max(1);
            prop_assert!(decode::<Payment>(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn entries_round_trip_and_other_versions_are_refused() {
        let entry = IdempotencyEntry {
            order_no: "o".into(),
            fingerprint: Fingerprint::new("POST", "/v1/payments", &serde_json::json!({"a": 1})),
            response: Some(StoredResponse {
                status: 201,
                body: "{}".into(),
            }),
            created_at_ms: 5,
        };
        let mut bytes = encode(&entry).unwrap();
        assert_eq!(decode::<IdempotencyEntry>(&bytes).unwrap(), entry);
        bytes[0] = 9;
        assert!(decode::<IdempotencyEntry>(&bytes).is_err());
    }
}
