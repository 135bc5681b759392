//! Prometheus-style durations (`1h30m`, `500ms`, `5s`, `2d`, `1w`, `1y`) for config files and flags.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written the way Prometheus writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(pub Duration);

/// Why a duration string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// Units from largest to smallest: (suffix, milliseconds). "ms" precedes "m" when matching.
const UNITS: [(&str, u64); 7] =
    [("y", 31_536_000_000), ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("ms", 1), ("m", 60_000), ("s", 1_000)];

/// Parses `1h30m`, `5s`, `250ms`, `0`. Units must appear from largest to smallest, once each.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError { input: input.to_string(), reason };
    if input == "0" {
        return Ok(Duration::ZERO);
    }
    if input.is_empty() {
        return Err(err("empty duration"));
    }
    let mut rest = input;
    let mut total_ms: u64 = 0;
    let mut last_unit_ms = u64::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| err("number too large"))?;
        rest = &rest[digits..];
        let (unit, unit_ms) = UNITS.iter().find(|(unit, _)| rest.starts_with(unit)).ok_or_else(|| err("unknown unit"))?;
        if *unit_ms >= last_unit_ms {
            return Err(err("units out of order"));
        }
        last_unit_ms = *unit_ms;
        rest = &rest[unit.len()..];
        let part = number.checked_mul(*unit_ms).ok_or_else(|| err("duration too large"))?;
        total_ms = total_ms.checked_add(part).ok_or_else(|| err("duration too large"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way Prometheus prints it (`1h30m`, `5s`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut units = UNITS;
    units.sort_by_key(|u| std::cmp::Reverse(u.1));
    for (unit, size) in units {
        if ms >= size {
            out.push_str(&format!("{}{}", ms / size, unit));
            ms %= size;
        }
    }
    out
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl std::str::FromStr for PromDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(PromDuration)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1s500ms").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("1w").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("1y").unwrap(), Duration::from_secs(31_536_000));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in ["", "5", "s", "5x", "1m1h", "1s1s", "-5s", "1.5s", "5 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["1h30m", "5s", "250ms", "1d", "0s", "1m1s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
