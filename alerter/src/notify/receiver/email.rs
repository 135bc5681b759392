//! The `email` integration: a multipart text + HTML message over SMTP with `lettre` (rustls, no
//! OpenSSL): STARTTLS (required by default), implicit TLS (port 465 or `tls: implicit`), or
//! plain; PLAIN/LOGIN authentication. Subject, headers and bodies are notification templates.

use super::secret::{pick, resolve, SecretString};
use super::templates::{Text, DEFAULT_HTML, DEFAULT_SUBJECT, DEFAULT_TEXT};
use super::{SendError, SendFuture, Sender};
use crate::notify::message::Notification;
use fleetwatch_common::duration::PromDuration;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTlsConfig {
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    pub server_name: Option<String>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// STARTTLS (required unless `require_tls: false`).
    Starttls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipients, comma-separated (a template, as in Alertmanager).
    pub to: String,
    pub from: String,
    /// `host:port` of the SMTP server.
    pub smarthost: String,
    /// The name given in EHLO.
    #[serde(default = "localhost")]
    pub hello: String,
    pub auth_username: Option<String>,
    pub auth_password: Option<SecretString>,
    pub auth_password_file: Option<PathBuf>,
    /// Accepted for Alertmanager compatibility; PLAIN is sent without an authorization identity.
    pub auth_identity: Option<String>,
    /// STARTTLS must succeed (default); with `false` it is used when the server offers it.
    #[serde(default = "yes")]
    pub require_tls: bool,
    /// `implicit` or `starttls`; by default implicit on port 465, else STARTTLS.
    pub tls: Option<TlsMode>,
    #[serde(default)]
    pub tls_config: EmailTlsConfig,
    /// Extra headers, values are templates; `Subject` overrides the default subject.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body templates; an empty `html` sends a text-only message.
    pub text: Option<String>,
    pub html: Option<String>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    pub timeout: Option<PromDuration>,
}

fn yes() -> bool {
    true
}

fn localhost() -> String {
    "localhost".into()
}

pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Text,
    subject: Text,
    headers: Vec<(HeaderName, Text)>,
    text: Text,
    html: Option<Text>,
    send_resolved: bool,
    timeout: Duration,
}

impl EmailSender {
    pub fn new(c: &EmailConfig, base: &Path) -> Result<EmailSender, String> {
        let timeout = c.timeout.map_or(super::DEFAULT_TIMEOUT, |t| t.0);
        let from: Mailbox = c.from.parse().map_err(|e| format!("from: {:?}: {e}", c.from))?;
        let mut subject = Text::parse("subject", None, DEFAULT_SUBJECT, false)?;
        let mut headers = Vec::new();
        for (name, value) in &c.headers {
            if name.eq_ignore_ascii_case("subject") {
                subject = Text::parse("subject", Some(value), "", false)?;
                continue;
            }
            if ["to", "from"].iter().any(|h| name.eq_ignore_ascii_case(h)) {
                return Err(format!("headers: set {name:?} with the `{}` field", name.to_ascii_lowercase()));
            }
            let header = HeaderName::new_from_ascii(name.clone()).map_err(|_| format!("headers: {name:?} is not a valid header name"))?;
            headers.push((header, Text::parse(name, Some(value), "", false)?));
        }
        let html = match c.html.as_deref() {
            Some("") => None,
            other => Some(Text::parse("html", other, DEFAULT_HTML, true)?),
        };
        Ok(EmailSender {
            transport: transport(c, base, timeout)?,
            from,
            to: Text::parse("to", Some(&c.to), "", false)?,
            subject,
            headers,
            text: Text::parse("text", c.text.as_deref(), DEFAULT_TEXT, false)?,
            html,
            send_resolved: c.send_resolved,
            timeout,
        })
    }

    /// The message for `n`.
    pub fn message(&self, n: &Notification) -> Result<Message, SendError> {
        let to = self.to.render(n)?;
        let to: Mailboxes = to.parse().map_err(|e| SendError::fatal(format!("to: {to:?}: {e}")))?;
        let mut b = Message::builder().message_id(None).from(self.from.clone()).subject(self.subject.render(n)?);
        for mailbox in to {
            b = b.to(mailbox);
        }
        for (name, value) in &self.headers {
            b = b.raw_header(HeaderValue::new(name.clone(), value.render(n)?));
        }
        let text = self.text.render(n)?;
        let built = match &self.html {
            Some(html) => b.multipart(MultiPart::alternative_plain_html(text, html.render(n)?)),
            None => b.singlepart(SinglePart::plain(text)),
        };
        built.map_err(|e| SendError::fatal(format!("building the message: {e}")))
    }
}

