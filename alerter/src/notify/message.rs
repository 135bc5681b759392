//! The notification a receiver gets: one alert group at one moment, in Alertmanager's data model
//! (the same fields its webhook payload and templates use). It is serializable because the outbox
//! stores it until it is delivered.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A label or annotation set, sorted by name.
pub type KV = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One alert inside a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifiedAlert {
    pub status: Status,
    pub labels: KV,
    pub annotations: KV,
    /// When the alert started firing (active_at for Prometheus), Unix milliseconds.
    pub starts_at_ms: i64,
    /// When it resolved, Unix milliseconds; `None` while it fires.
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
    /// Stable hash of the label set, as hex (Alertmanager's `fingerprint`).
    pub fingerprint: String,
}

/// One notification: an alert group for one receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The receiver's name from the config.
    pub receiver: String,
    /// `firing` when any alert in `alerts` fires, else `resolved`.
    pub status: Status,
    /// Identifies the group (route path and group label values), as Alertmanager's `groupKey`.
    pub group_key: String,
    pub group_labels: KV,
    pub common_labels: KV,
    pub common_annotations: KV,
    pub external_url: String,
    pub alerts: Vec<NotifiedAlert>,
    /// Alerts left out because the receiver's `max_alerts` was reached.
    #[serde(default)]
    pub truncated_alerts: usize,
}

impl Notification {
    /// Fills `status`, `common_labels` and `common_annotations` from `alerts`.
    pub fn summarize(&mut self) {
        self.status = if self.alerts.iter().any(|a| a.status == Status::Firing) { Status::Firing } else { Status::Resolved };
        self.common_labels = common(self.alerts.iter().map(|a| &a.labels));
        self.common_annotations = common(self.alerts.iter().map(|a| &a.annotations));
    }
}

/// The pairs every map in `maps` has.
fn common<'a>(mut maps: impl Iterator<Item = &'a KV>) -> KV {
    let Some(first) = maps.next() else { return KV::new() };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: Status, labels: &[(&str, &str)]) -> NotifiedAlert {
        NotifiedAlert {
            status,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: KV::new(),
            starts_at_ms: 0,
            ends_at_ms: None,
            generator_url: String::new(),
            fingerprint: String::new(),
        }
    }

    #[test]
    fn summarize_keeps_common_pairs_and_status() {
        let mut n = Notification {
            receiver: "r".into(),
            status: Status::Resolved,
            group_key: "{}".into(),
            group_labels: KV::new(),
            common_labels: KV::new(),
            common_annotations: KV::new(),
            external_url: String::new(),
            alerts: vec![
                alert(Status::Resolved, &[("alertname", "A"), ("instance", "x")]),
                alert(Status::Firing, &[("alertname", "A"), ("instance", "y")]),
            ],
            truncated_alerts: 0,
        };
        n.summarize();
        assert_eq!(n.status, Status::Firing);
        assert_eq!(n.common_labels.len(), 1);
        assert_eq!(n.common_labels["alertname"], "A");
    }
}
