//! The probers: one HTTP(S) or TCP probe of one target with blackbox_exporter's semantics
//! (address family choice, per-phase HTTP timings summed over redirects, status, regex and TLS
//! checks), returning a [`ProbeResult`] that also says why a probe failed.

use super::config::split_host_port;
use super::der;
use bytes::Bytes;
use fleetwatch_common::client::{error_chain, tls_config, Auth, Secret};
use fleetwatch_common::client_config::TlsClientConfig;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A compiled module: what to probe with, and its own timeout (zero: none of its own).
#[derive(Debug)]
pub struct Module {
    pub timeout: Duration,
    pub prober: Prober,
}

#[derive(Debug)]
pub enum Prober {
    Http(Box<HttpProbe>),
    Tcp(TcpProbe),
}

#[derive(Debug)]
pub struct HttpProbe {
    pub method: Method,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub host: Option<String>,
    pub body: Bytes,
    pub valid_status_codes: Vec<u16>,
    pub valid_http_versions: Vec<String>,
    pub body_matches: Vec<regex::Regex>,
    pub body_not_matches: Vec<regex::Regex>,
    pub fail_if_ssl: bool,
    pub fail_if_not_ssl: bool,
    pub follow_redirects: bool,
    pub tls: TlsSetup,
    pub auth: Option<Auth>,
    pub ip: IpPreference,
    pub body_size_limit: u64,
}

#[derive(Debug)]
pub struct TcpProbe {
    pub tls: Option<TlsSetup>,
    pub ip: IpPreference,
}

/// Which address family to use when a name has both, as blackbox's `preferred_ip_protocol` and
/// `ip_protocol_fallback`.
#[derive(Debug, Clone, Copy)]
pub struct IpPreference {
    pub prefer_v6: bool,
    pub fallback: bool,
}

/// A rustls client config built once per module, and the name to verify when one is forced.
/// A module with the default TLS settings verifies against the system's CA roots, which are
/// loaded on its first handshake and then shared: the exporter does not parse the CA bundle
/// (nor keep it in memory) unless an HTTPS or TLS probe actually runs.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// `None` for the default settings (see `system_roots`).
    config: Option<Arc<rustls::ClientConfig>>,
    server_name: Option<String>,
    verified: bool,
}

impl TlsSetup {
    pub fn new(c: &TlsClientConfig) -> Result<TlsSetup, String> {
        c.check()?;
        let config = if *c == TlsClientConfig::default() { None } else { Some(Arc::new(client_config(c)?)) };
        Ok(TlsSetup { config, server_name: c.server_name.clone(), verified: !c.insecure_skip_verify })
    }

    fn config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        match &self.config {
            Some(config) => Ok(config.clone()),
            None => system_roots(),
        }
    }
}

fn client_config(c: &TlsClientConfig) -> Result<rustls::ClientConfig, String> {
    let mut config = tls_config(&c.settings()).map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The default settings' config, built once (loading the system's CAs per check is slow); a
/// failure is not kept, so a CA bundle installed later is picked up by the next probe.
fn system_roots() -> Result<Arc<rustls::ClientConfig>, String> {
    static DEFAULT: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    if let Some(config) = DEFAULT.get() {
        return Ok(config.clone());
    }
    let config = Arc::new(client_config(&TlsClientConfig::default())?);
    Ok(DEFAULT.get_or_init(|| config).clone())
}

/// Why a probe failed: a fixed set, used as the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Dns,
    Connect,
    Tls,
    Timeout,
    Status,
    Body,
}

