//! Alertmanager's webhook message (version "4"), the JSON the webhook and exec integrations send:
//! `receiver`, `status`, `alerts` (with `startsAt`/`endsAt` as RFC 3339, `endsAt` Go's zero time
//! `0001-01-01T00:00:00Z` while an alert fires), the group's labels, `externalURL`, `groupKey`
//! and `truncatedAlerts`.

use crate::notify::message::{Notification, KV};
use crate::timefmt::rfc3339;
use serde::Serialize;

/// Go's zero `time.Time` as JSON, what Alertmanager sends as `endsAt` of a firing alert.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage<'a> {
    pub receiver: &'a str,
    pub status: &'static str,
    pub alerts: Vec<WebhookAlert<'a>>,
    pub group_labels: &'a KV,
    pub common_labels: &'a KV,
    pub common_annotations: &'a KV,
    #[serde(rename = "externalURL")]
    pub external_url: &'a str,
    pub version: &'static str,
    pub group_key: &'a str,
    pub truncated_alerts: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert<'a> {
    pub status: &'static str,
    pub labels: &'a KV,
    pub annotations: &'a KV,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
    pub fingerprint: &'a str,
}

/// The message for `n`, keeping at most `max_alerts` alerts (0 = all); the rest are counted in
/// `truncatedAlerts`.
pub fn webhook_message(n: &Notification, max_alerts: usize) -> WebhookMessage<'_> {
    let keep = if max_alerts == 0 { n.alerts.len() } else { max_alerts.min(n.alerts.len()) };
    let alerts = n.alerts[..keep]
        .iter()
        .map(|a| WebhookAlert {
            status: a.status.as_str(),
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: rfc3339(a.starts_at_ms),
            ends_at: a.ends_at_ms.map_or_else(|| ZERO_TIME.to_string(), rfc3339),
            generator_url: &a.generator_url,
            fingerprint: &a.fingerprint,
        })
        .collect();
    WebhookMessage {
        receiver: &n.receiver,
        status: n.status.as_str(),
        alerts,
        group_labels: &n.group_labels,
        common_labels: &n.common_labels,
        common_annotations: &n.common_annotations,
        external_url: &n.external_url,
        version: "4",
        group_key: &n.group_key,
        truncated_alerts: n.truncated_alerts + (n.alerts.len() - keep),
    }
}

/// The message as JSON bytes.
pub fn webhook_json(n: &Notification, max_alerts: usize) -> Vec<u8> {
    // Serializing maps of strings and plain structs cannot fail.
    serde_json::to_vec(&webhook_message(n, max_alerts)).unwrap_or_default()
}

#[cfg(test)]
pub mod fixtures {
    use crate::notify::message::{Notification, NotifiedAlert, Status, KV};

    pub fn kv(pairs: &[(&str, &str)]) -> KV {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Two alerts of one group: one firing, one resolved (2023-11-14T22:13:20Z is 1_700_000_000 s).
    pub fn notification() -> Notification {
        let mut n = Notification {
            receiver: "team-x".into(),
            status: Status::Resolved,
            group_key: "{}:{alertname=\"HighCPU\"}".into(),
            group_labels: kv(&[("alertname", "HighCPU")]),
            common_labels: KV::new(),
            common_annotations: KV::new(),
            external_url: "http://alerter:9911".into(),
            alerts: vec![
                NotifiedAlert {
                    status: Status::Firing,
                    labels: kv(&[("alertname", "HighCPU"), ("instance", "web-1:9100"), ("severity", "critical")]),
                    annotations: kv(&[("summary", "CPU busy on web-1")]),
                    starts_at_ms: 1_700_000_000_000,
                    ends_at_ms: None,
                    generator_url: "http://alerter:9911/graph?g0.expr=cpu".into(),
                    fingerprint: "a1b2c3d4e5f60718".into(),
                },
                NotifiedAlert {
                    status: Status::Resolved,
                    labels: kv(&[("alertname", "HighCPU"), ("instance", "web-2:9100"), ("severity", "critical")]),
                    annotations: kv(&[("summary", "CPU busy on web-2")]),
                    starts_at_ms: 1_699_999_000_000,
                    ends_at_ms: Some(1_700_000_060_500),
                    generator_url: "http://alerter:9911/graph?g0.expr=cpu".into(),
                    fingerprint: "0011223344556677".into(),
                },
            ],
            truncated_alerts: 0,
        };
        n.summarize();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_json_matches_alertmanagers_format() {
        let got: serde_json::Value = serde_json::from_slice(&webhook_json(&fixtures::notification(), 0)).unwrap();
        let want = serde_json::json!({
            "version": "4",
            "receiver": "team-x",
            "status": "firing",
            "groupKey": "{}:{alertname=\"HighCPU\"}",
            "truncatedAlerts": 0,
            "groupLabels": {"alertname": "HighCPU"},
            "commonLabels": {"alertname": "HighCPU", "severity": "critical"},
            "commonAnnotations": {},
            "externalURL": "http://alerter:9911",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "HighCPU", "instance": "web-1:9100", "severity": "critical"},
                    "annotations": {"summary": "CPU busy on web-1"},
                    "startsAt": "2023-11-14T22:13:20.000Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://alerter:9911/graph?g0.expr=cpu",
                    "fingerprint": "a1b2c3d4e5f60718"
                },
                {
                    "status": "resolved",
                    "labels": {"alertname": "HighCPU", "instance": "web-2:9100", "severity": "critical"},
                    "annotations": {"summary": "CPU busy on web-2"},
                    "startsAt": "2023-11-14T21:56:40.000Z",
                    "endsAt": "2023-11-14T22:14:20.500Z",
                    "generatorURL": "http://alerter:9911/graph?g0.expr=cpu",
                    "fingerprint": "0011223344556677"
                }
            ]
        });
        assert_eq!(got, want);
    }

    #[test]
    fn max_alerts_truncates_and_counts() {
        let got: serde_json::Value = serde_json::from_slice(&webhook_json(&fixtures::notification(), 1)).unwrap();
        assert_eq!(got["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(got["truncatedAlerts"], 1);
    }
}
