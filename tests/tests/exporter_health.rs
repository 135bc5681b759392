//! The exporter's `health` collector (scheduled HTTP/TCP checks with blackbox_exporter's metric
//! names) and its blackbox-compatible `/probe` endpoint, end to end: every check runs against a
//! server started here on 127.0.0.1 (plain HTTP, a redirect chain, TLS with a certificate made
//! here with a fixed expiry, a server that never answers, a port nobody listens on), and `/probe`
//! is compared family by family and label name by label name with Debian's
//! `prometheus-blackbox-exporter` probing the same targets.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{exporter, fault_server, free_port, get, require, static_server, urlencode, wait_port, Fault, Proc};

/// The six failure reasons of `fleetwatch_health_check_failures_total`.
const REASONS: [&str; 6] = ["dns", "connect", "tls", "timeout", "status", "body"];

/// The five phases of `probe_http_duration_seconds`.
const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

/// 2030-01-02T03:04:05Z, the `not_after` of the TLS test's server certificate.
const LEAF_NOT_AFTER_UNIX: f64 = 1_893_553_445.0;

// ---------------------------------------------------------------------------------------------
// Exposition parsing
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed text exposition (format 0.0.4).
#[derive(Debug)]
struct Expo {
    samples: Vec<Sample>,
    /// `# TYPE` lines: family name → type.
    types: BTreeMap<String, String>,
    text: String,
}

impl Expo {
    fn parse(text: &str) -> Expo {
        let mut samples = Vec::new();
        let mut types = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                    types.insert(name.to_string(), kind.to_string());
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            samples.push(parse_sample(line).unwrap_or_else(|e| panic!("line {}: {e}: {line:?}\n--- exposition ---\n{text}", n + 1)));
        }
        Expo { samples, types, text: text.to_string() }
    }

    /// The value of the series with exactly this name and label set.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|s| s.name == name && s.labels == want).map(|s| s.value)
    }

    /// The value of the series with exactly this name and label set; panics with the series of
    /// that name when there is none.
    fn must(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| {
            panic!("no series {name}{} in the exposition; series of that name:\n{}", fmt_labels(labels), self.dump(name))
        })
    }

    /// Every series of a name whose labels include all of `labels`.
    fn series(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .collect()
    }

    /// The series of a name, one per line, for failure messages.
    fn dump(&self, name: &str) -> String {
        let lines: Vec<String> =
            self.samples.iter().filter(|s| s.name == name).map(|s| format!("  {}{} {}", s.name, fmt_map(&s.labels), s.value)).collect();
        if lines.is_empty() {
            "  (none)".to_string()
        } else {
            lines.join("\n")
        }
    }

    /// Family names: the `# TYPE` names, plus the names of samples without one.
    fn families(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.types.keys().cloned().collect();
        for s in &self.samples {
            if !self.types.keys().any(|t| s.name == *t || s.name.strip_prefix(t.as_str()).is_some_and(is_type_suffix)) {
                out.insert(s.name.clone());
            }
        }
        out
    }

    /// Metric name → the set of label-name lists of its series.
    fn label_names(&self) -> BTreeMap<String, BTreeSet<Vec<String>>> {
        let mut out: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
        for s in &self.samples {
            out.entry(s.name.clone()).or_default().insert(s.labels.keys().cloned().collect());
        }
        out
    }
}

fn is_type_suffix(rest: &str) -> bool {
    matches!(rest, "_total" | "_count" | "_sum" | "_bucket" | "_created" | "_info")
}

fn fmt_labels(labels: &[(&str, &str)]) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(","))
}

fn fmt_map(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(","))
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = line[..name_end].to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let end;
        loop {
            while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
                chars.next();
            }
            match chars.peek() {
                Some((i, '}')) => {
                    end = *i + 1;
                    break;
                }
                None => return Err("unterminated label set".into()),
                _ => {}
            }
            let mut key = String::new();
            loop {
                match chars.next() {
                    Some((_, '=')) => break,
                    Some((_, c)) => key.push(c),
                    None => return Err("label without '='".into()),
                }
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key} value is not quoted"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err("dangling escape".into()),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            if labels.insert(key.trim().to_string(), value).is_some() {
                return Err("duplicate label".into());
            }
        }
        rest = &r[end..];
    }
    let mut fields = rest.split_whitespace();
    let raw = fields.next().ok_or("no value")?;
    let value = raw.parse::<f64>().map_err(|e| format!("bad value {raw:?}: {e}"))?;
    Ok(Sample { name, labels, value })
}

