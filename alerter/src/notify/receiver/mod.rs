//! Receivers: a named set of integrations (Alertmanager's `receivers:` entries with their
//! `*_configs` lists), built from config into `Sender`s that deliver one `Notification` each call.
//! The delivery layer (outbox, retries, metrics) calls `Sender::send` and nothing else.

pub mod alertmanager;
pub mod email;
pub mod exec;
pub mod http;
pub mod log;
pub mod payload;
pub mod secret;
pub mod slack;
pub mod templates;
pub mod webhook;

use super::message::Notification;
use serde::Deserialize;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

/// One `receivers:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    #[serde(default)]
    pub log_configs: Vec<log::LogConfig>,
    #[serde(default)]
    pub webhook_configs: Vec<webhook::WebhookConfig>,
    #[serde(default)]
    pub exec_configs: Vec<exec::ExecConfig>,
    #[serde(default)]
    pub slack_configs: Vec<slack::SlackConfig>,
    #[serde(default)]
    pub email_configs: Vec<email::EmailConfig>,
    #[serde(default)]
    pub alertmanager_configs: Vec<alertmanager::AlertmanagerConfig>,
}

/// How long one delivery attempt may take when the integration sets no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What building a receiver needs besides its config.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// Relative `*_file` paths are resolved against this (the config file's directory).
    pub base_dir: PathBuf,
}

/// A receiver's config that cannot be turned into senders (unreadable secret file, bad URL, …).
#[derive(Debug, thiserror::Error)]
#[error("receiver {receiver:?}: {integration}[{index}]: {msg}")]
pub struct BuildError {
    pub receiver: String,
    pub integration: &'static str,
    pub index: usize,
    pub msg: String,
}

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct SendError {
    pub msg: String,
    /// Whether trying again later can help (network errors, 5xx, 429: yes; 4xx, bad template: no).
    pub retryable: bool,
}

impl SendError {
    pub fn retry(msg: impl Into<String>) -> SendError {
        SendError { msg: msg.into(), retryable: true }
    }
    pub fn fatal(msg: impl Into<String>) -> SendError {
        SendError { msg: msg.into(), retryable: false }
    }
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// One integration of a receiver (one entry of a `*_configs` list).
pub trait Sender: Send + Sync {
    /// Delivers `n` once; the caller retries retryable errors.
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a>;
    /// Whether resolved notifications are sent to it.
    fn send_resolved(&self) -> bool;
    /// How long one attempt may take before it counts as failed (and retryable).
    fn timeout(&self) -> Duration {
        DEFAULT_TIMEOUT
    }
}

/// A built integration: its kind (`webhook`, `email`, …), its index in the kind's list and
/// the sender.
pub struct Integration {
    pub kind: &'static str,
    pub index: usize,
    pub sender: Box<dyn Sender>,
}

/// Builds every integration of `cfg`.
pub fn build(cfg: &ReceiverConfig, ctx: &BuildContext) -> Result<Vec<Integration>, BuildError> {
    let mut out = Vec::new();
    let base = ctx.base_dir.as_path();
    for (index, c) in cfg.log_configs.iter().enumerate() {
        out.push(Integration { kind: "log", index, sender: Box::new(log::LogSender::new(&cfg.name, c)) });
    }
    add(&mut out, cfg, "webhook", &cfg.webhook_configs, |c| Ok(Box::new(webhook::WebhookSender::new(c, base)?)))?;
    add(&mut out, cfg, "exec", &cfg.exec_configs, |c| Ok(Box::new(exec::ExecSender::new(&cfg.name, c, base)?)))?;
    add(&mut out, cfg, "slack", &cfg.slack_configs, |c| Ok(Box::new(slack::SlackSender::new(c, base)?)))?;
    add(&mut out, cfg, "email", &cfg.email_configs, |c| Ok(Box::new(email::EmailSender::new(c, base)?)))?;
    add(&mut out, cfg, "alertmanager", &cfg.alertmanager_configs, |c| Ok(Box::new(alertmanager::AlertmanagerSender::new(c, base)?)))?;
    Ok(out)
}

/// Builds one `*_configs` list into `out`, naming the entry in errors.
fn add<C>(
    out: &mut Vec<Integration>,
    cfg: &ReceiverConfig,
    kind: &'static str,
    configs: &[C],
    make: impl Fn(&C) -> Result<Box<dyn Sender>, String>,
) -> Result<(), BuildError> {
    for (index, c) in configs.iter().enumerate() {
        let sender = make(c).map_err(|msg| BuildError { receiver: cfg.name.clone(), integration: kind, index, msg })?;
        out.push(Integration { kind, index, sender });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_builds_and_no_secret_shows_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("url"), "https://hooks.example.invalid/from-file-token\n").unwrap();
        let yaml = r#"
name: everything
log_configs: [{}]
webhook_configs:
  - url: https://hook.example.invalid/inline-token
    http_config: {authorization: {credentials: bearer-token}, headers: {X-Key: header-token}}
  - url_file: url
    http_config: {basic_auth: {username: u, password: basic-token}}
exec_configs: [{command: [/bin/true], env: {API_KEY: env-token}}]
slack_configs: [{api_url: https://hooks.slack.invalid/slack-token}]
email_configs: [{to: a@example.com, from: b@example.com, smarthost: 'mail:587', auth_username: u, auth_password: smtp-token}]
alertmanager_configs: [{urls: ['http://am:9093'], http_config: {basic_auth: {username: u, password: am-token}}}]
"#;
        let cfg: ReceiverConfig = serde_yaml_ng::from_str(yaml).unwrap();
        let shown = format!("{cfg:?}");
        for secret in ["inline-token", "bearer-token", "header-token", "basic-token", "env-token", "slack-token", "smtp-token", "am-token"]
        {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let built = build(&cfg, &BuildContext { base_dir: dir.path().to_path_buf() }).unwrap();
        let kinds: Vec<_> = built.iter().map(|i| (i.kind, i.index)).collect();
        assert_eq!(kinds, [("log", 0), ("webhook", 0), ("webhook", 1), ("exec", 0), ("slack", 0), ("email", 0), ("alertmanager", 0)]);
    }

    #[test]
    fn build_errors_name_the_integration() {
        let cfg: ReceiverConfig =
            serde_yaml_ng::from_str("name: r\nwebhook_configs: [{url: 'http://ok:1/'}, {url_file: missing}]\n").unwrap();
        let e = build(&cfg, &BuildContext { base_dir: "/nonexistent".into() }).err().unwrap().to_string();
        assert!(e.starts_with("receiver \"r\": webhook[1]: url_file /nonexistent/missing"), "{e}");
        let cfg: ReceiverConfig = serde_yaml_ng::from_str("name: r\nslack_configs: [{api_url: 'x', text: '{{ .Nope'}]\n").unwrap();
        assert!(build(&cfg, &BuildContext::default()).is_err());
    }
}
