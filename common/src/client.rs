//! The outgoing HTTP client both daemons use (scrapes, service discovery, probes, notifications):
//! hyper with rustls, Prometheus's `tls_config` / `basic_auth` / `authorization` settings with
//! secrets re-read from their files, a whole-request timeout, a body size limit that also bounds
//! gzip decompression, and redirects.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::{ConfigBuilderExt, FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A secret given inline or read from a file at each use (so rotation needs no restart).
#[derive(Clone, PartialEq)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("<secret>"),
            Secret::File(p) => write!(f, "<secret in {}>", p.display()),
        }
    }
}

impl Secret {
    pub fn read(&self) -> Result<String, FetchError> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(p) => crate::config::read_secret_file(p).map_err(|e| FetchError::Secret(format!("{}: {e}", p.display()))),
        }
    }
}

/// Client-side TLS settings, as in Prometheus's `tls_config`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub tls13_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    Basic {
        username: String,
        password: Option<Secret>,
    },
    /// `Authorization: <scheme> <credentials>` (scheme defaults to Bearer).
    Header {
        scheme: String,
        credentials: Option<Secret>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientSettings {
    pub auth: Option<Auth>,
    pub tls: TlsSettings,
    pub follow_redirects: bool,
}

/// Why a request failed; `reason()` is a short, bounded label for metrics.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL {0:?}")]
    Url(String),
    #[error("context deadline exceeded")]
    Timeout,
    #[error("{0}")]
    Connect(String),
    #[error("body size limit exceeded ({0} bytes)")]
    TooLarge(u64),
    #[error("gzip decoding failed: {0}")]
    Decompress(String),
    #[error("reading secret: {0}")]
    Secret(String),
    #[error("too many redirects")]
    Redirects,
}

impl FetchError {
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Url(_) => "invalid_url",
            FetchError::Timeout => "timeout",
            FetchError::Connect(_) => "connection",
            FetchError::TooLarge(_) => "body_size_limit",
            FetchError::Decompress(_) => "decompress",
            FetchError::Secret(_) => "secret",
            FetchError::Redirects => "redirects",
        }
    }
}

/// A TLS or file problem found while building a client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// A response read whole: status, content type and the (decompressed) body.
#[derive(Debug)]
pub struct Fetched {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// The body is still gzip-compressed (only from `get_compressed`).
    pub gzip: bool,
}

#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    settings: Arc<ClientSettings>,
    user_agent: HeaderValue,
}