// ---------------------------------------------------------------------------------------------
// The exporter with a health config
// ---------------------------------------------------------------------------------------------

struct Exporter {
    child: Proc,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Exporter {
    /// Starts the exporter with a config file holding `yaml` (a whole file, e.g. `health:\n  ...`).
    fn start(yaml: &str) -> Exporter {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exporter.yml");
        std::fs::write(&path, yaml).unwrap();
        let flag = format!("--config.file={}", path.display());
        let (proc, port) = exporter(&[&flag]);
        Exporter { child: proc, port, _dir: dir }
    }

    /// Scrapes only the health collector's families.
    fn scrape(&self) -> Expo {
        let resp = get(self.port, "/metrics?collect[]=health", &[]);
        assert_eq!(resp.status, 200, "GET /metrics?collect[]=health: {}", resp.text());
        Expo::parse(&resp.text())
    }

    /// Polls /metrics until every named check has a probe_success series.
    fn wait_for_checks(&self, checks: &[&str]) -> Expo {
        let mut last = String::new();
        let r = eventually_or(Duration::from_secs(10), || {
            let e = self.scrape();
            let all = checks.iter().all(|c| !e.series("probe_success", &[("check", c)]).is_empty());
            if all {
                Some(e)
            } else {
                last = e.text;
                None
            }
        });
        r.unwrap_or_else(|| panic!("checks {checks:?} did not all report probe_success within 10 s; last scrape:\n{last}"))
    }

    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }
}

/// Like support::eventually, but returns None at the deadline so the caller can say more.
fn eventually_or<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn assert_failures(e: &Expo, check: &str, expect_positive: &[&str]) {
    for reason in REASONS {
        let v = e.must("fleetwatch_health_check_failures_total", &[("check", check), ("reason", reason)]);
        if expect_positive.contains(&reason) {
            assert!(v >= 1.0, "check {check}: failures_total{{reason={reason:?}}} = {v}, want >= 1");
        } else {
            assert_eq!(
                v, 0.0,
                "check {check}: failures_total{{reason={reason:?}}} = {v}, want 0 (failure counted under the wrong reason?)"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Test servers
// ---------------------------------------------------------------------------------------------

/// What a test server answers: status, extra headers, body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply { status, headers: Vec::new(), body: body.to_string() }
}

fn redirect(status: u16, location: &str) -> Reply {
    Reply { status, headers: vec![("Location".to_string(), location.to_string())], body: String::new() }
}

type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// Reads a request head; returns the request target (path and query).
fn read_head(stream: &mut impl Read) -> Option<String> {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if seen.len() > 64 * 1024 {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&seen).into_owned();
    head.lines().next()?.split(' ').nth(1).map(str::to_string)
}

/// Answers one request (`Connection: close`).
fn serve_one(stream: &mut (impl Read + Write), handler: &Handler) {
    let Some(path) = read_head(stream) else { return };
    let r = handler(&path);
    let reason = match r.status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Other",
    };
    let mut head =
        format!("HTTP/1.1 {} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n", r.status, r.body.len());
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(r.body.as_bytes())).and_then(|_| stream.flush());
}

/// A plain-HTTP server on a free port answering every request with `handler(path)`.
fn http_server(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> u16 {
    let handler: Handler = Arc::new(handler);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                serve_one(&mut stream, &handler);
            });
        }
    });
    port
}

