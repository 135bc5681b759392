//! The `alertmanager` integration: POSTs the alerts to `/api/v2/alerts` of every listed
//! Alertmanager, as Prometheus does; delivered when at least one accepts them. The dispatcher
//! decides what to (re-)send; this sends what it is given.

use super::http::{HttpConfig, Poster};
use super::{SendError, SendFuture, Sender};
use crate::notify::message::{Notification, Status, KV};
use crate::timefmt::rfc3339;
use fleetwatch_common::duration::PromDuration;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager base URLs (`http://am-1:9093`, or with a path prefix); `/api/v2/alerts` is appended.
    pub urls: Vec<String>,
    pub timeout: Option<PromDuration>,
    #[serde(default)]
    pub http_config: HttpConfig,
    /// Resolutions are always sent (Alertmanager needs them); `false` is refused.
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

fn yes() -> bool {
    true
}

/// One alert as Alertmanager's API v2 takes it (`postableAlert`).
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert<'a> {
    pub labels: &'a KV,
    pub annotations: &'a KV,
    pub starts_at: String,
    /// Set once resolved; while firing Alertmanager's `resolve_timeout` applies, and the
    /// dispatcher re-sends active alerts well within it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
}

pub fn postable_alerts(n: &Notification) -> Vec<PostableAlert<'_>> {
    n.alerts
        .iter()
        .map(|a| PostableAlert {
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: rfc3339(a.starts_at_ms),
            ends_at: match (a.status, a.ends_at_ms) {
                (Status::Resolved, Some(t)) => Some(rfc3339(t)),
                _ => None,
            },
            generator_url: &a.generator_url,
        })
        .collect()
}

pub struct AlertmanagerSender {
    urls: Vec<String>,
    poster: Poster,
    timeout: Duration,
}

impl AlertmanagerSender {
    pub fn new(c: &AlertmanagerConfig, base: &Path) -> Result<AlertmanagerSender, String> {
        if c.urls.is_empty() {
            return Err("urls: at least one Alertmanager URL is needed".into());
        }
        if !c.send_resolved {
            return Err("send_resolved: Alertmanager needs resolutions; it cannot be false".into());
        }
        let mut urls = Vec::new();
        for u in &c.urls {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.parse::<hyper::Uri>().is_err() {
                return Err(format!("urls: {u:?} is not a valid http(s) URL"));
            }
            urls.push(alerts_endpoint(u));
        }
        Ok(AlertmanagerSender {
            urls,
            poster: Poster::new(&c.http_config, base)?,
            timeout: c.timeout.map_or(Duration::from_secs(10), |t| t.0),
        })
    }
}

/// `<base>/api/v2/alerts`, unless the URL already names that endpoint.
fn alerts_endpoint(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/api/v2/alerts") {
        base.to_string()
    } else {
        format!("{base}/api/v2/alerts")
    }
}

impl Sender for AlertmanagerSender {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let body = bytes::Bytes::from(serde_json::to_vec(&postable_alerts(n)).unwrap_or_default());
            let mut tasks = tokio::task::JoinSet::new();
            for url in &self.urls {
                let (poster, url, body, timeout) = (self.poster.clone(), url.clone(), body.clone(), self.timeout);
                tasks.spawn(async move { (poster.post_json(&url, body, timeout).await, url) });
            }
            let mut errors = Vec::new();
            let mut delivered = false;
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((Ok(_), _)) => delivered = true,
                    Ok((Err(e), url)) => {
                        tracing::warn!(url = %url, error = %e, "sending alerts to Alertmanager failed");
                        errors.push(e);
                    }
                    Err(e) => errors.push(SendError::retry(e.to_string())),
                }
            }
            if delivered {
                return Ok(());
            }
            let retryable = errors.iter().any(|e| e.retryable);
            let msg = errors.iter().map(|e| e.msg.as_str()).collect::<Vec<_>>().join("; ");
            Err(SendError { msg: format!("no Alertmanager accepted the alerts: {msg}"), retryable })
        })
    }

    fn send_resolved(&self) -> bool {
        true
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::receiver::payload::fixtures::notification;

    #[test]
    fn postable_alerts_match_the_v2_api() {
        let got = serde_json::to_value(postable_alerts(&notification())).unwrap();
        let want = serde_json::json!([
            {
                "labels": {"alertname": "HighCPU", "instance": "web-1:9100", "severity": "critical"},
                "annotations": {"summary": "CPU busy on web-1"},
                "startsAt": "2023-11-14T22:13:20.000Z",
                "generatorURL": "http://alerter:9911/graph?g0.expr=cpu"
            },
            {
                "labels": {"alertname": "HighCPU", "instance": "web-2:9100", "severity": "critical"},
                "annotations": {"summary": "CPU busy on web-2"},
                "startsAt": "2023-11-14T21:56:40.000Z",
                "endsAt": "2023-11-14T22:14:20.500Z",
                "generatorURL": "http://alerter:9911/graph?g0.expr=cpu"
            }
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn endpoints_and_checks() {
        assert_eq!(alerts_endpoint("http://am:9093"), "http://am:9093/api/v2/alerts");
        assert_eq!(alerts_endpoint("http://am:9093/prefix/"), "http://am:9093/prefix/api/v2/alerts");
        assert_eq!(alerts_endpoint("http://am:9093/api/v2/alerts"), "http://am:9093/api/v2/alerts");
        let c: AlertmanagerConfig = serde_yaml_ng::from_str("urls: []\n").unwrap();
        assert!(AlertmanagerSender::new(&c, Path::new("/")).is_err());
        let c: AlertmanagerConfig = serde_yaml_ng::from_str("urls: [http://a:1]\nsend_resolved: false\n").unwrap();
        assert!(AlertmanagerSender::new(&c, Path::new("/")).is_err());
    }

    #[tokio::test]
    async fn one_accepting_alertmanager_is_enough() {
        let c: AlertmanagerConfig = serde_yaml_ng::from_str("urls: ['http://127.0.0.1:1']\ntimeout: 2s\n").unwrap();
        let e = AlertmanagerSender::new(&c, Path::new("/")).unwrap().send(&notification()).await.unwrap_err();
        assert!(e.retryable, "{}", e.msg);
    }
}
