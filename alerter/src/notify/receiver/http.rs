//! The HTTP side shared by the webhook, Slack and Alertmanager integrations: their `http_config`
//! block (Prometheus's basic_auth / authorization / tls_config, plus extra headers), a client
//! built on the shared `fleetwatch_common::client`, and the mapping of outcomes to `SendError`
//! (2xx delivered; 429, 5xx and network errors retryable; other statuses fatal).

use super::secret::resolve;
use super::SendError;
use bytes::Bytes;
use fleetwatch_common::client::{ClientSettings, HttpClient};
use fleetwatch_common::client_config::{auth_of, check_auth, AuthorizationConfig, BasicAuthConfig, TlsClientConfig};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How much of an error response body is quoted in the error.
const QUOTED_BODY: usize = 256;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub basic_auth: Option<BasicAuthConfig>,
    pub authorization: Option<AuthorizationConfig>,
    #[serde(default)]
    pub tls_config: TlsClientConfig,
    /// Extra request headers (values may be secrets: they are not shown in Debug output).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            basic_auth: None,
            authorization: None,
            tls_config: TlsClientConfig::default(),
            headers: BTreeMap::new(),
            follow_redirects: true,
        }
    }
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("basic_auth", &self.basic_auth.as_ref().map(|b| format!("{} <secret>", b.username)))
            .field("authorization", &self.authorization.as_ref().map(|a| format!("{} <secret>", a.kind)))
            .field("tls_config", &self.tls_config)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("follow_redirects", &self.follow_redirects)
            .finish()
    }
}

/// A client for one integration: its auth, TLS and headers.
#[derive(Clone)]
pub struct Poster {
    client: HttpClient,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Poster {
    /// Builds the client; relative file paths are resolved against `base`.
    pub fn new(cfg: &HttpConfig, base: &Path) -> Result<Poster, String> {
        check_auth(&cfg.basic_auth, &cfg.authorization)?;
        cfg.tls_config.check()?;
        let mut basic = cfg.basic_auth.clone();
        if let Some(p) = basic.as_mut().and_then(|b| b.password_file.as_mut()) {
            *p = resolve(base, p);
        }
        let mut authz = cfg.authorization.clone();
        if let Some(p) = authz.as_mut().and_then(|a| a.credentials_file.as_mut()) {
            *p = resolve(base, p);
        }
        let mut tls = cfg.tls_config.settings();
        for p in [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file].into_iter().flatten() {
            *p = resolve(base, p);
        }
        let settings = ClientSettings { auth: auth_of(&basic, &authz), tls, follow_redirects: cfg.follow_redirects };
        let client = HttpClient::new(settings, &format!("fleetwatch-alerter/{}", env!("CARGO_PKG_VERSION"))).map_err(|e| e.0)?;
        let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        for (k, v) in &cfg.headers {
            let name = HeaderName::try_from(k.as_str()).map_err(|_| format!("headers: {k:?} is not a valid header name"))?;
            let mut value = HeaderValue::from_str(v).map_err(|_| format!("headers: the value of {k:?} is not a valid header value"))?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        Ok(Poster { client, headers })
    }

    /// POSTs a JSON body; the error names neither the URL (it may hold a token) nor secrets.
    pub async fn post_json(&self, url: &str, body: Bytes, timeout: Duration) -> Result<Bytes, SendError> {
        let r = self.client.request(Method::POST, url, &self.headers, body, timeout, 1 << 20).await;
        let fetched = r.map_err(|e| match e {
            fleetwatch_common::client::FetchError::Url(_) => SendError::fatal("invalid URL"),
            e => SendError::retry(e.to_string()),
        })?;
        check_status(fetched.status, &fetched.body)?;
        Ok(fetched.body)
    }
}

/// 2xx is delivered; 429 and 5xx may succeed later; any other status will not.
pub fn check_status(status: StatusCode, body: &[u8]) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTED_BODY)]);
    let msg = format!("unexpected status code {}: {}", status.as_u16(), text.trim());
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(SendError::retry(msg))
    } else {
        Err(SendError::fatal(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_retryable_or_fatal() {
        assert!(check_status(StatusCode::OK, b"").is_ok());
        assert!(check_status(StatusCode::NO_CONTENT, b"").is_ok());
        assert!(check_status(StatusCode::INTERNAL_SERVER_ERROR, b"boom").unwrap_err().retryable);
        assert!(check_status(StatusCode::TOO_MANY_REQUESTS, b"").unwrap_err().retryable);
        let e = check_status(StatusCode::BAD_REQUEST, b"bad payload").unwrap_err();
        assert!(!e.retryable && e.msg.contains("400") && e.msg.contains("bad payload"));
    }

    #[test]
    fn debug_output_hides_credentials_and_header_values() {
        let c: HttpConfig =
            serde_yaml_ng::from_str("basic_auth: {username: u, password: hunter2}\nheaders: {X-Api-Key: topsecret}\n").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("X-Api-Key"));
    }
}
