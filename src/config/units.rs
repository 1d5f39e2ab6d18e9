//! How the configuration's durations are written in the file: whole numbers in the unit
//! their key names (`_days`, `_s`, `_ms`, `_us`; a list of them for `_s` lists), read into
//! [`Duration`] and written back the same, so the keys and units of DESIGN §4 stay what
//! they were.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Seconds in a day, for `_days` keys.
const DAY_S: u64 = 86_400;

/// `duration` in whole days, rounded down (what a `_days` key writes).
pub(crate) fn whole_days(duration: &Duration) -> u64 {
    duration.as_secs() / DAY_S
}

macro_rules! unit {
    ($module:ident, $unit:literal, $from:expr, $to:expr) => {
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

unit!(
    days,
    "days (saturating)",
    |d: u64| Duration::from_secs(d.saturating_mul(DAY_S)),
    whole_days
);
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

/// A list of [`Duration`]s as whole seconds.
pub mod seconds_list {
    use super::*;

    /// # Errors
    /// When the value is not a list of non-negative integers.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<u64>::deserialize(d).map(|list| list.into_iter().map(Duration::from_secs).collect())
    }

    /// # Errors
    /// Only the serializer's own.
    pub fn serialize<S: Serializer>(value: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(value.iter().map(Duration::as_secs))
    }
}

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

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct DaysAndLists {
        #[serde(with = "days")]
        d_days: Duration,
        #[serde(with = "seconds_list")]
        l_s: Vec<Duration>,
    }

    #[test]
    fn days_and_second_lists_keep_their_keys_units() {
        let text = r#"{"d_days":5,"l_s":[1,7]}"#;
        let keys: DaysAndLists = serde_json::from_str(text).unwrap();
        assert_eq!(
            keys,
            DaysAndLists {
                d_days: Duration::from_secs(5 * 86_400),
                l_s: vec![Duration::from_secs(1), Duration::from_secs(7)],
            }
        );
        assert_eq!(serde_json::to_string(&keys).unwrap(), text);
        let huge: DaysAndLists =
            serde_json::from_str(r#"{"d_days":18446744073709551615,"l_s":[]}"#).unwrap();
        assert_eq!(huge.d_days, Duration::from_secs(u64::MAX));
        assert!(serde_json::from_str::<DaysAndLists>(r#"{"d_days":1,"l_s":[-1]}"#).is_err());
    }
}
