//! The on-disk value format: one format byte, then bincode 2 (standard config) of the
//! record's serde form, plain (format 1) or compressed with zstd against paykeep's built-in
//! dictionary (format 2) when that is shorter. A reader refuses any other format instead
//! of misreading it.
//!
//! Why a dictionary: a typical record is a few hundred bytes, mostly the same member names
//! and values in every record (a payment's JSON response alone is about 530 bytes), and
//! zstd without a dictionary finds too little in so few bytes to save a third. The
//! dictionary ([`DICTIONARY`], `codec_dictionary.zstd`) is a trained zstd dictionary
//! (content and entropy tables) made by `examples/codec_dictionary.rs` from the records
//! paykeep stores for varied merchants and requests; against it the bench's idempotency
//! entry with its response keeps under a third, its payment about two thirds
//! (docs/durability.md, "Layout").
//! It is part of the on-disk format: its digest is pinned by a test, and changing it needs a
//! new schema version.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;
use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::stream::raw::CParameter;

use crate::store::StoreError;

/// Format byte of a plain value: `[CODEC_VERSION] ++ bincode`.
pub const CODEC_VERSION: u8 = 1;
/// Format byte of a compressed value: `[CODEC_ZSTD] ++ zstd(bincode)`, one zstd frame
/// (RFC 8878) with its content size and without the dictionary's id (there is one
/// dictionary, [`DICTIONARY`]).
pub const CODEC_ZSTD: u8 = 2;
/// Encoded values at least this long are offered to zstd: shorter ones (an index entry,
/// a setting) cannot win back a frame's header of about ten bytes.
pub const COMPRESS_MIN_BYTES: usize = 64;
/// The longest value a compressed frame may claim to hold (a record at every field's
/// maximum is tens of KiB): a frame claiming more is refused, not allocated.
pub const DECOMPRESSED_BYTES_MAX: usize = 16 << 20;
/// What decoding one value may claim (bincode counts each container's memory against it):
/// a damaged length prefix is refused instead of allocated. Far above any record, the
/// largest being a log record of a whole group at maximum field sizes.
pub const DECODE_CLAIM_BYTES_MAX: usize = 64 << 20;
/// zstd's level: 1, its fastest that entropy-codes literals. Against the trained
/// dictionary's tables it is as fast as level −1 on typical records and about a tenth smaller
/// (BENCHMARKS.md), and a record at maximum field sizes, mostly the merchant's literal text,
/// needs the entropy coding to stay within `tests/max_size.rs`'s 3× bound.
const ZSTD_LEVEL: i32 = 1;
/// The trained dictionary of format 2 (`examples/codec_dictionary.rs` made it).
pub const DICTIONARY: &[u8] = include_bytes!("codec_dictionary.zstd");

struct Dictionaries {
    encoder: EncoderDictionary<'static>,
    decoder: DecoderDictionary<'static>,
}

fn dictionaries() -> &'static Dictionaries {
    static DICTIONARIES: OnceLock<Dictionaries> = OnceLock::new();
    DICTIONARIES.get_or_init(|| Dictionaries {
        encoder: EncoderDictionary::copy(DICTIONARY, ZSTD_LEVEL),
        decoder: DecoderDictionary::copy(DICTIONARY),
    })
}

thread_local! {
    /// One zstd context per thread that encodes or decodes (contexts are not shareable and
    /// cost more to make than to use).
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn codec_error(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Codec {
        detail: detail.to_string(),
    }
}

/// Encodes `value` as `[CODEC_VERSION] ++ bincode`, or `[CODEC_ZSTD] ++ zstd(bincode)`
/// when the plain form is at least [`COMPRESS_MIN_BYTES`] (and at most
/// [`DECOMPRESSED_BYTES_MAX`], what a reader accepts from a frame) and compression makes it
/// shorter.
///
/// # Errors
/// [`StoreError::Codec`] if serde refuses the value (never for paykeep's own records).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    compress(encode_plain(value)?)
}

