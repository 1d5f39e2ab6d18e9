//! The on-disk value format: one format byte, then bincode 2 (standard config) of the
//! record's serde form, plain (format 1) or compressed with zstd against paykeep's built-in
//! dictionary (format 2) when that is shorter. A reader refuses any other format instead
//! of misreading it.
//!
//! Why a dictionary: a typical record is a few hundred bytes, mostly the same member names
//! and values in every record (a payment's JSON response alone is about 530 bytes), and
//! zstd without a dictionary finds too little in so few bytes to save a third. Against a
//! dictionary of typical records an idempotency entry with its response keeps two fifths
//! (docs/durability.md, "Layout").
//! The dictionary ([`DICTIONARY`], `codec_dictionary.txt`) is raw content, not a trained
//! zstd dictionary, and is part of the on-disk format: its digest is pinned by a test, and
//! changing it needs a new schema version.

use std::cell::RefCell;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;
use zstd::dict::{DecoderDictionary, EncoderDictionary};

use crate::store::StoreError;

/// Format byte of a plain value: `[CODEC_VERSION] ++ bincode`.
pub const CODEC_VERSION: u8 = 1;
/// Format byte of a compressed value: `[CODEC_ZSTD] ++ zstd(bincode)`, one zstd frame
/// (RFC 8878) with its content size, made against [`DICTIONARY`].
pub const CODEC_ZSTD: u8 = 2;
/// Encoded values at least this long are offered to zstd. A payment (about 180 bytes, a
/// third of them random ids) saves a tenth at most, not worth a compression on every
/// write; an idempotency entry with its response (about 700) keeps two fifths.
pub const COMPRESS_MIN_BYTES: usize = 256;
/// The longest value a compressed frame may claim to hold (a record at every field's
/// maximum is tens of KiB): a frame claiming more is refused, not allocated.
pub const DECOMPRESSED_BYTES_MAX: usize = 16 << 20;
/// What decoding one value may claim (bincode counts each container's memory against it):
/// a damaged length prefix is refused instead of allocated. Far above any record, the
/// largest being a log record of a whole group at maximum field sizes.
pub const DECODE_CLAIM_BYTES_MAX: usize = 64 << 20;
/// zstd's level for values longer than [`FAST_BYTES_MAX`]: 1, its fastest that still
/// entropy-codes literals. A record at maximum field sizes is mostly literals (the
/// merchant's text): at −1 the data directory grew 3.2–3.8× the requests
/// (`tests/max_size.rs`, bound 3×), at 1 2.3×.
const ZSTD_LEVEL: i32 = 1;
/// zstd's level for values up to [`FAST_BYTES_MAX`]: −1, which stores literals raw and
/// skips building entropy tables per value. On typical records (an idempotency entry with
/// its response, an event) it stays within 1 % of level 1's size, at about half the time
/// (BENCHMARKS.md): the tables cost more than they save on a few hundred bytes.
const ZSTD_LEVEL_FAST: i32 = -1;
/// The longest plain value compressed at [`ZSTD_LEVEL_FAST`]: typical records are under
/// 1 KiB, records with the merchant's text near its maximum are several KiB.
pub const FAST_BYTES_MAX: usize = 2048;
/// The raw-content dictionary of format 2: typical payment, refund and event text, the
/// most common last (zstd reaches nearer matches more cheaply).
pub const DICTIONARY: &[u8] = include_bytes!("codec_dictionary.txt");

struct Dictionaries {
    encoder: EncoderDictionary<'static>,
    encoder_fast: EncoderDictionary<'static>,
    decoder: DecoderDictionary<'static>,
}

fn dictionaries() -> &'static Dictionaries {
    static DICTIONARIES: OnceLock<Dictionaries> = OnceLock::new();
    DICTIONARIES.get_or_init(|| Dictionaries {
        encoder: EncoderDictionary::copy(DICTIONARY, ZSTD_LEVEL),
        encoder_fast: EncoderDictionary::copy(DICTIONARY, ZSTD_LEVEL_FAST),
        decoder: DecoderDictionary::copy(DICTIONARY),
    })
}

thread_local! {
    /// One zstd context per level per thread that encodes (contexts are not shareable and
    /// cost more to make than to use).
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static COMPRESSOR_FAST: RefCell<Option<zstd::bulk::Compressor<'static>>> =
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
/// shorter; at [`ZSTD_LEVEL_FAST`] up to [`FAST_BYTES_MAX`], else at [`ZSTD_LEVEL`] (the
/// frame does not depend on the level: a reader needs neither).
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
    let (compressor, dictionary) = if out.len() <= FAST_BYTES_MAX {
        (&COMPRESSOR_FAST, &dictionaries().encoder_fast)
    } else {
        (&COMPRESSOR, &dictionaries().encoder)
    };
    let compressed = compressor.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::with_prepared_dictionary(dictionary).ok();
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
    let Some((&version, rest)) = bytes.split_first() else {
        return Err(codec_error("empty value"));
    };
    let unpacked;
    let rest = match version {
        CODEC_VERSION => rest,
        CODEC_ZSTD => {
            unpacked = decompress(rest)?;
            unpacked.as_slice()
        }
        _ => return Err(codec_error(format!("unknown codec version {version}"))),
    };
    let config = bincode::config::standard().with_limit::<DECODE_CLAIM_BYTES_MAX>();
    let (value, read) = bincode::serde::decode_from_slice(rest, config).map_err(codec_error)?;
    if read != rest.len() {
        return Err(codec_error("trailing bytes"));
    }
    Ok(value)
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
            "a4882eb582ae0d9a17a6937e18e585390d659e50322abe068771d04d6b28ea95"
        );
    }

    /// A typical create's records are stored at a fraction of their plain size: the
    /// response JSON against the dictionary keeps about a fifth.
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
            bytes.len() * 2 < plain,
            "{} bytes compressed of {plain}",
            bytes.len()
        );
        assert_eq!(decode::<IdempotencyEntry>(&bytes).unwrap(), entry);
        let stored = encode(&payment).unwrap();
        assert_eq!(decode::<Payment>(&stored).unwrap(), payment);
    }

    /// Values on either side of [`FAST_BYTES_MAX`] (compressed at the two levels) are both
    /// stored compressed and read back whole: a reader needs no level.
    #[test]
    fn both_levels_read_back() {
        for len in [FAST_BYTES_MAX / 2, FAST_BYTES_MAX * 2] {
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
