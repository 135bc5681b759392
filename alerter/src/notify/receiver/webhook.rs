//! The `webhook` integration: POSTs Alertmanager's webhook JSON (version "4") to a URL, so
//! receivers written for Alertmanager work unchanged.

use super::http::{HttpConfig, Poster};
use super::payload::webhook_json;
use super::secret::{pick, SecretString};
use super::{SendFuture, Sender};
use crate::notify::message::Notification;
use fleetwatch_common::duration::PromDuration;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL (a secret: it often carries a token).
    pub url: Option<SecretString>,
    pub url_file: Option<PathBuf>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default)]
    pub http_config: HttpConfig,
    /// At most this many alerts per message (0 = all).
    #[serde(default)]
    pub max_alerts: usize,
    pub timeout: Option<PromDuration>,
}

fn yes() -> bool {
    true
}

pub struct WebhookSender {
    url: SecretString,
    poster: Poster,
    send_resolved: bool,
    max_alerts: usize,
    timeout: Duration,
}

impl WebhookSender {
    pub fn new(c: &WebhookConfig, base: &Path) -> Result<WebhookSender, String> {
        let url = pick(&c.url, &c.url_file, base, "url", true)?.unwrap_or_default();
        check_url(url.expose())?;
        Ok(WebhookSender {
            url,
            poster: Poster::new(&c.http_config, base)?,
            send_resolved: c.send_resolved,
            max_alerts: c.max_alerts,
            timeout: c.timeout.map_or(super::DEFAULT_TIMEOUT, |t| t.0),
        })
    }
}

/// An http(s) URL; the message does not repeat it (it may be a secret).
pub fn check_url(url: &str) -> Result<(), String> {
    let ok = (url.starts_with("http://") || url.starts_with("https://")) && url.parse::<hyper::Uri>().is_ok();
    if ok {
        Ok(())
    } else {
        Err("url: not a valid http(s) URL".into())
    }
}

impl Sender for WebhookSender {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let body = webhook_json(n, self.max_alerts);
            self.poster.post_json(self.url.expose(), body.into(), self.timeout).await.map(|_| ())
        })
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