/// `out` (a plain value) compressed when that is allowed and shorter, else as it is.
fn compress(out: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if out.len() < COMPRESS_MIN_BYTES || out.len() > DECOMPRESSED_BYTES_MAX {
        return Ok(out);
    }
    let compressed = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::with_prepared_dictionary(&dictionaries().encoder)
                .and_then(|mut c| c.set_parameter(CParameter::DictIdFlag(false)).map(|()| c))
                .ok();
        }
        cell.as_mut().and_then(|c| c.compress(&out[1..]).ok())
    });
    match compressed {
        Some(compressed) if compressed.len() + 1 < out.len() => {
            let mut packed = Vec::with_capacity(compressed.len() + 1);
            packed.push(CODEC_ZSTD);
            packed.extend_from_slice(&compressed);
            Ok(packed)
        }
        _ => Ok(out),
    }
}

/// Encodes `value` as `[CODEC_VERSION] ++ bincode`, never compressed: for a value made of
/// values [`encode`] already compressed (a group's log record), where a second pass would
/// cost the committer and find nothing.
///
/// # Errors
/// As [`encode`].
pub fn encode_plain<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![CODEC_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .map_err(codec_error)?;
    Ok(out)
}

/// Decodes a value written by [`encode`] or [`encode_plain`].
///
/// # Errors
/// [`StoreError::Codec`] on an unknown format byte, a damaged or oversized frame, or
/// truncated or trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    let plain = unpack(bytes)?;
    let config = bincode::config::standard().with_limit::<DECODE_CLAIM_BYTES_MAX>();
    let (value, read) = bincode::serde::decode_from_slice(&plain, config).map_err(codec_error)?;
    if read != plain.len() {
        return Err(codec_error("trailing bytes"));
    }
    Ok(value)
}

/// The bincode bytes of a value written by [`encode`] or [`encode_plain`], without its
/// format byte, decompressed if it was compressed (what `examples/codec_dictionary.rs`
/// trains on).
///
/// # Errors
/// [`StoreError::Codec`] on an empty value, an unknown format byte, or a damaged or
/// oversized frame.
pub fn unpack(bytes: &[u8]) -> Result<Cow<'_, [u8]>, StoreError> {
    match bytes.split_first() {
        None => Err(codec_error("empty value")),
        Some((&CODEC_VERSION, rest)) => Ok(Cow::Borrowed(rest)),
        Some((&CODEC_ZSTD, rest)) => decompress(rest).map(Cow::Owned),
        Some((version, _)) => Err(codec_error(format!("unknown codec version {version}"))),
    }
}