/// A CA and a server certificate (127.0.0.1, localhost) expiring 2030-01-02T03:04:05Z; the CA
/// expires later, so the earliest expiry of the chain is the leaf's.
struct TestPki {
    dir: tempfile::TempDir,
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl TestPki {
    fn new() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(vec![]).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "fleetwatch health test CA");
        ca_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        ca_params.not_after = rcgen::date_time_ymd(2040, 1, 1);
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf_params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        leaf_params.distinguished_name.push(DnType::CommonName, "localhost");
        leaf_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2030, 1, 2) + Duration::from_secs(3 * 3600 + 4 * 60 + 5);
        assert_eq!(leaf_params.not_after.unix_timestamp() as f64, LEAF_NOT_AFTER_UNIX);
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        TestPki { dir, chain: vec![leaf.der().clone(), ca.der().clone()], key_der: leaf_key.serialize_der() }
    }

    /// A single self-signed certificate that is also marked as a CA, as `openssl req -x509`
    /// makes them, listed as its own `ca_file` (Go accepts it; webpki alone would not).
    fn self_signed_ca() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.distinguished_name.push(DnType::CommonName, "selfsigned");
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        TestPki { dir, chain: vec![cert.der().clone()], key_der: key.serialize_der() }
    }

    fn ca_file(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    /// An HTTPS server (rustls, TLS 1.2 and 1.3) presenting leaf + CA, answering with `handler`.
    fn https_server(&self, handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> u16 {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .unwrap();
        let config = Arc::new(config);
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let handler = handler.clone();
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    serve_one(&mut tls, &handler);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        port
    }
}

// ---------------------------------------------------------------------------------------------
// Scheduled checks on /metrics
// ---------------------------------------------------------------------------------------------

#[test]
fn healthy_http_check_reports_blackbox_metrics() {
    let port = http_server(|_| reply(200, "ok"));
    let url = format!("http://127.0.0.1:{port}/");
    let ex = Exporter::start(&format!("health:\n  interval: 1s\n  timeout: 2s\n  checks:\n    - name: ok\n      url: \"{url}\"\n"));
    let e = ex.wait_for_checks(&["ok"]);
    let id: [(&str, &str); 2] = [("check", "ok"), ("target", &url)];
    assert_eq!(e.must("probe_success", &id), 1.0, "probe_success of a 200 answer");
    assert_eq!(e.must("probe_http_status_code", &id), 200.0);
    let duration = e.must("probe_duration_seconds", &id);
    assert!((0.0..2.0).contains(&duration), "probe_duration_seconds = {duration}");
    for phase in PHASES {
        let v = e.must("probe_http_duration_seconds", &[("check", "ok"), ("target", &url), ("phase", phase)]);
        assert!((0.0..2.0).contains(&v), "phase {phase}: {v}");
    }
    assert_eq!(
        e.series("probe_http_duration_seconds", &[("check", "ok")]).len(),
        5,
        "exactly the five phases:\n{}",
        e.dump("probe_http_duration_seconds")
    );
    assert_eq!(e.must("probe_http_duration_seconds", &[("check", "ok"), ("target", &url), ("phase", "tls")]), 0.0, "no TLS on http");
    assert_eq!(e.must("probe_http_ssl", &id), 0.0);
    assert_eq!(e.must("probe_http_redirects", &id), 0.0);
    assert_eq!(e.must("probe_failed_due_to_regex", &id), 0.0);
    assert_eq!(e.must("probe_http_content_length", &id), 2.0, "Content-Length of \"ok\"");
    assert_eq!(e.must("probe_http_uncompressed_body_length", &id), 2.0);
    assert_eq!(e.must("probe_http_version", &id), 1.1);
    assert_eq!(e.must("probe_ip_protocol", &id), 4.0);
    e.must("probe_ip_addr_hash", &id);
    e.must("probe_dns_lookup_time_seconds", &id);
    assert!(e.series("probe_ssl_earliest_cert_expiry", &[("check", "ok")]).is_empty(), "no certificate expiry on plain http");
    let last_run = e.must("fleetwatch_health_check_last_run_timestamp_seconds", &id);
    let age = now_unix() - last_run;
    assert!((-1.0..5.0).contains(&age), "last run {age:.2} s ago");
    assert_failures(&e, "ok", &[]);
    // Every probe_* series carries exactly the check and target labels (plus phase / version).
    for s in e.samples.iter().filter(|s| s.name.starts_with("probe_")) {
        assert_eq!(s.labels.get("check").map(String::as_str), Some("ok"), "{s:?}");
        assert_eq!(s.labels.get("target"), Some(&url), "{s:?}");
    }
}

#[test]
fn status_500_fails_with_reason_status() {
    let port = http_server(|_| reply(500, "boom"));
    let url = format!("http://127.0.0.1:{port}/");
    let ex = Exporter::start(&format!("health:\n  interval: 1s\n  timeout: 2s\n  checks:\n    - name: broken\n      url: \"{url}\"\n"));
    let e = ex.wait_for_checks(&["broken"]);
    let id: [(&str, &str); 2] = [("check", "broken"), ("target", &url)];
    assert_eq!(e.must("probe_success", &id), 0.0);
    assert_eq!(e.must("probe_http_status_code", &id), 500.0);
    assert_failures(&e, "broken", &["status"]);
}

#[test]
fn valid_status_codes_accept_404() {
    let port = http_server(|_| reply(404, "gone"));
    let url = format!("http://127.0.0.1:{port}/");
    let ex = Exporter::start(&format!(
        "health:\n  interval: 1s\n  checks:\n    - name: notfound\n      url: \"{url}\"\n      valid_status_codes: [404]\n    - name: default\n      url: \"{url}\"\n"
    ));
    let e = ex.wait_for_checks(&["notfound", "default"]);
    assert_eq!(e.must("probe_success", &[("check", "notfound"), ("target", &url)]), 1.0, "404 is listed in valid_status_codes");
    assert_eq!(e.must("probe_http_status_code", &[("check", "notfound"), ("target", &url)]), 404.0);
    assert_failures(&e, "notfound", &[]);
    assert_eq!(e.must("probe_success", &[("check", "default"), ("target", &url)]), 0.0, "404 is no 2xx");
    assert_failures(&e, "default", &["status"]);
}

#[test]
fn vars_are_expanded_in_url_and_target_label() {
    let port = http_server(|path| if path == "/health" { reply(200, "ok") } else { reply(404, "no") });
    let ex = Exporter::start(&format!(
        "health:\n  interval: 1s\n  vars:\n    host: 127.0.0.1\n    port: \"{port}\"\n  checks:\n    - name: templated\n      url: \"http://{{host}}:{{port}}/health\"\n"
    ));
    let e = ex.wait_for_checks(&["templated"]);
    let url = format!("http://127.0.0.1:{port}/health");
    assert_eq!(e.must("probe_success", &[("check", "templated"), ("target", &url)]), 1.0);
}

#[test]
fn body_regexps_decide_success() {
    let good = http_server(|_| reply(200, "all ok"));
    let bad = http_server(|_| reply(200, "bad"));
    let good_url = format!("http://127.0.0.1:{good}/");
    let bad_url = format!("http://127.0.0.1:{bad}/");
    let ex = Exporter::start(&format!(
        "health:\n  interval: 1s\n  checks:\n    - name: good\n      url: \"{good_url}\"\n      fail_if_body_not_matches_regexp: [\"ok\"]\n    - name: bad\n      url: \"{bad_url}\"\n      fail_if_body_not_matches_regexp: [\"ok\"]\n    - name: forbidden\n      url: \"{good_url}\"\n      fail_if_body_matches_regexp: [\"a.l\"]\n"
    ));
    let e = ex.wait_for_checks(&["good", "bad", "forbidden"]);
    assert_eq!(e.must("probe_success", &[("check", "good"), ("target", &good_url)]), 1.0, "\"all ok\" matches \"ok\"");
    assert_eq!(e.must("probe_failed_due_to_regex", &[("check", "good"), ("target", &good_url)]), 0.0);
    assert_failures(&e, "good", &[]);
    assert_eq!(e.must("probe_success", &[("check", "bad"), ("target", &bad_url)]), 0.0, "\"bad\" does not match \"ok\"");
    assert_eq!(e.must("probe_failed_due_to_regex", &[("check", "bad"), ("target", &bad_url)]), 1.0);
    assert_eq!(e.must("probe_http_status_code", &[("check", "bad"), ("target", &bad_url)]), 200.0);
    assert_failures(&e, "bad", &["body"]);
    assert_eq!(e.must("probe_success", &[("check", "forbidden"), ("target", &good_url)]), 0.0, "\"all ok\" matches \"a.l\"");
    assert_eq!(e.must("probe_failed_due_to_regex", &[("check", "forbidden"), ("target", &good_url)]), 1.0);
    assert_failures(&e, "forbidden", &["body"]);
}

#[test]
fn hanging_server_times_out_and_scrapes_never_wait() {
    let port = fault_server(Fault::Hang);
    let url = format!("http://127.0.0.1:{port}/");
    let ex = Exporter::start(&format!("health:\n  interval: 1s\n  checks:\n    - name: hang\n      url: \"{url}\"\n      timeout: 1s\n"));
    let id: [(&str, &str); 2] = [("check", "hang"), ("target", &url)];
    // Scrape repeatedly for 4 s: a probe is in flight nearly all the time, and no scrape waits for it.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut scrapes = 0;
    let mut last = None;
    while started.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let e = ex.scrape();
        slowest = slowest.max(t.elapsed());
        scrapes += 1;
        last = Some(e);
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(
        slowest < Duration::from_millis(500),
        "slowest of {scrapes} scrapes took {slowest:?} while a probe hung: scrapes must not wait"
    );
    let e = last.unwrap();
    assert_eq!(e.value("probe_success", &id), Some(0.0), "probe_success after a 1 s timeout:\n{}", e.dump("probe_success"));
    let d = e.must("probe_duration_seconds", &id);
    assert!((0.9..2.0).contains(&d), "probe_duration_seconds = {d}, want ≈ the 1 s timeout");
    assert_failures(&e, "hang", &["timeout"]);
}

#[test]
fn connection_refused_fails_with_reason_connect() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let ex = Exporter::start(&format!("health:\n  interval: 1s\n  checks:\n    - name: refused\n      url: \"{url}\"\n"));
    let e = ex.wait_for_checks(&["refused"]);
    assert_eq!(e.must("probe_success", &[("check", "refused"), ("target", &url)]), 0.0);
    assert_failures(&e, "refused", &["connect"]);
}