fn transport(c: &EmailConfig, base: &Path, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let (host, port) = split_host_port(&c.smarthost)?;
    let mode = c.tls.unwrap_or(if port == 465 { TlsMode::Implicit } else { TlsMode::Starttls });
    let params = tls_parameters(&c.tls_config, &host, base)?;
    let tls = match mode {
        TlsMode::Implicit => Tls::Wrapper(params),
        TlsMode::Starttls if c.require_tls => Tls::Required(params),
        TlsMode::Starttls => Tls::Opportunistic(params),
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(timeout))
        .hello_name(ClientId::Domain(c.hello.clone()));
    if let Some(user) = &c.auth_username {
        let password = pick(&c.auth_password, &c.auth_password_file, base, "auth_password", false)?.unwrap_or_default();
        b = b
            .credentials(Credentials::new(user.clone(), password.expose().to_string()))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    } else if c.auth_password.is_some() || c.auth_password_file.is_some() {
        return Err("auth_password needs auth_username".into());
    }
    Ok(b.build())
}

fn tls_parameters(t: &EmailTlsConfig, host: &str, base: &Path) -> Result<TlsParameters, String> {
    let name = t.server_name.clone().unwrap_or_else(|| host.to_string());
    let mut b = TlsParameters::builder(name).dangerous_accept_invalid_certs(t.insecure_skip_verify);
    if let Some(ca) = &t.ca_file {
        let path = resolve(base, ca);
        let pem = std::fs::read(&path).map_err(|e| format!("tls_config.ca_file {}: {e}", path.display()))?;
        let cert = Certificate::from_pem(&pem).map_err(|e| format!("tls_config.ca_file {}: {e}", path.display()))?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls().map_err(|e| format!("tls_config: {e}"))
}

/// `host:port` (or `[v6]:port`); the port is required, as in Alertmanager.
fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let err = || format!("smarthost: {s:?} is not host:port");
    let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
    let port: u16 = port.parse().map_err(|_| err())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(err());
    }
    Ok((host.to_string(), port))
}

impl Sender for EmailSender {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let message = self.message(n)?;
            // lettre bounds connecting, not a server that stops answering: bound the exchange.
            let sent = tokio::time::timeout(self.timeout, self.transport.send(message))
                .await
                .map_err(|_| SendError::retry(format!("SMTP: no answer within {:?}", self.timeout)))?;
            match sent {
                Ok(_) => Ok(()),
                // 5xx replies (bad recipient, authentication refused) will not change on a retry.
                Err(e) if e.is_permanent() => Err(SendError::fatal(format!("SMTP: {e}"))),
                Err(e) => Err(SendError::retry(format!("SMTP: {}", fleetwatch_common::client::error_chain(&e)))),
            }
        })
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::receiver::payload::fixtures::notification;

    fn sender(yaml: &str) -> Result<EmailSender, String> {
        let c: EmailConfig = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        EmailSender::new(&c, Path::new("/"))
    }

    const BASE: &str = "to: 'ops@example.com, dba@example.com'\nfrom: 'Fleetwatch <alerts@example.com>'\nsmarthost: 127.0.0.1:2525\n";

    #[test]
    fn message_has_recipients_subject_and_both_bodies() {
        let s = sender(&format!("{BASE}headers: {{X-Team: '{{{{ .Receiver }}}}'}}\n")).unwrap();
        let m = s.message(&notification()).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Subject: [FIRING:1] HighCPU (critical)"), "{raw}");
        assert!(raw.contains("To: ops@example.com, dba@example.com"), "{raw}");
        assert!(raw.contains("From: Fleetwatch <alerts@example.com>"), "{raw}");
        assert!(raw.contains("X-Team: team-x"), "{raw}");
        assert!(raw.contains("multipart/alternative") && raw.contains("text/plain") && raw.contains("text/html"), "{raw}");
        let s = sender(&format!("{BASE}html: ''\nheaders: {{Subject: 'S {{{{ .Status }}}}'}}\n")).unwrap();
        let raw = String::from_utf8(s.message(&notification()).unwrap().formatted()).unwrap();
        assert!(raw.contains("Subject: S firing") && !raw.contains("text/html"), "{raw}");
    }

    #[test]
    fn config_errors_and_redaction() {
        assert!(sender("to: a@b\nfrom: c@d\nsmarthost: nohost\n").err().unwrap().contains("host:port"));
        assert!(sender("to: a@b\nfrom: 'not an address'\nsmarthost: h:25\n").err().unwrap().contains("from"));
        let c: EmailConfig = serde_yaml_ng::from_str(&format!("{BASE}auth_username: u\nauth_password: hunter2\n")).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(split_host_port("[::1]:25").unwrap(), ("::1".to_string(), 25));
    }
}
