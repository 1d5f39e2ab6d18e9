//! The on-disk value format: one format byte, then bincode 2 (standard config) of the
//! record's serde form, plain (format 1) or, for a value over [`COMPRESS_MIN_BYTES`],
//! zstd-compressed (format 2) when that is shorter. A reader refuses any other format
//! instead of misreading it.
//!
//! Why only large values: a typical payment or idempotency entry is a few hundred bytes and
//! compressing it costs the committer thread more than it saves; a record with its fields
//! near their maximum sizes is tens of KiB, mostly the merchant's text, which would
//! otherwise be stored at over three times the request (docs/durability.md, "Layout").

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::StoreError;

/// Format byte of a plain value: `[CODEC_VERSION] ++ bincode`.
pub const CODEC_VERSION: u8 = 1;
/// Format byte of a compressed value: `[CODEC_ZSTD] ++ zstd(bincode)`.
pub const CODEC_ZSTD: u8 = 2;
/// Encoded values longer than this are offered to zstd.
pub const COMPRESS_MIN_BYTES: usize = 1024;
/// zstd's level: its fastest, as the committer thread pays for it.
const ZSTD_LEVEL: i32 = 1;

/// Encodes `value` as `[CODEC_VERSION] ++ bincode`, or `[CODEC_ZSTD] ++ zstd(bincode)`
/// when the plain form is over [`COMPRESS_MIN_BYTES`] and compression makes it shorter.
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
    if out.len() > COMPRESS_MIN_BYTES {
        if let Ok(compressed) = zstd::bulk::compress(&out[1..], ZSTD_LEVEL) {
            if compressed.len() + 1 < out.len() {
                let mut packed = Vec::with_capacity(compressed.len() + 1);
                packed.push(CODEC_ZSTD);
                packed.extend_from_slice(&compressed);
                return Ok(packed);
            }
        }
    }
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
    let unpacked;
    let rest = match version {
        CODEC_VERSION => rest,
        CODEC_ZSTD => {
            unpacked = zstd::decode_all(rest).map_err(|e| StoreError::Codec {
                detail: format!("zstd: {e}"),
            })?;
            unpacked.as_slice()
        }
        _ => {
            return Err(StoreError::Codec {
                detail: format!("unknown codec version {version}"),
            })
        }
    };
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

    /// A large value is stored compressed and read back whole; a small one stays plain
    /// (compressing it would cost the committer more than it saves).
    #[test]
    fn large_values_are_compressed_and_small_ones_are_not() {
        let entry = |body: String| IdempotencyEntry {
            order_no: "o".into(),
            fingerprint: Fingerprint::new("POST", "/v1/payments", &serde_json::json!({})),
            response: Some(StoredResponse { status: 201, body }),
            created_at_ms: 5,
        };
        let small = entry("{}".into());
        assert_eq!(encode(&small).unwrap()[0], CODEC_VERSION);
        let large = entry(format!(
            "{{\"description\":\"{}\"}}",
            "paid in full ".repeat(400)
        ));
        let bytes = encode(&large).unwrap();
        assert_eq!(bytes[0], CODEC_ZSTD);
        assert!(bytes.len() < large.response.as_ref().unwrap().body.len() / 4);
        assert_eq!(decode::<IdempotencyEntry>(&bytes).unwrap(), large);
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() / 2);
        assert!(
            decode::<IdempotencyEntry>(&cut).is_err(),
            "a cut frame is refused"
        );
    }
}