#[test]
fn tls_checks_verify_and_report_certificate_expiry() {
    let pki = TestPki::new();
    let port = pki.https_server(|_| reply(200, "secure ok"));
    let url = format!("https://127.0.0.1:{port}/");
    let ex = Exporter::start(&format!(
        "health:\n  interval: 1s\n  checks:\n    - name: untrusted\n      url: \"{url}\"\n    - name: trusted\n      url: \"{url}\"\n      tls_config:\n        ca_file: \"{}\"\n",
        pki.ca_file()
    ));
    let e = ex.wait_for_checks(&["untrusted", "trusted"]);

    assert_eq!(e.must("probe_success", &[("check", "untrusted"), ("target", &url)]), 0.0, "a certificate of an unknown CA must fail");
    assert_failures(&e, "untrusted", &["tls"]);

    let id: [(&str, &str); 2] = [("check", "trusted"), ("target", &url)];
    assert_eq!(e.must("probe_success", &id), 1.0, "with tls_config.ca_file = the CA");
    assert_failures(&e, "trusted", &[]);
    assert_eq!(e.must("probe_http_status_code", &id), 200.0);
    assert_eq!(e.must("probe_http_ssl", &id), 1.0);
    assert_eq!(e.must("probe_ssl_earliest_cert_expiry", &id), LEAF_NOT_AFTER_UNIX, "the leaf's not_after 2030-01-02T03:04:05Z");
    assert_eq!(e.must("probe_ssl_last_chain_expiry_timestamp_seconds", &id), LEAF_NOT_AFTER_UNIX);
    let tls_phase = e.must("probe_http_duration_seconds", &[("check", "trusted"), ("target", &url), ("phase", "tls")]);
    assert!(tls_phase > 0.0, "the tls phase of an https probe took {tls_phase}");
    let versions = e.series("probe_tls_version_info", &[("check", "trusted")]);
    assert_eq!(versions.len(), 1, "one probe_tls_version_info series:\n{}", e.dump("probe_tls_version_info"));
    let v = versions[0];
    assert!(matches!(v.labels.get("version").map(String::as_str), Some("TLS 1.3" | "TLS 1.2")), "{v:?}");
    assert_eq!(v.labels.len(), 3, "labels check, target, version: {v:?}");
    assert_eq!(v.value, 1.0);
}

