//! The `log` integration (the embedded default): one structured log line per notification.

use super::{SendFuture, Sender};
use crate::notify::message::Notification;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

fn yes() -> bool {
    true
}

pub struct LogSender {
    receiver: String,
    send_resolved: bool,
}

impl LogSender {
    pub fn new(receiver: &str, c: &LogConfig) -> LogSender {
        LogSender { receiver: receiver.to_string(), send_resolved: c.send_resolved }
    }
}

impl Sender for LogSender {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let names: Vec<&str> = n.alerts.iter().filter_map(|a| a.labels.get("alertname").map(String::as_str)).collect();
            tracing::info!(
                receiver = %self.receiver,
                status = n.status.as_str(),
                group = %n.group_key,
                alerts = n.alerts.len(),
                alertnames = %names.join(","),
                "notification"
            );
            Ok(())
        })
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }
}