impl HttpClient {
    pub fn new(settings: ClientSettings, user_agent: &str) -> Result<HttpClient, ClientError> {
        let tls = tls_config(&settings.tls)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(30)));
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
        let builder = match &settings.tls.server_name {
            Some(name) => {
                let name =
                    ServerName::try_from(name.clone()).map_err(|_| ClientError(format!("tls_config.server_name {name:?} is invalid")))?;
                builder.with_server_name_resolver(FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = builder.enable_http1().enable_http2().wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(connector);
        let user_agent = HeaderValue::from_str(user_agent).map_err(|_| ClientError("invalid user agent".into()))?;
        Ok(HttpClient { inner, settings: Arc::new(settings), user_agent })
    }

    /// GET with the given extra headers; the whole exchange must finish within `timeout`, and the
    /// body (after gzip decoding) may not exceed `limit` bytes (0 = no limit).
    pub async fn get(
        &self,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        timeout: Duration,
        limit: u64,
    ) -> Result<Fetched, FetchError> {
        self.request(Method::GET, url, headers, Bytes::new(), timeout, limit).await
    }

    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        timeout: Duration,
        limit: u64,
    ) -> Result<Fetched, FetchError> {
        let exchange = self.follow(method, url, headers, body, limit, true);
        tokio::time::timeout(timeout, exchange).await.map_err(|_| FetchError::Timeout)?
    }

    /// GET leaving a gzip body compressed (`Fetched::gzip`), so the caller can decompress it
    /// into a buffer it reuses; `limit` bounds the compressed size here.
    pub async fn get_compressed(
        &self,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        timeout: Duration,
        limit: u64,
    ) -> Result<Fetched, FetchError> {
        let exchange = self.follow(Method::GET, url, headers, Bytes::new(), limit, false);
        tokio::time::timeout(timeout, exchange).await.map_err(|_| FetchError::Timeout)?
    }

    async fn follow(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        limit: u64,
        decode: bool,
    ) -> Result<Fetched, FetchError> {
        let mut uri: Uri = url.parse().map_err(|_| FetchError::Url(url.to_string()))?;
        for _ in 0..10 {
            let req = self.build(method.clone(), &uri, headers, body.clone())?;
            let resp = self.inner.request(req).await.map_err(|e| FetchError::Connect(error_chain(&e)))?;
            let location = resp.headers().get(hyper::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
            match location {
                Some(loc) if self.settings.follow_redirects && resp.status().is_redirection() => {
                    uri = join_location(&uri, &loc).ok_or_else(|| FetchError::Url(loc.clone()))?;
                }
                _ => return read(resp, limit, decode).await,
            }
        }
        Err(FetchError::Redirects)
    }

    fn build(
        &self,
        method: Method,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, FetchError> {
        let mut req =
            Request::builder().method(method).uri(uri.clone()).body(Full::new(body)).map_err(|e| FetchError::Url(e.to_string()))?;
        let h = req.headers_mut();
        h.insert(hyper::header::USER_AGENT, self.user_agent.clone());
        for (k, v) in headers {
            h.insert(k.clone(), v.clone());
        }
        if let Some(value) = self.auth_header()? {
            h.insert(hyper::header::AUTHORIZATION, value);
        }
        Ok(req)
    }

    fn auth_header(&self) -> Result<Option<HeaderValue>, FetchError> {
        use base64::Engine as _;
        let text = match &self.settings.auth {
            None => return Ok(None),
            Some(Auth::Basic { username, password }) => {
                let password = password.as_ref().map(Secret::read).transpose()?.unwrap_or_default();
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
            }
            Some(Auth::Header { scheme, credentials }) => {
                format!("{scheme} {}", credentials.as_ref().map(Secret::read).transpose()?.unwrap_or_default())
            }
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| FetchError::Secret("credentials are not a valid header value".into()))?;
        value.set_sensitive(true);
        Ok(Some(value))
    }
}

fn join_location(base: &Uri, location: &str) -> Option<Uri> {
    if location.contains("://") {
        return location.parse().ok();
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    format!("{scheme}://{authority}{location}").parse().ok()
}

/// The innermost useful message of an error chain ("connection refused" rather than "client error").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

async fn read(resp: hyper::Response<hyper::body::Incoming>, limit: u64, decode: bool) -> Result<Fetched, FetchError> {
    let status = resp.status();
    let content_type = resp.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let gzip = resp.headers().get(hyper::header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let max = if limit == 0 { usize::MAX } else { limit as usize };
    let body = Limited::new(resp.into_body(), max).collect().await.map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            FetchError::TooLarge(limit)
        } else {
            FetchError::Connect(format!("reading body: {}", error_chain(&*e)))
        }
    })?;
    let mut body = body.to_bytes();
    if gzip && decode {
        body = gunzip(&body, limit)?;
    }
    Ok(Fetched { status, content_type, body, gzip: gzip && !decode })
}

/// Decompresses a gzip body, refusing to produce more than `limit` bytes (0 = no limit).
pub fn gunzip(data: &[u8], limit: u64) -> Result<Bytes, FetchError> {
    let mut out = Vec::new();
    gunzip_into(data, limit, &mut out)?;
    Ok(Bytes::from(out))
}

/// Decompresses into `out` (cleared first, its capacity reused), within `limit` bytes.
pub fn gunzip_into(data: &[u8], limit: u64, out: &mut Vec<u8>) -> Result<(), FetchError> {
    out.clear();
    // The gzip trailer's ISIZE is the uncompressed size (mod 2^32): allocate once, within the limit.
    let isize_hint = data.len().checked_sub(4).map(|i| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize);
    let cap = if limit == 0 { usize::MAX } else { limit as usize };
    out.reserve(isize_hint.unwrap_or(data.len() * 4).min(cap).saturating_add(1));
    let decoder = flate2::read::GzDecoder::new(data);
    let take = if limit == 0 { u64::MAX } else { limit + 1 };
    decoder.take(take).read_to_end(out).map_err(|e| FetchError::Decompress(e.to_string()))?;
    if limit != 0 && out.len() as u64 > limit {
        return Err(FetchError::TooLarge(limit));
    }
    Ok(())
}

pub fn tls_config(s: &TlsSettings) -> Result<ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if s.tls13_only { &[&rustls::version::TLS13] } else { &[&rustls::version::TLS12, &rustls::version::TLS13] };
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions).map_err(|e| ClientError(e.to_string()))?;
    let builder = if s.insecure_skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else if let Some(ca) = &s.ca_file {
        let certs = load_certs(ca)?;
        let mut roots = RootCertStore::empty();
        for cert in &certs {
            roots.add(cert.clone()).map_err(|e| ClientError(format!("{}: {e}", ca.display())))?;
        }
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| ClientError(format!("{}: {e}", ca.display())))?;
        builder.dangerous().with_custom_certificate_verifier(Arc::new(PinnedSelfSigned { inner, pinned: certs }))
    } else {
        builder.with_native_roots().map_err(|e| ClientError(format!("loading the system's CA certificates: {e}")))?
    };
    let config = match (&s.cert_file, &s.key_file) {
        (Some(cert), Some(key)) => {
            let certs = load_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| ClientError(format!("{}: cannot load key: {e}", key.display())))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| ClientError(format!("{}: {e}", cert.display())))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

fn load_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ClientError(format!("{}: cannot load certificates: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ClientError(format!("{}: no certificates found", path.display())));
    }
    Ok(certs)
}

/// Standard verification against the `ca_file`, plus what Go's TLS (and so Prometheus and
/// blackbox_exporter) accepts and webpki does not: a self-signed server certificate marked as a CA
/// (`openssl req -x509` makes those) that is itself listed in `ca_file`. Such a certificate is
/// accepted when it is byte-identical to a listed one and valid for the server's name; webpki
/// has already checked its validity period before it reports "CA used as end entity".
#[derive(Debug)]
struct PinnedSelfSigned {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinnedSelfSigned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        let ca_as_leaf = matches!(&result, Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(e)))
            if format!("{e:?}").contains("CaUsedAsEndEntity"));
        if ca_as_leaf && self.pinned.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        result
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: accepts any server certificate (signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gunzip_respects_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![b'a'; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, 0).unwrap().len(), 10_000);
        assert_eq!(gunzip(&gz, 10_000).unwrap().len(), 10_000);
        assert!(matches!(gunzip(&gz, 9_999), Err(FetchError::TooLarge(9_999))));
        assert!(matches!(gunzip(b"not gzip", 0), Err(FetchError::Decompress(_))));
    }

    #[test]
    fn redirect_locations_resolve_against_the_request() {
        let base: Uri = "http://h:1/metrics".parse().unwrap();
        assert_eq!(join_location(&base, "/other?x=1").unwrap().to_string(), "http://h:1/other?x=1");
        assert_eq!(join_location(&base, "https://g/").unwrap().to_string(), "https://g/");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let s = Auth::Basic { username: "u".into(), password: Some(Secret::Inline("hunter2".into())) };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
