//! Time values as Finexer writes them: ISO-8601 in UTC, whole seconds.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

/// An instant in UTC, serialised as `2026-11-05T12:00:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Sub-second precision is dropped so every timestamp reads the same way.
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        let utc = at.to_offset(UtcOffset::UTC);
        Self(utc.replace_nanosecond(0).unwrap_or(utc))
    }

    pub fn from_unix_seconds(seconds: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .map(Self::from_datetime)
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn plus(self, by: Duration) -> Self {
        Self::from_datetime(self.0.saturating_add(by))
    }

    pub fn date(self) -> Date {
        self.0.date()
    }

    /// Accepts what a client is likely to send for a date-like field:
    /// RFC 3339 (`2026-11-05T12:00:00Z`) or a bare date (`2026-11-05`, read as midnight UTC).
    pub fn parse_lenient(text: &str) -> Option<Self> {
        if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
            return Some(Self::from_datetime(at));
        }
        parse_date(text).map(|date| Self::from_datetime(date.midnight().assume_utc()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Formatting a UTC value with whole seconds as RFC 3339 cannot fail.
        let text = self.0.format(&Rfc3339).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Reads what `Serialize` writes (any RFC 3339 time, kept to whole seconds in UTC).
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        OffsetDateTime::parse(&text, &Rfc3339)
            .map(Self::from_datetime)
            .map_err(|why| serde::de::Error::custom(format!("{text:?} is not RFC 3339: {why}")))
    }
}

/// `YYYY-MM-DD`, the form Finexer uses for `retro_date`.
pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]")).ok()
}

pub fn format_date(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_whole_seconds() {
        let at = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        assert_eq!(at.to_string(), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn lenient_parse_accepts_dates_and_datetimes() {
        assert_eq!(
            Timestamp::parse_lenient("2026-01-02").unwrap().to_string(),
            "2026-01-02T00:00:00Z"
        );
        assert_eq!(
            Timestamp::parse_lenient("2026-01-02T03:04:05+01:00")
                .unwrap()
                .to_string(),
            "2026-01-02T02:04:05Z"
        );
        assert!(Timestamp::parse_lenient("yesterday").is_none());
    }

    #[test]
    fn timestamps_read_back_what_they_write() {
        let at = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        let text = serde_json::to_string(&at).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&text).unwrap(), at);
        assert!(serde_json::from_str::<Timestamp>("\"2026-01-02\"").is_err());
    }
}