impl Reason {
    pub const ALL: [Reason; 6] = [Reason::Dns, Reason::Connect, Reason::Tls, Reason::Timeout, Reason::Status, Reason::Body];
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Dns => "dns",
            Reason::Connect => "connect",
            Reason::Tls => "tls",
            Reason::Timeout => "timeout",
            Reason::Status => "status",
            Reason::Body => "body",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

fn fail(reason: Reason, message: impl Into<String>) -> Failure {
    Failure { reason, message: message.into() }
}

/// Everything a probe found out, including how far it got before failing.
#[derive(Debug, Clone, Default)]
pub struct ProbeResult {
    pub failure: Option<Failure>,
    pub duration: f64,
    pub dns_lookup: f64,
    /// The address probed (for `probe_ip_protocol` and `probe_ip_addr_hash`).
    pub ip: Option<IpAddr>,
    pub http: Option<HttpResult>,
    pub tls: Option<TlsInfo>,
}

impl ProbeResult {
    pub fn success(&self) -> bool {
        self.failure.is_none()
    }
}

#[derive(Debug, Clone, Default)]
pub struct HttpResult {
    pub status: u16,
    /// `Content-Length` of the final response, -1 when it had none (as Go reports it).
    pub content_length: f64,
    pub body_length: u64,
    pub redirects: u32,
    pub ssl: bool,
    pub version: f64,
    pub failed_due_to_regex: bool,
    /// resolve, connect, tls, processing, transfer: seconds summed over the redirects.
    pub phases: [f64; 5],
    pub last_modified: Option<f64>,
}

pub const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];
const RESOLVE: usize = 0;
const CONNECT: usize = 1;
const TLS: usize = 2;
const PROCESSING: usize = 3;
const TRANSFER: usize = 4;

#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub earliest_expiry: f64,
    /// Earliest expiry in the chain when it was verified (not with `insecure_skip_verify`).
    pub chain_expiry: Option<f64>,
    pub version: &'static str,
    /// The verified leaf certificate (not with `insecure_skip_verify`).
    pub leaf: Option<LeafInfo>,
}

/// `probe_ssl_last_chain_info`'s labels.
#[derive(Debug, Clone)]
pub struct LeafInfo {
    pub fingerprint_sha256: String,
    pub subject: String,
    pub issuer: String,
    pub dns_names: String,
}

fn leaf_info(cert: &[u8]) -> Option<LeafInfo> {
    let info = der::parse(cert)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    Some(LeafInfo {
        fingerprint_sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        subject: info.subject,
        issuer: info.issuer,
        dns_names: info.dns_names.join(","),
    })
}

/// Probes `target` with `module`, giving up after `timeout`. Never panics on what the target
/// sends; every failure is a [`Failure`] in the result.
pub async fn probe(module: &Module, target: &str, timeout: Duration) -> ProbeResult {
    let start = Instant::now();
    let mut result = ProbeResult::default();
    let run = async {
        match &module.prober {
            Prober::Http(p) => probe_http(p, target, &mut result).await,
            Prober::Tcp(p) => probe_tcp(p, target, &mut result).await,
        }
    };
    let outcome = tokio::time::timeout(timeout, run).await;
    result.failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(f)) => Some(f),
        Err(_) => Some(fail(Reason::Timeout, format!("timed out after {}", fleetwatch_common::duration::PromDuration(timeout)))),
    };
    result.duration = start.elapsed().as_secs_f64();
    result
}