#[test]
fn self_signed_ca_certificate_is_accepted_when_listed_in_ca_file() {
    let pki = TestPki::self_signed_ca();
    let port = pki.https_server(|_| reply(200, "ok"));
    let url = format!("https://127.0.0.1:{port}/");
    let ex = Exporter::start(&format!(
        "health:\n  interval: 1s\n  checks:\n    - name: pinned\n      url: \"{url}\"\n      tls_config:\n        ca_file: \"{}\"\n",
        pki.ca_file()
    ));
    let e = ex.wait_for_checks(&["pinned"]);
    let id: [(&str, &str); 2] = [("check", "pinned"), ("target", &url)];
    assert_eq!(e.must("probe_success", &id), 1.0, "{}", e.dump("probe_"));
    let info = e.series("probe_ssl_last_chain_info", &[("check", "pinned")]);
    assert_eq!(info.len(), 1, "{}", e.dump("probe_ssl_last_chain_info"));
    let labels = &info[0].labels;
    assert_eq!(labels.get("subject").map(String::as_str), Some("CN=selfsigned"));
    assert_eq!(labels.get("issuer").map(String::as_str), Some("CN=selfsigned"));
    assert_eq!(labels.get("subjectalternative").map(String::as_str), Some("localhost"));
    assert_eq!(labels.get("fingerprint_sha256").map(String::len), Some(64));
}

