//! Prometheus's client-side config blocks as YAML (`basic_auth`, `authorization`, `tls_config`),
//! their checks, and their translation into the HTTP client's settings. Used by the alerter's
//! scrape configs and notifiers and by the exporter's health checks.

use crate::client::{Auth, Secret, TlsSettings};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationConfig {
    #[serde(default = "bearer", rename = "type")]
    pub kind: String,
    pub credentials: Option<String>,
    pub credentials_file: Option<PathBuf>,
}

fn bearer() -> String {
    "Bearer".into()
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsClientConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    pub min_version: Option<String>,
}

impl TlsClientConfig {
    /// Checks what serde cannot: paired files and a known minimum version.
    pub fn check(&self) -> Result<(), String> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("tls_config: cert_file and key_file must be set together".into());
        }
        if let Some(v) = &self.min_version {
            if !matches!(v.as_str(), "TLS12" | "TLS13") {
                return Err(format!("tls_config.min_version: {v:?} is not supported (TLS12 or TLS13)"));
            }
        }
        Ok(())
    }

    pub fn settings(&self) -> TlsSettings {
        TlsSettings {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            server_name: self.server_name.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
            tls13_only: self.min_version.as_deref() == Some("TLS13"),
        }
    }
}

/// Checks the auth blocks: at most one of them, and at most one source per secret.
pub fn check_auth(basic: &Option<BasicAuthConfig>, authz: &Option<AuthorizationConfig>) -> Result<(), String> {
    if let Some(b) = basic {
        if b.password.is_some() && b.password_file.is_some() {
            return Err("basic_auth: at most one of password and password_file may be set".into());
        }
    }
    if let Some(a) = authz {
        if a.credentials.is_some() && a.credentials_file.is_some() {
            return Err("authorization: at most one of credentials and credentials_file may be set".into());
        }
        if a.kind.eq_ignore_ascii_case("basic") {
            return Err("authorization: type \"Basic\" is not allowed; use basic_auth".into());
        }
    }
    if basic.is_some() && authz.is_some() {
        return Err("at most one of basic_auth and authorization may be configured".into());
    }
    Ok(())
}

/// The client's auth setting for the config blocks (basic auth wins; `check_auth` refuses both).
pub fn auth_of(basic: &Option<BasicAuthConfig>, authz: &Option<AuthorizationConfig>) -> Option<Auth> {
    if let Some(b) = basic {
        let password = secret(&b.password, &b.password_file);
        return Some(Auth::Basic { username: b.username.clone(), password });
    }
    authz.as_ref().map(|a| Auth::Header { scheme: a.kind.clone(), credentials: secret(&a.credentials, &a.credentials_file) })
}

fn secret(inline: &Option<String>, file: &Option<PathBuf>) -> Option<Secret> {
    match (inline, file) {
        (Some(s), _) => Some(Secret::Inline(s.clone())),
        (None, Some(f)) => Some(Secret::File(f.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_checks_and_translation() {
        let basic = Some(BasicAuthConfig { username: "u".into(), password: None, password_file: Some("/p".into()) });
        let authz = Some(AuthorizationConfig { kind: "Bearer".into(), credentials: Some("t".into()), credentials_file: None });
        assert!(check_auth(&basic, &None).is_ok());
        assert!(check_auth(&basic, &authz).unwrap_err().contains("at most one"));
        assert_eq!(auth_of(&basic, &None), Some(Auth::Basic { username: "u".into(), password: Some(Secret::File("/p".into())) }));
        assert_eq!(auth_of(&None, &authz), Some(Auth::Header { scheme: "Bearer".into(), credentials: Some(Secret::Inline("t".into())) }));
        let tls = TlsClientConfig { cert_file: Some("/c".into()), ..Default::default() };
        assert!(tls.check().unwrap_err().contains("together"));
        let tls = TlsClientConfig { min_version: Some("TLS13".into()), ..Default::default() };
        assert!(tls.check().is_ok() && tls.settings().tls13_only);
    }
}