/// Resolves `host` and picks one address as blackbox does: the first of the preferred family,
/// else (with fallback) the first of the other.
async fn resolve(host: &str, port: u16, pref: IpPreference, result: &mut ProbeResult) -> Result<SocketAddr, Failure> {
    let started = Instant::now();
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Ok(a) => a.collect(),
            Err(e) => return Err(fail(Reason::Dns, format!("resolving {host}: {e}"))),
        },
    };
    result.dns_lookup += started.elapsed().as_secs_f64();
    let preferred = addrs.iter().find(|a| a.is_ipv6() == pref.prefer_v6);
    let chosen = preferred.or_else(|| addrs.first().filter(|_| pref.fallback)).copied();
    let addr = chosen.ok_or_else(|| fail(Reason::Dns, format!("{host}: no address of the wanted family")))?;
    result.ip = Some(addr.ip());
    Ok(addr)
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect(addr).await.map_err(|e| fail(Reason::Connect, format!("connecting to {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// TLS handshake; records the peer chain's expiry and the protocol version.
async fn handshake(setup: &TlsSetup, host: &str, tcp: TcpStream, result: &mut ProbeResult) -> Result<Box<dyn Io>, Failure> {
    let name = setup.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_string()).map_err(|_| fail(Reason::Tls, format!("invalid server name {name:?}")))?;
    let config = setup.config().map_err(|e| fail(Reason::Tls, e))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let stream = connector.connect(server_name, tcp).await.map_err(|e| fail(Reason::Tls, format!("TLS handshake: {}", error_chain(&e))))?;
    let conn = stream.get_ref().1;
    let chain = conn.peer_certificates().unwrap_or(&[]);
    let expiries: Vec<f64> = chain.iter().filter_map(|c| der::not_after(c)).map(|t| t as f64).collect();
    let leaf = chain.first().filter(|_| setup.verified).and_then(|c| leaf_info(c));
    let earliest = expiries.iter().copied().reduce(f64::min).unwrap_or(0.0);
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        _ => "unknown",
    };
    result.tls = Some(TlsInfo { earliest_expiry: earliest, chain_expiry: setup.verified.then_some(earliest), version, leaf });
    Ok(Box::new(stream))
}

async fn probe_tcp(p: &TcpProbe, target: &str, result: &mut ProbeResult) -> Result<(), Failure> {
    let (host, port) = split_host_port(target).ok_or_else(|| fail(Reason::Connect, format!("target {target:?} is not host:port")))?;
    let addr = resolve(host, port, p.ip, result).await?;
    let tcp = connect(addr).await?;
    if let Some(setup) = &p.tls {
        handshake(setup, host, tcp, result).await?;
    }
    Ok(())
}

/// Aborts the connection task when the probe ends (or is dropped by its timeout).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Hop {
    uri: Uri,
    method: Method,
    body: Bytes,
}

async fn probe_http(p: &HttpProbe, target: &str, result: &mut ProbeResult) -> Result<(), Failure> {
    let target =
        if target.starts_with("http://") || target.starts_with("https://") { target.to_string() } else { format!("http://{target}") };
    let uri: Uri = target.parse().map_err(|_| fail(Reason::Connect, format!("invalid target URL {target:?}")))?;
    result.http = Some(HttpResult::default());
    let mut hop = Hop { uri, method: p.method.clone(), body: p.body.clone() };
    loop {
        // The connection task lives as long as `_conn`: until the body is read or the probe ends.
        let (resp, _conn) = exchange(p, &hop, result).await?;
        let http = result.http.get_or_insert_with(HttpResult::default);
        let location = resp.headers().get(hyper::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        if let (true, Some(loc)) = (p.follow_redirects && resp.status().is_redirection(), location) {
            if http.redirects >= 10 {
                return Err(fail(Reason::Status, "stopped after 10 redirects"));
            }
            http.redirects += 1;
            let next = join_location(&hop.uri, &loc).ok_or_else(|| fail(Reason::Status, format!("bad redirect location {loc:?}")))?;
            let keep_method = matches!(resp.status().as_u16(), 307 | 308) || (hop.method == Method::GET || hop.method == Method::HEAD);
            hop = if keep_method { Hop { uri: next, ..hop } } else { Hop { uri: next, method: Method::GET, body: Bytes::new() } };
            continue;
        }
        return finish(p, resp, result).await;
    }
}

type Response = hyper::Response<hyper::body::Incoming>;

/// One request on a fresh connection, up to the response head; times resolve, connect, TLS and
/// processing. The connection is served by a task that ends when the returned guard is dropped.
async fn exchange(p: &HttpProbe, hop: &Hop, result: &mut ProbeResult) -> Result<(Response, AbortOnDrop), Failure> {
    let https = hop.uri.scheme_str() == Some("https");
    let authority = hop.uri.authority().ok_or_else(|| fail(Reason::Connect, format!("URL {} has no host", hop.uri)))?.clone();
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let dns_before = result.dns_lookup;
    let addr = resolve(&host, port, p.ip, result).await?;
    let resolve_time = result.dns_lookup - dns_before;
    phase(result, RESOLVE, resolve_time);
    let started = Instant::now();
    let tcp = connect(addr).await?;
    phase(result, CONNECT, started.elapsed().as_secs_f64());
    let io: Box<dyn Io> = if https {
        let stream = handshake(&p.tls, &host, tcp, result).await?;
        phase(result, TLS, started.elapsed().as_secs_f64());
        stream
    } else {
        result.tls = None;
        Box::new(tcp)
    };
    if let Some(h) = result.http.as_mut() {
        h.ssl = https;
    }
    let sent = Instant::now();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| fail(Reason::Connect, error_chain(&e)))?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let req = build_request(p, hop, authority.as_str())?;
    let resp = sender.send_request(req).await.map_err(|e| fail(Reason::Connect, format!("HTTP request: {}", error_chain(&e))))?;
    phase(result, PROCESSING, sent.elapsed().as_secs_f64());
    Ok((resp, driver))
}