#[test]
fn redirects_are_followed_and_counted() {
    let (listener, port) = free_port_listener();
    let handler = move |path: &str| match path {
        "/a" => redirect(302, "/b"),
        "/b" => redirect(301, &format!("http://127.0.0.1:{port}/c")),
        "/c" => reply(200, "landed"),
        _ => reply(404, "no"),
    };
    serve_on(listener, handler);
    let url = format!("http://127.0.0.1:{port}/a");
    let ex = Exporter::start(&format!(
        "health:\n  interval: 1s\n  checks:\n    - name: follow\n      url: \"{url}\"\n    - name: stay\n      url: \"{url}\"\n      follow_redirects: false\n"
    ));
    let e = ex.wait_for_checks(&["follow", "stay"]);
    let follow: [(&str, &str); 2] = [("check", "follow"), ("target", &url)];
    assert_eq!(e.must("probe_success", &follow), 1.0, "/a → /b → /c answers 200");
    assert_eq!(e.must("probe_http_status_code", &follow), 200.0);
    assert_eq!(e.must("probe_http_redirects", &follow), 2.0);
    let stay: [(&str, &str); 2] = [("check", "stay"), ("target", &url)];
    assert_eq!(e.must("probe_http_status_code", &stay), 302.0, "follow_redirects: false reports the first answer");
    assert_eq!(e.must("probe_success", &stay), 0.0, "302 is no 2xx");
    assert_failures(&e, "stay", &["status"]);
}

/// A listener on a free port, bound before the handler (which needs the port) is made.
fn free_port_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn serve_on(listener: TcpListener, handler: impl Fn(&str) -> Reply + Send + Sync + 'static) {
    let handler: Handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                serve_one(&mut stream, &handler);
            });
        }
    });
}

#[test]
fn tcp_checks_connect() {
    let open = static_server("text/plain", "hello".to_string());
    let closed = free_port();
    let open_target = format!("127.0.0.1:{open}");
    let closed_target = format!("127.0.0.1:{closed}");
    let ex = Exporter::start(&format!(
        "health:\n  interval: 1s\n  checks:\n    - name: open\n      tcp: \"{open_target}\"\n    - name: closed\n      tcp: \"{closed_target}\"\n"
    ));
    let e = ex.wait_for_checks(&["open", "closed"]);
    assert_eq!(e.must("probe_success", &[("check", "open"), ("target", &open_target)]), 1.0);
    assert_failures(&e, "open", &[]);
    assert_eq!(e.must("probe_success", &[("check", "closed"), ("target", &closed_target)]), 0.0);
    assert_failures(&e, "closed", &["connect"]);
    assert!(e.series("probe_http_status_code", &[("check", "open")]).is_empty(), "a TCP check has no HTTP metrics");
}

#[test]
fn three_hundred_checks_keep_their_schedule_without_growing() {
    const N: usize = 300;
    let port = http_server(|_| reply(200, "ok"));
    let mut yaml = String::from("health:\n  interval: 1s\n  timeout: 2s\n  checks:\n");
    for i in 0..N {
        yaml.push_str(&format!("    - name: c{i}\n      url: \"http://127.0.0.1:{port}/?i={i}\"\n"));
    }
    let ex = Exporter::start(&yaml);
    let started = Instant::now();
    let names: Vec<String> = (0..N).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    ex.wait_for_checks(&refs);

    std::thread::sleep(Duration::from_secs(5).saturating_sub(started.elapsed()));
    let rss_5s = ex.rss_bytes();
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    let rss_10s = ex.rss_bytes();
    let e = ex.scrape();
    let now = now_unix();

    let mut stale = Vec::new();
    let mut failed = Vec::new();
    for i in 0..N {
        let check = format!("c{i}");
        let target = format!("http://127.0.0.1:{port}/?i={i}");
        let id: [(&str, &str); 2] = [("check", &check), ("target", &target)];
        match e.value("fleetwatch_health_check_last_run_timestamp_seconds", &id) {
            Some(t) if now - t <= 2.5 => {}
            Some(t) => stale.push(format!("{check}: {:.2} s ago", now - t)),
            None => stale.push(format!("{check}: no last_run series")),
        }
        if e.value("probe_success", &id) != Some(1.0) {
            failed.push(check);
        }
    }
    assert!(
        stale.is_empty(),
        "{} of {N} checks did not run within 2.5 s of the end (drift/starvation): {:?}",
        stale.len(),
        &stale[..stale.len().min(20)]
    );
    assert!(failed.is_empty(), "{} of {N} checks of a healthy local server failed: {:?}", failed.len(), &failed[..failed.len().min(20)]);
    let growth = rss_10s as i64 - rss_5s as i64;
    assert!(growth < 4 << 20, "RSS grew by {} KiB between 5 s ({} KiB) and 10 s ({} KiB)", growth / 1024, rss_5s / 1024, rss_10s / 1024);
}

