//! Just enough DER to describe a server certificate as blackbox_exporter does: its expiry
//! (`notAfter`), subject and issuer in Go's `pkix.Name.String()` form, and its DNS names. A walk
//! over the TBSCertificate's fields, no general ASN.1 parsing.

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

/// What the probes report about a certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    pub not_after: i64,
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
}

/// The certificate's `notAfter` as Unix seconds, or `None` when it does not parse.
pub fn not_after(cert: &[u8]) -> Option<i64> {
    parse(cert).map(|c| c.not_after)
}

/// Parses the fields of [`CertInfo`]; `None` when the certificate does not parse.
pub fn parse(cert: &[u8]) -> Option<CertInfo> {
    let tbs = sequence(sequence(cert)?)?;
    // [0] EXPLICIT version is optional.
    let mut rest = if tbs.first() == Some(&0xa0) { skip(tbs)? } else { tbs };
    rest = skip(skip(rest)?)?; // serialNumber, signature
    let (_, issuer, rest) = tlv(rest)?;
    let (_, validity, rest) = tlv(rest)?;
    let (_, subject, mut rest) = tlv(rest)?;
    rest = skip(rest)?; // subjectPublicKeyInfo
    let (tag, value, _) = tlv(skip(validity)?)?;
    let not_after = parse_time(tag, std::str::from_utf8(value).ok()?)?;
    let mut dns_names = Vec::new();
    while let Some((tag, value, next)) = tlv(rest) {
        if tag == 0xa3 {
            dns_names = san_dns_names(sequence(value)?);
        }
        rest = next;
    }
    Some(CertInfo { not_after, subject: name_string(subject), issuer: name_string(issuer), dns_names })
}

/// The dNSName entries of the subjectAltName extension, given the extensions' contents.
fn san_dns_names(mut extensions: &[u8]) -> Vec<String> {
    const SAN: &[u8] = &[0x55, 0x1d, 0x11];
    while let Some((_, ext, next)) = tlv(extensions) {
        extensions = next;
        let Some((0x06, oid, mut rest)) = tlv(ext) else { continue };
        if oid != SAN {
            continue;
        }
        if rest.first() == Some(&0x01) {
            rest = skip(rest).unwrap_or_default(); // critical
        }
        let Some(mut names) = tlv(rest).and_then(|(_, octets, _)| sequence(octets)) else { return Vec::new() };
        let mut out = Vec::new();
        while let Some((tag, value, next)) = tlv(names) {
            if tag == 0x82 {
                out.push(String::from_utf8_lossy(value).into_owned());
            }
            names = next;
        }
        return out;
    }
    Vec::new()
}

/// A Name (RDNSequence contents) as Go prints it: RDNs last to first, `TYPE=value` joined by `,`
/// (`+` within one RDN), with RFC 4514 escaping.
fn name_string(mut name: &[u8]) -> String {
    let mut rdns = Vec::new();
    while let Some((_, set, next)) = tlv(name) {
        let mut attrs = Vec::new();
        let mut rest = set;
        while let Some((_, atv, after)) = tlv(rest) {
            attrs.extend(attribute_string(atv));
            rest = after;
        }
        rdns.push(attrs.join("+"));
        name = next;
    }
    rdns.reverse();
    rdns.join(",")
}

fn attribute_string(atv: &[u8]) -> Option<String> {
    let (_, oid, rest) = tlv(atv)?;
    let (tag, value, _) = tlv(rest)?;
    let short = match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x05] => Some("SERIALNUMBER"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x07] => Some("L"),
        [0x55, 0x04, 0x08] => Some("ST"),
        [0x55, 0x04, 0x09] => Some("STREET"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        [0x55, 0x04, 0x11] => Some("POSTALCODE"),
        _ => None,
    };
    let text = match tag {
        0x0c | 0x13 | 0x14 | 0x16 => std::str::from_utf8(value).ok().map(escape),
        0x1e => String::from_utf16(&value.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect::<Vec<_>>())
            .ok()
            .map(|s| escape(&s)),
        _ => None,
    };
    match (short, text) {
        (Some(short), Some(text)) => Some(format!("{short}={text}")),
        // Go prints other attributes by dotted OID with the value's DER in hex.
        _ => {
            let whole = &rest[..rest.len() - tlv(rest)?.2.len()];
            Some(format!("{}=#{}", dotted_oid(oid), whole.iter().map(|b| format!("{b:02x}")).collect::<String>()))
        }
    }
}

fn escape(s: &str) -> String {
    let last = s.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        if ",+\"\\<>;".contains(c) || (i == 0 && (c == ' ' || c == '#')) || (i == last && c == ' ') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn dotted_oid(oid: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut value: u64 = 0;
    for (i, &b) in oid.iter().enumerate() {
        value = (value << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if parts.is_empty() && i < oid.len() {
                let first = (value / 40).min(2);
                parts.push(first);
                parts.push(value - first * 40);
            } else {
                parts.push(value);
            }
            value = 0;
        }
    }
    parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
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
    Some(fleetwatch_common::calendar::days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
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
    fn names_and_dns_names_as_go_prints_them() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "a.example".to_string()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CountryName, "DE");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = parse(cert.der()).unwrap();
        assert_eq!(info.subject, "CN=localhost,O=Acme\\, Inc.,C=DE");
        assert_eq!(info.issuer, info.subject);
        assert_eq!(info.dns_names, ["localhost", "a.example"]);
        assert_eq!(escape(" #a "), "\\ #a\\ ");
        assert_eq!(dotted_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]), "1.2.840.113549.1.9.1");
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(not_after(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }
}
