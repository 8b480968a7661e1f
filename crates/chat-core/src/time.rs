//! Provider times to UTC.
//!
//! Spark and Kchat write `yyyy-MM-dd HH:mm:ss` in the account's configured
//! zone; ccmessaging writes epoch milliseconds. Everything the gateway stores
//! and serves is UTC.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
pub use chrono_tz::Tz;

/// The provider-local wall-clock format.
pub const LOCAL_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// A provider time that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not `yyyy-MM-dd HH:mm:ss`.
    #[error("`{0}` is not a yyyy-MM-dd HH:mm:ss time")]
    BadFormat(String),
    /// Outside the range chrono can hold.
    #[error("epoch milliseconds {0} out of range")]
    OutOfRange(i64),
    /// Not an IANA zone name.
    #[error("`{0}` is not an IANA time zone")]
    UnknownZone(String),
}

/// Reads an IANA zone name such as `Asia/Shanghai`.
pub fn parse_zone(name: &str) -> Result<Tz, TimeError> {
    name.parse::<Tz>()
        .map_err(|_| TimeError::UnknownZone(name.to_string()))
}

/// Reads a provider-local `yyyy-MM-dd HH:mm:ss` in `tz` as UTC.
///
/// Around a DST change a wall-clock time can be ambiguous (read as the
/// earlier instant, the first time the clock showed it) or skipped (read as
/// the same wall time before the jump, i.e. shifted forward by the gap), so no
/// provider time is ever refused for its zone's rules.
pub fn local_to_utc(s: &str, tz: Tz) -> Result<DateTime<Utc>, TimeError> {
    let naive = NaiveDateTime::parse_from_str(s.trim(), LOCAL_FORMAT)
        .map_err(|_| TimeError::BadFormat(s.to_string()))?;
    Ok(naive_to_utc(naive, tz))
}

/// A wall-clock time in `tz` to UTC, with the DST rules of [`local_to_utc`].
pub fn naive_to_utc(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
        LocalResult::None => {
            // Skipped by a forward jump: take the offset in force just before it.
            let before = tz.offset_from_utc_datetime(&(naive - chrono::Duration::hours(3)));
            let offset = chrono::Offset::fix(&before);
            (naive - offset).and_utc()
        }
    }
}

/// Writes a UTC instant as provider-local `yyyy-MM-dd HH:mm:ss` in `tz`.
pub fn utc_to_local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format(LOCAL_FORMAT).to_string()
}

/// Epoch milliseconds to UTC.
pub fn epoch_ms_to_utc(ms: i64) -> Result<DateTime<Utc>, TimeError> {
    DateTime::<Utc>::from_timestamp_millis(ms).ok_or(TimeError::OutOfRange(ms))
}