// ---------------------------------------------------------------------------------------------
// /probe
// ---------------------------------------------------------------------------------------------

fn probe(port: u16, target: &str, module: &str, headers: &[(&str, &str)]) -> support::Response {
    get(port, &format!("/probe?target={}&module={module}", urlencode(target)), headers)
}

#[test]
fn probe_endpoint_answers_like_blackbox() {
    let target_port = http_server(|_| reply(200, "ok"));
    // No config file: the built-in modules http_2xx and tcp_connect.
    let (_p, port) = exporter(&[]);
    let r = probe(port, &format!("http://127.0.0.1:{target_port}/"), "http_2xx", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let e = Expo::parse(&r.text());
    assert_eq!(e.must("probe_success", &[]), 1.0, "body:\n{}", r.text());
    assert_eq!(e.must("probe_http_status_code", &[]), 200.0);
    e.must("probe_duration_seconds", &[]);
    for s in &e.samples {
        assert!(!s.labels.contains_key("check") && !s.labels.contains_key("target"), "/probe series without check/target labels: {s:?}");
        assert!(s.name.starts_with("probe_"), "/probe answers only probe_* families: {s:?}");
    }
    for phase in PHASES {
        e.must("probe_http_duration_seconds", &[("phase", phase)]);
    }

    // A target without scheme gets http:// with the http prober.
    let bare = probe(port, &format!("127.0.0.1:{target_port}"), "http_2xx", &[]);
    assert_eq!(bare.status, 200, "{}", bare.text());
    assert_eq!(Expo::parse(&bare.text()).must("probe_success", &[]), 1.0, "target without scheme:\n{}", bare.text());

    let tcp = probe(port, &format!("127.0.0.1:{target_port}"), "tcp_connect", &[]);
    assert_eq!(tcp.status, 200, "{}", tcp.text());
    assert_eq!(Expo::parse(&tcp.text()).must("probe_success", &[]), 1.0, "tcp_connect:\n{}", tcp.text());

    let refused = probe(port, &format!("http://127.0.0.1:{}/", free_port()), "http_2xx", &[]);
    assert_eq!(refused.status, 200, "a failed probe is still a 200 answer");
    assert_eq!(Expo::parse(&refused.text()).must("probe_success", &[]), 0.0);

    let missing = get(port, "/probe?module=http_2xx", &[]);
    assert_eq!(missing.status, 400, "missing target: {}", missing.text());
    let unknown = probe(port, &format!("http://127.0.0.1:{target_port}/"), "nosuch", &[]);
    assert_eq!(unknown.status, 400, "unknown module: {}", unknown.text());
}

#[test]
fn probe_honours_prometheus_scrape_timeout_header() {
    let hang = fault_server(Fault::Hang);
    let (_p, port) = exporter(&[]);
    let started = Instant::now();
    let r = probe(port, &format!("http://127.0.0.1:{hang}/"), "http_2xx", &[("X-Prometheus-Scrape-Timeout-Seconds", "1.5")]);
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(1450),
        "answered after {took:?}; want ≈ 1 s (1.5 s scrape timeout − 0.5 s offset, below the module's 5 s)"
    );
    let e = Expo::parse(&r.text());
    assert_eq!(e.must("probe_success", &[]), 0.0);
    let d = e.must("probe_duration_seconds", &[]);
    assert!((0.8..1.45).contains(&d), "probe_duration_seconds = {d}");
}

