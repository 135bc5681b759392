//! Just enough DER to read a certificate's expiry (`notAfter`) for `probe_ssl_earliest_cert_expiry`:
//! a walk over the TBSCertificate's first fields, no general ASN.1 parsing.

/// One tag-length-value: the tag, the value and what follows it.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = b.get(2..2 + n)?;
        (bytes.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize), 2 + n)
    };
    let value = b.get(header..header.checked_add(len)?)?;
    Some((tag, value, &b[header + len..]))
}

fn sequence(b: &[u8]) -> Option<&[u8]> {
    match tlv(b)? {
        (0x30, value, _) => Some(value),
        _ => None,
    }
}

fn skip(b: &[u8]) -> Option<&[u8]> {
    tlv(b).map(|(_, _, rest)| rest)
}

/// The certificate's `notAfter` as Unix seconds, or `None` when it does not parse.
pub fn not_after(cert: &[u8]) -> Option<i64> {
    let tbs = sequence(sequence(cert)?)?;
    // [0] EXPLICIT version is optional.
    let mut rest = if tbs.first() == Some(&0xa0) { skip(tbs)? } else { tbs };
    for _ in 0..3 {
        rest = skip(rest)?; // serialNumber, signature, issuer
    }
    let validity = sequence(rest)?;
    let (tag, value, _) = tlv(skip(validity)?)?;
    parse_time(tag, std::str::from_utf8(value).ok()?)
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), as DER requires them.
fn parse_time(tag: u8, s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if s.len() == 12 => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        0x18 if s.len() == 14 => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let field = |i: usize| rest.get(i..i + 2)?.parse::<i64>().ok();
    let (month, day, hour, min, sec) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time(0x17, "700101000000Z"), Some(0));
        assert_eq!(parse_time(0x17, "300102030405Z"), Some(1_893_553_445));
        assert_eq!(parse_time(0x18, "20300102030405Z"), Some(1_893_553_445));
        assert_eq!(parse_time(0x18, "99991231235959Z"), Some(253_402_300_799));
        assert_eq!(parse_time(0x17, "3001020304Z"), None);
        assert_eq!(parse_time(0x17, "301302030405Z"), None);
        assert_eq!(parse_time(0x17, "300102030405"), None);
    }

    #[test]
    fn expiry_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.clone().self_signed(&key).unwrap();
        assert_eq!(not_after(cert.der()), Some(1_941_321_600));
        params.not_after = rcgen::date_time_ymd(2061, 1, 1); // GeneralizedTime from 2050 on
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(not_after(cert.der()), Some(2_871_763_200));
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(not_after(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }
}
