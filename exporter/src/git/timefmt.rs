//! UTC calendar arithmetic for the stats log and the report: Unix seconds to `YYYY-MM-DD` and
//! RFC 3339, and back (civil-from-days, no time zone database needed).

/// Days since 1970-01-01 to (year, month, day).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let (y, m, d) = fleetwatch_common::calendar::civil_from_days(days);
    (y, m as u32, d as u32)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days(year: i64, month: u32, day: u32) -> i64 {
    fleetwatch_common::calendar::days_from_civil(year, i64::from(month), i64::from(day))
}

/// `YYYY-MM-DD` of a day number.
pub fn date(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix seconds.
pub fn rfc3339(secs: i64) -> String {
    let s = secs.rem_euclid(86_400);
    format!("{}T{:02}:{:02}:{:02}Z", date(secs.div_euclid(86_400)), s / 3600, s / 60 % 60, s % 60)
}

/// Parses `YYYY-MM-DD` to a day number.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut it = text.split('-');
    let (y, m, d) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    if it.next().is_some() || text.len() != 10 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let n = days(y, m, d);
    (civil(n) == (y, m, d)).then_some(n)
}

/// Parses RFC 3339 (`2024-05-01T09:30:00Z`, fractions and `+02:00` offsets allowed; a space for
/// the `T` too) to Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let (day, rest) = (parse_date(text.get(..10)?)?, text.get(11..)?);
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let num = |s: Option<&str>| s.and_then(|s| s.parse::<i64>().ok());
    let (h, mi, s) = (num(rest.get(0..2))?, num(rest.get(3..5))?, num(rest.get(6..8))?);
    let mut tail = rest.get(8..)?;
    if let Some(frac) = tail.strip_prefix('.') {
        tail = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match tail {
        "Z" | "z" => 0,
        _ => {
            let sign = match tail.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            sign * (num(tail.get(1..3))? * 3600 + num(tail.get(4..6))? * 60)
        }
    };
    Some(day * 86_400 + h * 3600 + mi * 60 + s - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_values() {
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-15T00:13:20.123+02:00"), Some(1_700_000_000));
        assert_eq!(parse_date("2024-02-29").map(date), Some("2024-02-29".to_string()));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("1970-01-01"), Some(0));
        for d in [-800_000, -1, 0, 59, 19_000, 2_000_000] {
            let (y, m, dd) = civil(d);
            assert_eq!(days(y, m, dd), d);
        }
        assert_eq!(parse_rfc3339("2023-11-14 22:13"), None);
    }
}