/// RFC 3339 in UTC with a `Z` and exactly three fractional digits
/// (`2026-11-21T08:04:12.000Z`): the API's one format, so clients that
/// compare or parse timestamps as fixed-width text never meet two shapes.
/// Finer precision is truncated, never rounded up into the next second.
pub fn to_rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Serde for API timestamps: RFC 3339, UTC, `Z`, exactly milliseconds,
/// whatever precision the value carries. Use as `#[serde(with = …)]`.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes [`super::to_rfc3339`].
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_rfc3339(*t))
    }

    /// Reads any RFC 3339 offset into UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }

    /// The same for optional timestamps.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `null` or the timestamp.
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        /// Reads `null` or any RFC 3339 offset.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| {
                    DateTime::parse_from_rfc3339(&s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(serde::de::Error::custom)
                })
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn shanghai_is_eight_hours_ahead_all_year() {
        let tz = parse_zone("Asia/Shanghai").unwrap();
        assert_eq!(
            local_to_utc("2015-04-25 08:04:12", tz).unwrap(),
            utc("2015-04-25T00:04:12Z")
        );
        assert_eq!(
            local_to_utc("2026-01-01 00:00:00", tz).unwrap(),
            utc("2025-12-31T16:00:00Z")
        );
    }

    #[test]
    fn dst_zone_uses_the_offset_in_force() {
        let tz = parse_zone("Europe/Berlin").unwrap();
        assert_eq!(
            local_to_utc("2026-01-15 12:00:00", tz).unwrap(),
            utc("2026-01-15T11:00:00Z")
        );
        assert_eq!(
            local_to_utc("2026-07-15 12:00:00", tz).unwrap(),
            utc("2026-07-15T10:00:00Z")
        );
    }

    #[test]
    fn dst_ambiguous_time_reads_as_the_earlier_instant() {
        // 2026-10-25 02:30 happens twice in Berlin (CEST then CET).
        let tz = parse_zone("Europe/Berlin").unwrap();
        assert_eq!(
            local_to_utc("2026-10-25 02:30:00", tz).unwrap(),
            utc("2026-10-25T00:30:00Z")
        );
    }

    #[test]
    fn dst_skipped_time_is_shifted_not_refused() {
        // 2026-03-29 02:30 never happens in Berlin; read with the CET offset.
        let tz = parse_zone("Europe/Berlin").unwrap();
        assert_eq!(
            local_to_utc("2026-03-29 02:30:00", tz).unwrap(),
            utc("2026-03-29T01:30:00Z")
        );
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let tz = parse_zone("Asia/Shanghai").unwrap();
        assert!(matches!(
            local_to_utc("2015/04/25 08:04", tz),
            Err(TimeError::BadFormat(_))
        ));
        assert!(matches!(local_to_utc("", tz), Err(TimeError::BadFormat(_))));
        assert!(matches!(
            parse_zone("Mars/Olympus"),
            Err(TimeError::UnknownZone(_))
        ));
        assert!(epoch_ms_to_utc(i64::MAX).is_err());
    }

    #[test]
    fn epoch_ms_reads_the_ccmessaging_sample() {
        assert_eq!(
            epoch_ms_to_utc(1_705_457_000_000).unwrap(),
            utc("2024-01-17T02:03:20Z")
        );
    }

    #[test]
    fn rfc3339_output_is_utc_with_z() {
        assert_eq!(
            to_rfc3339(utc("2026-11-21T16:04:12+08:00")),
            "2026-11-21T08:04:12.000Z"
        );
        assert_eq!(
            to_rfc3339(utc("2026-11-21T08:04:12.250Z")),
            "2026-11-21T08:04:12.250Z"
        );
        assert_eq!(
            to_rfc3339(utc("2026-11-21T08:04:12.999999Z")),
            "2026-11-21T08:04:12.999Z"
        );
    }

    proptest! {
        #[test]
        // China observed DST from 1986 to 1991; from 1992 on Shanghai has none.
        fn local_round_trips_in_a_dst_free_zone(secs in 694_224_000i64..4_000_000_000) {
            let tz = parse_zone("Asia/Shanghai").unwrap();
            let t = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            prop_assert_eq!(local_to_utc(&utc_to_local(t, tz), tz).unwrap(), t);
        }

        #[test]
        fn api_timestamps_always_have_three_fractional_digits(
            secs in 0i64..4_000_000_000,
            nanos in 0u32..1_000_000_000,
        ) {
            let t = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap();
            let text = to_rfc3339(t);
            prop_assert_eq!(text.len(), "2026-11-21T08:04:12.000Z".len());
            prop_assert_eq!(&text[19..20], ".");
            prop_assert!(text.ends_with('Z'));
            let back = DateTime::parse_from_rfc3339(&text).unwrap().with_timezone(&Utc);
            prop_assert_eq!(back.timestamp_millis(), t.timestamp_millis());
        }

        #[test]
        fn any_string_parses_or_errs_without_panic(s in ".{0,40}") {
            let tz = parse_zone("America/New_York").unwrap();
            let _ = local_to_utc(&s, tz);
        }
    }
}
