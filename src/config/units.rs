//! How the configuration's durations are written in the file: whole numbers in the unit
//! their key names (`_s`, `_ms`, `_us`), read into [`Duration`] and written back the same,
//! so the keys and units of DESIGN §4 stay what they were.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

macro_rules! unit {
    ($module:ident, $unit:literal, $from:path, $to:expr) => {
        #[doc = concat!("A [`Duration`] as whole ", $unit, ".")]
        pub mod $module {
            use super::*;

            /// # Errors
            /// When the value is not a non-negative integer.
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
                u64::deserialize(d).map($from)
            }

            /// # Errors
            /// Only the serializer's own.
            pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u64($to(value))
            }
        }
    };
}

unit!(seconds, "seconds", Duration::from_secs, Duration::as_secs);
unit!(
    millis,
    "milliseconds",
    Duration::from_millis,
    |d: &Duration| { u64::try_from(d.as_millis()).unwrap_or(u64::MAX) }
);
unit!(
    micros,
    "microseconds",
    Duration::from_micros,
    |d: &Duration| { u64::try_from(d.as_micros()).unwrap_or(u64::MAX) }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Keys {
        #[serde(with = "seconds")]
        a_s: Duration,
        #[serde(with = "millis")]
        b_ms: Duration,
        #[serde(with = "micros")]
        c_us: Duration,
    }

    #[test]
    fn durations_keep_their_keys_units() {
        let keys: Keys = serde_json::from_str(r#"{"a_s": 2, "b_ms": 3, "c_us": 4}"#).unwrap();
        assert_eq!(
            keys,
            Keys {
                a_s: Duration::from_secs(2),
                b_ms: Duration::from_millis(3),
                c_us: Duration::from_micros(4),
            }
        );
        assert_eq!(
            serde_json::to_string(&keys).unwrap(),
            r#"{"a_s":2,"b_ms":3,"c_us":4}"#
        );
        assert!(serde_json::from_str::<Keys>(r#"{"a_s": -1, "b_ms": 3, "c_us": 4}"#).is_err());
    }
}
