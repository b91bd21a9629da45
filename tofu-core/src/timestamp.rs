//! Whole seconds since the Unix epoch, printed as RFC 3339 in UTC.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A moment, in whole seconds since 1970-01-01T00:00:00Z.
///
/// Displays as RFC 3339 in UTC (`2026-11-21T19:53:52Z`) and parses from that form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

/// Why a string is not an RFC 3339 timestamp.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a time in RFC 3339 form, such as 2026-11-21T19:53:52Z")]
pub struct TimestampError(String);

impl Timestamp {
    /// The current time of the system clock.
    pub fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Self(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            Err(e) => Self(-i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX)),
        }
    }

    /// A timestamp from seconds since the Unix epoch.
    pub const fn from_unix(secs: i64) -> Self {
        Self(secs)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// Whole days from `self` until `later` (negative when `later` is earlier).
    pub fn days_until(self, later: Timestamp) -> i64 {
        (later.0 - self.0).div_euclid(86_400)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(text) => f.write_str(&text),
            // Outside years 0..=9999 (possible in a hostile certificate): show the raw value.
            None => write!(f, "@{}", self.0),
        }
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(raw) = s.strip_prefix('@') {
            return raw
                .parse()
                .map(Self)
                .map_err(|_| TimestampError(s.chars().take(80).collect()));
        }
        OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| Self(t.unix_timestamp()))
            .map_err(|_| TimestampError(s.chars().take(80).collect()))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        for secs in [0, 1_795_000_000, -86_400, 253_402_300_799] {
            let t = Timestamp::from_unix(secs);
            assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t), "{t}");
        }
        assert_eq!(Timestamp::from_unix(0).to_string(), "1970-01-01T00:00:00Z");
        let far = Timestamp::from_unix(i64::MAX / 2);
        assert_eq!(far.to_string().parse::<Timestamp>(), Ok(far));
    }

    #[test]
    fn days_until_rounds_down() {
        let t = Timestamp::from_unix(0);
        assert_eq!(t.days_until(Timestamp::from_unix(86_399)), 0);
        assert_eq!(t.days_until(Timestamp::from_unix(86_400 * 3)), 3);
        assert_eq!(t.days_until(Timestamp::from_unix(-1)), -1);
    }
}