/// Families and label names of one /probe answer of ours vs blackbox's; mismatches as text.
fn compare_probe(what: &str, ours: &Expo, theirs: &Expo) -> Vec<String> {
    let mut problems = Vec::new();
    let (of, tf) = (ours.families(), theirs.families());
    let only_theirs: Vec<&String> = tf.difference(&of).collect();
    let only_ours: Vec<&String> = of.difference(&tf).collect();
    if !only_theirs.is_empty() {
        problems.push(format!("{what}: families only blackbox has: {only_theirs:?}"));
    }
    if !only_ours.is_empty() {
        problems.push(format!("{what}: families only we have: {only_ours:?}"));
    }
    let (ol, tl) = (ours.label_names(), theirs.label_names());
    for (name, theirs_sets) in &tl {
        if let Some(ours_sets) = ol.get(name) {
            if ours_sets != theirs_sets {
                problems.push(format!("{what}: {name} label names differ: ours {ours_sets:?}, blackbox {theirs_sets:?}"));
            }
        }
    }
    problems
}

#[test]
fn probe_matches_blackbox_exporter_families_and_labels() {
    if !require("prometheus-blackbox-exporter", "probe_matches_blackbox_exporter_families_and_labels") {
        return;
    }
    let pki = TestPki::new();
    let http_port = http_server(|_| reply(200, "ok"));
    let https_port = pki.https_server(|_| reply(200, "secure ok"));
    let ca = pki.ca_file();

    let dir = tempfile::tempdir().unwrap();
    let bb_config = dir.path().join("blackbox.yml");
    std::fs::write(
        &bb_config,
        format!(
            "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n  http_ca:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n      tls_config:\n        ca_file: \"{ca}\"\n  tcp_connect:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n"
        ),
    )
    .unwrap();
    let bb_port = free_port();
    let mut cmd = Command::new("prometheus-blackbox-exporter");
    cmd.arg(format!("--config.file={}", bb_config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{bb_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _bb = Proc::spawn("prometheus-blackbox-exporter", &mut cmd);
    wait_port(bb_port, "prometheus-blackbox-exporter");

    let ex = Exporter::start(&format!(
        "health:\n  modules:\n    http_2xx:\n      prober: http\n      timeout: 5s\n    http_ca:\n      prober: http\n      timeout: 5s\n      http:\n        tls_config:\n          ca_file: \"{ca}\"\n    tcp_connect:\n      prober: tcp\n      timeout: 5s\n"
    ));

    let cases = [
        ("http", format!("http://127.0.0.1:{http_port}/"), "http_2xx"),
        ("https", format!("https://127.0.0.1:{https_port}/"), "http_ca"),
        ("tcp", format!("127.0.0.1:{http_port}"), "tcp_connect"),
    ];
    let mut problems = Vec::new();
    for (what, target, module) in &cases {
        let theirs = probe(bb_port, target, module, &[]);
        assert_eq!(theirs.status, 200, "blackbox {what}: {}", theirs.text());
        let theirs = Expo::parse(&theirs.text());
        assert_eq!(theirs.must("probe_success", &[]), 1.0, "blackbox's own {what} probe must succeed:\n{}", theirs.text);
        let ours = probe(ex.port, target, module, &[]);
        assert_eq!(ours.status, 200, "our {what} probe: {}", ours.text());
        let ours = Expo::parse(&ours.text());
        assert_eq!(ours.must("probe_success", &[]), 1.0, "our {what} probe must succeed:\n{}", ours.text);
        problems.extend(compare_probe(what, &ours, &theirs));
        if *what == "https" {
            assert_eq!(ours.must("probe_ssl_earliest_cert_expiry", &[]), theirs.must("probe_ssl_earliest_cert_expiry", &[]));
            assert_eq!(ours.must("probe_ssl_earliest_cert_expiry", &[]), LEAF_NOT_AFTER_UNIX);
        }
        if *what == "http" {
            for name in
                ["probe_http_status_code", "probe_http_content_length", "probe_http_redirects", "probe_http_ssl", "probe_ip_protocol"]
            {
                assert_eq!(ours.must(name, &[]), theirs.must(name, &[]), "{what}: {name} differs from blackbox's");
            }
        }
    }
    assert!(problems.is_empty(), "/probe differs from blackbox_exporter:\n  {}", problems.join("\n  "));
}
