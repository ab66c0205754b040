//! An instant as a consent record keeps it: [`Timestamp`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::error::{Error, Result};

/// RFC 3339 UTC with a fixed six-digit fraction: fixed width keeps the text
/// order of stored timestamps (the `owner_sk` and `due` sort keys, and
/// `confirm_by` in a condition expression) in time order.
const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

/// The earliest and latest instants the format writes (four-digit years).
const EARLIEST: OffsetDateTime = time::macros::datetime!(0000-01-01 00:00:00 UTC);
const LATEST: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59.999_999 UTC);

/// An instant in UTC to the microsecond, stored and shown as
/// `2026-11-25T10:00:45.100000Z`. Read from any RFC 3339 text (Finexer
/// writes whole seconds) and written in the one fixed-width form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from(OffsetDateTime::now_utc())
    }

    /// Reads RFC 3339 text (any offset, any fraction); a stored value that
    /// does not read is an error, never a panic.
    pub fn parse(text: &str) -> Result<Timestamp> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(Timestamp::from)
            .map_err(|e| Error::Internal(format!("time {text:?} is not RFC 3339: {e}")))
    }

    pub fn datetime(self) -> OffsetDateTime {
        self.0
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }
}

/// In UTC, cut to the microsecond the text keeps (so a value reads back
/// equal to itself), and within the years the text can write.
impl From<OffsetDateTime> for Timestamp {
    fn from(at: OffsetDateTime) -> Timestamp {
        let at = at.to_offset(UtcOffset::UTC).clamp(EARLIEST, LATEST);
        let micros = at.nanosecond() / 1_000 * 1_000;
        Timestamp(at.replace_nanosecond(micros).unwrap_or(at))
    }
}

/// Saturates at the years the text can write.
impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, by: Duration) -> Timestamp {
        let bound = if by.is_negative() { EARLIEST } else { LATEST };
        Timestamp::from(self.0.checked_add(by).unwrap_or(bound))
    }
}

/// A configured span (`std::time::Duration`), likewise saturating.
impl std::ops::Add<std::time::Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, by: std::time::Duration) -> Timestamp {
        self + Duration::try_from(by).unwrap_or(Duration::MAX)
    }
}

impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, by: Duration) -> Timestamp {
        let bound = if by.is_negative() { LATEST } else { EARLIEST };
        Timestamp::from(self.0.checked_sub(by).unwrap_or(bound))
    }
}

/// How long from `earlier` to `self`.
impl std::ops::Sub for Timestamp {
    type Output = Duration;
    fn sub(self, earlier: Timestamp) -> Duration {
        self.0 - earlier.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Cannot fail: the value is UTC and within four-digit years.
        let text = self.0.format(FORMAT).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl FromStr for Timestamp {
    type Err = Error;
    fn from_str(text: &str) -> Result<Timestamp> {
        Timestamp::parse(text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn writes_the_fixed_width_form_and_reads_it_back() {
        let at = Timestamp::from(datetime!(2026-11-25 10:00:45.1 UTC));
        assert_eq!(at.to_string(), "2026-11-25T10:00:45.100000Z");
        assert_eq!(Timestamp::parse(&at.to_string()).unwrap(), at);
        let json = serde_json::to_string(&at).unwrap();
        assert_eq!(json, "\"2026-11-25T10:00:45.100000Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), at);
    }

    #[test]
    fn reads_any_rfc_3339_as_utc_to_the_microsecond() {
        let finexer = Timestamp::parse("2027-02-23T09:59:58Z").unwrap();
        assert_eq!(finexer.to_string(), "2027-02-23T09:59:58.000000Z");
        let offset = Timestamp::parse("2026-11-25T12:00:00.123456789+02:00").unwrap();
        assert_eq!(offset.to_string(), "2026-11-25T10:00:00.123456Z");
        // Cut, so that what is written reads back equal.
        let now = Timestamp::now();
        assert_eq!(Timestamp::parse(&now.to_string()).unwrap(), now);
    }

    #[test]
    fn a_value_that_is_not_rfc_3339_is_an_error() {
        for bad in [
            "",
            "yesterday",
            "2026-11-25",
            "2026-11-25 10:00:00",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?}");
            assert!(serde_json::from_str::<Timestamp>(&format!("{bad:?}")).is_err());
        }
        let error = serde_json::from_str::<Timestamp>("5").unwrap_err();
        assert!(error.to_string().contains("invalid type"), "{error}");
    }

    #[test]
    fn orders_in_time_and_so_does_its_text() {
        let base = Timestamp::parse("2026-11-25T10:00:45.1Z").unwrap();
        let later = base + Duration::microseconds(20_000);
        assert!(base < later);
        assert!(base.to_string() < later.to_string());
        // An earlier time at another offset is still earlier.
        assert!(Timestamp::parse("2026-11-25T11:00:00+02:00").unwrap() < base);
        assert_eq!(later - base, Duration::milliseconds(20));
        assert_eq!(later - Duration::milliseconds(20), base);
        assert_eq!(base + std::time::Duration::from_millis(20), later);
    }

    #[test]
    fn arithmetic_stays_within_the_years_the_text_writes() {
        let far = Timestamp::now() + Duration::MAX;
        assert_eq!(far.to_string(), "9999-12-31T23:59:59.999999Z");
        let early = Timestamp::now() - Duration::MAX;
        assert_eq!(Timestamp::now() - Duration::MIN, far);
        assert_eq!(early.to_string(), "0000-01-01T00:00:00.000000Z");
    }
}
