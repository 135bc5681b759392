//! A probe result as blackbox_exporter's `probe_*` families: the same names, types, labels and
//! set of families per prober, with extra labels (`check`, `target`) for scheduled checks.

use super::probe::{ProbeResult, PHASES};
use fleetwatch_common::expfmt::Family;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Families being built, by name, so many results can add their series to the same families.
#[derive(Default)]
pub struct Families(BTreeMap<&'static str, Family>);

impl Families {
    pub fn gauge(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.0.entry(name).or_insert_with(|| Family::gauge(name, help))
    }
    pub fn counter(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.0.entry(name).or_insert_with(|| Family::counter(name, help))
    }
    pub fn into_vec(self) -> Vec<Family> {
        self.0.into_values().collect()
    }
}

/// blackbox's `probe_ip_addr_hash`: FNV-1a (32 bit) of the address bytes.
pub fn ip_hash(ip: IpAddr) -> f64 {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h as f64
}

fn with<'a>(labels: &[(&'a str, &'a str)], extra: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    let mut l = labels.to_vec();
    l.push(extra);
    l
}

/// Adds the result's series, each with `labels`. `http` says whether the http prober ran (its
/// families are present even when it failed early, as in blackbox).
pub fn add(out: &mut Families, r: &ProbeResult, http: bool, labels: &[(&str, &str)]) {
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    out.gauge("probe_success", "1 when the probe succeeded, 0 when it failed.").add(labels, b(r.success()));
    out.gauge("probe_duration_seconds", "How long the whole probe took, in seconds.").add(labels, r.duration);
    out.gauge("probe_dns_lookup_time_seconds", "Time spent resolving the target's name, in seconds.").add(labels, r.dns_lookup);
    let (protocol, hash) = match r.ip {
        Some(ip) => (if ip.is_ipv6() { 6.0 } else { 4.0 }, ip_hash(ip)),
        None => (0.0, 0.0),
    };
    out.gauge("probe_ip_protocol", "IP version of the address probed: 4 or 6 (0 when none was found).").add(labels, protocol);
    out.gauge("probe_ip_addr_hash", "FNV-1a hash of the address probed; changes when the target's address does.").add(labels, hash);
    let h = r.http.clone().unwrap_or_default();
    out.gauge("probe_failed_due_to_regex", "1 when the probe failed because of a body regular expression.")
        .add(labels, b(h.failed_due_to_regex));
    if http {
        let phases =
            out.gauge("probe_http_duration_seconds", "Time spent in each phase of the HTTP request, in seconds, summed over redirects.");
        for (name, v) in PHASES.iter().zip(h.phases) {
            phases.add(&with(labels, ("phase", name)), v);
        }
        let content_length = if r.http.is_some() && h.status != 0 { h.content_length } else { 0.0 };
        out.gauge("probe_http_content_length", "Content-Length of the final response (-1 when it had none).").add(labels, content_length);
        out.gauge("probe_http_uncompressed_body_length", "Bytes of the final response's body.").add(labels, h.body_length as f64);
        out.gauge("probe_http_redirects", "Redirects followed.").add(labels, h.redirects as f64);
        out.gauge("probe_http_ssl", "1 when the final request went over TLS.").add(labels, b(h.ssl && r.tls.is_some()));
        out.gauge("probe_http_status_code", "HTTP status code of the final response (0 when there was none).").add(labels, h.status as f64);
        out.gauge("probe_http_version", "HTTP version of the final response, e.g. 1.1.").add(labels, h.version);
        if let Some(t) = h.last_modified {
            out.gauge("probe_http_last_modified_timestamp_seconds", "Last-Modified header of the final response, as a Unix timestamp.")
                .add(labels, t);
        }
    }
    if let Some(tls) = &r.tls {
        out.gauge("probe_ssl_earliest_cert_expiry", "Earliest expiry (Unix time) of the certificates the server presented.")
            .add(labels, tls.earliest_expiry);
        out.gauge("probe_tls_version_info", "TLS version negotiated, in the version label; always 1.")
            .add(&with(labels, ("version", tls.version)), 1.0);
        if let Some(t) = tls.chain_expiry {
            out.gauge("probe_ssl_last_chain_expiry_timestamp_seconds", "Earliest expiry (Unix time) in the verified certificate chain.")
                .add(labels, t);
        }
        if let Some(leaf) = &tls.leaf {
            let mut l = labels.to_vec();
            l.extend([
                ("fingerprint_sha256", leaf.fingerprint_sha256.as_str()),
                ("issuer", leaf.issuer.as_str()),
                ("subject", leaf.subject.as_str()),
                ("subjectalternative", leaf.dns_names.as_str()),
            ]);
            out.gauge(
                "probe_ssl_last_chain_info",
                "The verified leaf certificate: SHA-256 fingerprint, subject, issuer, DNS names; always 1.",
            )
            .add(&l, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_hash_matches_blackbox() {
        // blackbox_exporter 0.23 reports 3.668918509e+09 for 127.0.0.1.
        assert_eq!(ip_hash("127.0.0.1".parse().unwrap()), 3_668_918_509.0);
    }
}