/// One zstd frame made against [`DICTIONARY`], to exactly the size its header states.
fn decompress(frame: &[u8]) -> Result<Vec<u8>, StoreError> {
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= DECOMPRESSED_BYTES_MAX as u64 => size as usize,
        Ok(Some(size)) => return Err(codec_error(format!("zstd: frame claims {size} bytes"))),
        Ok(None) | Err(_) => return Err(codec_error("zstd: no frame content size")),
    };
    if zstd::zstd_safe::find_frame_compressed_size(frame).ok() != Some(frame.len()) {
        return Err(codec_error("zstd: not exactly one whole frame"));
    }
    let unpacked = DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell =
                zstd::bulk::Decompressor::with_prepared_dictionary(&dictionaries().decoder).ok();
        }
        match cell.as_mut() {
            Some(d) => d
                .decompress(frame, size)
                .map_err(|e| codec_error(format!("zstd: {e}"))),
            None => Err(codec_error("zstd: no decompression context")),
        }
    })?;
    if unpacked.len() != size {
        return Err(codec_error("zstd: frame shorter than its header says"));
    }
    Ok(unpacked)
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
            prop_assert!(bytes[0] == CODEC_VERSION || bytes[0] == CODEC_ZSTD);
            prop_assert_eq!(decode::<Payment>(&bytes).unwrap(), p);
        }

        #[test]
        fn truncated_values_are_refused_not_misread(p in payment_strategy(), cut in 1usize..8) {
            let bytes = encode(&p).unwrap();
            let cut = bytes.len().saturating_sub(cut).max(1);
            prop_assert!(decode::<Payment>(&bytes[..cut]).is_err());
        }

        #[test]
        fn any_flipped_byte_is_refused_or_read_as_some_value_never_a_panic(
            p in payment_strategy(), at in any::<prop::sample::Index>(), flip in 1u8..=255,
        ) {
            let mut bytes = encode(&p).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            let _ = decode::<Payment>(&bytes);
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

    /// The dictionary is part of the on-disk format: changing a byte of it makes every
    /// stored compressed value unreadable, so it changes only with a new schema version
    /// (`SCHEMA_VERSION`), and then this digest with it.
    #[test]
    fn the_dictionary_is_frozen() {
        use sha2::{Digest, Sha256};
        assert_eq!(
            hex::encode(Sha256::digest(DICTIONARY)),
            "38c976adf270fb083b1f9d3ae8797ab239f2d804f45ea8b0152ec1d979087b62"
        );
    }

    /// A typical create's records are stored at a fraction of their plain size: the
    /// entry with its response JSON keeps under a third, even this short payment (short ids)
    /// under four fifths.
    #[test]
    fn typical_records_are_compressed_against_the_dictionary() {
        let payment = crate::domain::test_fixtures::paid_payment(
            "pay_5N2JQ8W3YH0C4RXK7D1TBA6VFM",
            "m_bench",
            "bench-17-4242",
            1999,
            1_764_633_600_123,
        );
        let entry = IdempotencyEntry {
            order_no: payment.order_no.clone(),
            fingerprint: Fingerprint::new(
                "POST",
                "/v1/payments",
                &serde_json::json!({"order_no": "bench-17-4242", "amount": 1999,
                    "currency": "USD", "payment_method": "pm_sim_ok",
                    "description": "bench order"}),
            ),
            response: Some(StoredResponse {
                status: 201,
                body: payment.to_json(),
            }),
            created_at_ms: 5,
        };
        let plain = encode_plain(&entry).unwrap().len();
        let bytes = encode(&entry).unwrap();
        assert_eq!(bytes[0], CODEC_ZSTD);
        assert!(
            bytes.len() * 3 < plain,
            "{} bytes compressed of {plain}",
            bytes.len()
        );
        assert_eq!(decode::<IdempotencyEntry>(&bytes).unwrap(), entry);
        let plain = encode_plain(&payment).unwrap().len();
        let stored = encode(&payment).unwrap();
        assert_eq!(stored[0], CODEC_ZSTD);
        assert!(
            stored.len() * 5 < plain * 4,
            "{} bytes compressed of {plain}",
            stored.len()
        );
        assert_eq!(decode::<Payment>(&stored).unwrap(), payment);
    }

    /// Text the dictionary has never seen, short and long, is stored compressed and read
    /// back whole.
    #[test]
    fn unseen_text_reads_back() {
        for len in [1_000, 40_000] {
            let body: String = (0..len)
                .map(|i| {
                    if i % 7 == 0 {
                        '"'
                    } else {
                        char::from(b'a' + (i % 23) as u8)
                    }
                })
                .collect();
            let entry = IdempotencyEntry {
                order_no: "o".into(),
                fingerprint: Fingerprint::new("POST", "/v1/payments", &serde_json::json!({})),
                response: Some(StoredResponse { status: 201, body }),
                created_at_ms: 5,
            };
            let bytes = encode(&entry).unwrap();
            assert_eq!(bytes[0], CODEC_ZSTD, "{len} bytes of text are compressed");
            assert_eq!(decode::<IdempotencyEntry>(&bytes).unwrap(), entry);
        }
    }

    /// A large value is stored compressed and read back whole; a tiny one stays plain
    /// (a frame's header would cost more than it saves); a damaged frame is refused.
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
