//! Builds a rustls server configuration from `tls_server_config`, with every exporter-toolkit
//! client-auth mode.

use super::config::{ClientAuthType, TlsServerConfig, TlsVersion};
use super::WebError;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

fn bad(msg: impl Into<String>) -> WebError {
    WebError::Tls(msg.into())
}

/// The TLS set-up for serving, validated the way exporter-toolkit validates it.
pub fn server_config(cfg: &TlsServerConfig, http2: bool) -> Result<Arc<ServerConfig>, WebError> {
    if !cfg.client_allowed_sans.is_empty() {
        return Err(bad("client_allowed_sans is not supported; restrict clients with client_ca_file instead"));
    }
    let cert_file = cfg.cert_file.as_deref().ok_or_else(|| bad("missing cert_file"))?;
    let key_file = cfg.key_file.as_deref().ok_or_else(|| bad("missing key_file"))?;
    let certs = load_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| bad(format!("{}: cannot load key: {e}", key_file.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = versions(cfg)?;
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions).map_err(|e| bad(e.to_string()))?;
    let verifier = client_verifier(cfg, &provider)?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| bad(format!("{}: {e}", cert_file.display())))?;
    config.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    ignored_options_warning(cfg);
    Ok(Arc::new(config))
}

fn ignored_options_warning(cfg: &TlsServerConfig) {
    if !cfg.cipher_suites.is_empty() || !cfg.curve_preferences.is_empty() || cfg.prefer_server_cipher_suites.is_some() {
        tracing::warn!("cipher_suites, curve_preferences and prefer_server_cipher_suites are ignored: rustls offers only modern AEAD suites and curves");
    }
}

fn versions(cfg: &TlsServerConfig) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, WebError> {
    let min = cfg.min_version.unwrap_or(TlsVersion::TLS12);
    let max = cfg.max_version.unwrap_or(TlsVersion::TLS13);
    if min < TlsVersion::TLS12 {
        return Err(bad("min_version below TLS12 is not supported (TLS 1.0 and 1.1 are obsolete)"));
    }
    if max < min {
        return Err(bad("max_version is lower than min_version"));
    }
    let mut out = Vec::new();
    if min <= TlsVersion::TLS12 && max >= TlsVersion::TLS12 {
        out.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::TLS13 {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, WebError> {
    let certs: Result<Vec<_>, _> =
        CertificateDer::pem_file_iter(path).map_err(|e| bad(format!("{}: cannot read certificates: {e}", path.display())))?.collect();
    let certs = certs.map_err(|e| bad(format!("{}: invalid certificate: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(bad(format!("{}: no certificate found", path.display())));
    }
    Ok(certs)
}

fn client_verifier(cfg: &TlsServerConfig, provider: &Arc<CryptoProvider>) -> Result<Option<Arc<dyn ClientCertVerifier>>, WebError> {
    let roots = match &cfg.client_ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(path)? {
                roots.add(cert).map_err(|e| bad(format!("{}: {e}", path.display())))?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    let verifying = |roots: Option<Arc<RootCertStore>>, optional: bool| -> Result<Option<Arc<dyn ClientCertVerifier>>, WebError> {
        let roots = roots.ok_or_else(|| bad("client_ca_file is required for this client_auth_type"))?;
        let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
        let builder = if optional { builder.allow_unauthenticated() } else { builder };
        Ok(Some(builder.build().map_err(|e| bad(e.to_string()))?))
    };
    match cfg.client_auth_type {
        ClientAuthType::NoClientCert if roots.is_some() => Err(bad("client_ca_file is set but client_auth_type is NoClientCert")),
        ClientAuthType::NoClientCert => Ok(None),
        ClientAuthType::RequestClientCert => Ok(Some(Arc::new(AnyClientCert::new(provider, false)))),
        ClientAuthType::RequireAnyClientCert => Ok(Some(Arc::new(AnyClientCert::new(provider, true)))),
        ClientAuthType::VerifyClientCertIfGiven => verifying(roots, true),
        ClientAuthType::RequireAndVerifyClientCert => verifying(roots, false),
    }
}

/// Asks for a client certificate and accepts any well-signed one without checking its chain,
/// as Go's RequestClientCert / RequireAnyClientCert do.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
    mandatory: bool,
}

impl AnyClientCert {
    fn new(provider: &CryptoProvider, mandatory: bool) -> Self {
        AnyClientCert { algorithms: provider.signature_verification_algorithms, mandatory }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        msg: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(msg, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        msg: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(msg, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