fn phase(result: &mut ProbeResult, i: usize, seconds: f64) {
    if let Some(h) = result.http.as_mut() {
        h.phases[i] += seconds;
    }
}

fn build_request(p: &HttpProbe, hop: &Hop, authority: &str) -> Result<Request<Full<Bytes>>, Failure> {
    let path = hop.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let mut req = Request::builder()
        .method(hop.method.clone())
        .uri(path)
        .body(Full::new(hop.body.clone()))
        .map_err(|e| fail(Reason::Connect, format!("building the request: {e}")))?;
    let h = req.headers_mut();
    let host = p.host.as_deref().unwrap_or(authority);
    h.insert(hyper::header::HOST, HeaderValue::from_str(host).map_err(|_| fail(Reason::Connect, "invalid Host header"))?);
    h.insert(hyper::header::USER_AGENT, HeaderValue::from_static(concat!("fleetwatch-exporter/", env!("CARGO_PKG_VERSION"))));
    for (k, v) in &p.headers {
        h.insert(k.clone(), v.clone());
    }
    if let Some(auth) = &p.auth {
        h.insert(hyper::header::AUTHORIZATION, auth_header(auth)?);
    }
    Ok(req)
}

fn auth_header(auth: &Auth) -> Result<HeaderValue, Failure> {
    use base64::Engine as _;
    let read = |s: &Option<Secret>| s.as_ref().map(Secret::read).transpose().map(Option::unwrap_or_default);
    let text = match auth {
        Auth::Basic { username, password } => {
            let password = read(password).map_err(|e| fail(Reason::Connect, e.to_string()))?;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
        }
        Auth::Header { scheme, credentials } => {
            format!("{scheme} {}", read(credentials).map_err(|e| fail(Reason::Connect, e.to_string()))?)
        }
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| fail(Reason::Connect, "credentials are not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Checks the final response: status, HTTP version, body (read whole, timed as transfer), regexes
/// and SSL conditions, in blackbox's order.
async fn finish(p: &HttpProbe, resp: Response, result: &mut ProbeResult) -> Result<(), Failure> {
    let status = resp.status();
    let version = match resp.version() {
        Version::HTTP_10 => 1.0,
        Version::HTTP_11 => 1.1,
        Version::HTTP_2 => 2.0,
        _ => 0.0,
    };
    let header = |name| resp.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let content_length = header(hyper::header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(-1.0);
    let last_modified = header(hyper::header::LAST_MODIFIED).and_then(|v| httpdate::parse_http_date(v).ok());
    let last_modified = last_modified.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs() as f64);
    let started = Instant::now();
    let need_body = !p.body_matches.is_empty() || !p.body_not_matches.is_empty();
    let body = read_body(resp.into_body(), need_body, p.body_size_limit).await;
    let http = result.http.get_or_insert_with(HttpResult::default);
    http.status = status.as_u16();
    http.version = version;
    http.content_length = content_length;
    http.last_modified = last_modified;
    http.phases[TRANSFER] += started.elapsed().as_secs_f64();
    let (length, text) = body?;
    http.body_length = length;
    check_status(p, status)?;
    if !p.valid_http_versions.is_empty() {
        let proto = format!("HTTP/{version:.1}");
        if !p.valid_http_versions.contains(&proto) {
            return Err(fail(Reason::Status, format!("HTTP version {proto} is not valid")));
        }
    }
    if need_body {
        let text = String::from_utf8_lossy(&text);
        let bad = p.body_matches.iter().find(|r| r.is_match(&text)).map(|r| format!("body matched {:?}", r.as_str()));
        let bad =
            bad.or_else(|| p.body_not_matches.iter().find(|r| !r.is_match(&text)).map(|r| format!("body did not match {:?}", r.as_str())));
        if let Some(message) = bad {
            http.failed_due_to_regex = true;
            return Err(fail(Reason::Body, message));
        }
    }
    if p.fail_if_ssl && http.ssl {
        return Err(fail(Reason::Tls, "final request was over TLS"));
    }
    if p.fail_if_not_ssl && !http.ssl {
        return Err(fail(Reason::Tls, "final request was not over TLS"));
    }
    Ok(())
}

fn check_status(p: &HttpProbe, status: StatusCode) -> Result<(), Failure> {
    let code = status.as_u16();
    let ok = if p.valid_status_codes.is_empty() { status.is_success() } else { p.valid_status_codes.contains(&code) };
    if ok {
        Ok(())
    } else {
        Err(fail(Reason::Status, format!("status code {code} is not valid")))
    }
}

/// Reads the body, counting its bytes and keeping them only when a regex needs them.
async fn read_body(mut body: hyper::body::Incoming, keep: bool, limit: u64) -> Result<(u64, Vec<u8>), Failure> {
    let mut length = 0u64;
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| fail(Reason::Body, format!("reading the body: {}", error_chain(&e))))?;
        if let Some(data) = frame.data_ref() {
            length += data.len() as u64;
            if limit > 0 && length > limit {
                return Err(fail(Reason::Body, format!("body larger than body_size_limit ({limit} bytes)")));
            }
            if keep {
                kept.extend_from_slice(data);
            }
        }
    }
    Ok((length, kept))
}

/// Resolves a `Location` against the request's URL.
pub fn join_location(base: &Uri, location: &str) -> Option<Uri> {
    if location.contains("://") {
        return location.parse().ok();
    }
    let scheme = base.scheme_str()?;
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let authority = base.authority()?.as_str();
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}").parse().ok();
    }
    let dir = base.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    format!("{scheme}://{authority}{dir}/{location}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_roots_wait_for_the_first_handshake() {
        let setup = TlsSetup::new(&TlsClientConfig::default()).unwrap();
        assert!(setup.config.is_none(), "the default settings must not load the system's CA bundle when the config loads");
        let insecure = TlsClientConfig { insecure_skip_verify: true, ..TlsClientConfig::default() };
        assert!(TlsSetup::new(&insecure).unwrap().config.is_some(), "other settings are built (and checked) when the config loads");
    }

    #[test]
    fn redirect_locations() {
        let base: Uri = "http://h:1/a/b?x=1".parse().unwrap();
        assert_eq!(join_location(&base, "/c").unwrap().to_string(), "http://h:1/c");
        assert_eq!(join_location(&base, "c?y").unwrap().to_string(), "http://h:1/a/c?y");
        assert_eq!(join_location(&base, "//g:2/d").unwrap().to_string(), "http://g:2/d");
        assert_eq!(join_location(&base, "https://g/").unwrap().to_string(), "https://g/");
    }

    #[test]
    fn reasons_are_the_fixed_set() {
        let names: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["dns", "connect", "tls", "timeout", "status", "body"]);
    }
}
