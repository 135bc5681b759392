//! The `slack` integration: a message with one attachment to a Slack incoming-webhook URL,
//! colored by severity (`danger` for critical, `warning` for warning, `good` once resolved).

use super::http::{HttpConfig, Poster};
use super::secret::{pick, SecretString};
use super::templates::{Text, DEFAULT_CHAT_TEXT, DEFAULT_SUBJECT};
use super::webhook::check_url;
use super::{SendFuture, Sender};
use crate::notify::message::{Notification, Status};
use fleetwatch_common::duration::PromDuration;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL (a secret).
    pub api_url: Option<SecretString>,
    pub api_url_file: Option<PathBuf>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    /// Templates overriding the defaults (the subject line, and one line per alert).
    pub title: Option<String>,
    pub title_link: Option<String>,
    pub text: Option<String>,
    /// A template giving the attachment color; by default it follows the severity.
    pub color: Option<String>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default)]
    pub http_config: HttpConfig,
    pub timeout: Option<PromDuration>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SlackMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    pub attachments: Vec<SlackAttachment>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SlackAttachment {
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title_link: String,
    pub text: String,
    pub fallback: String,
    pub color: String,
    pub mrkdwn_in: Vec<&'static str>,
}

pub struct SlackSender {
    url: SecretString,
    poster: Poster,
    channel: Option<String>,
    username: Option<String>,
    icon_emoji: Option<String>,
    icon_url: Option<String>,
    title: Text,
    title_link: Option<Text>,
    text: Text,
    color: Option<Text>,
    send_resolved: bool,
    timeout: Duration,
}

impl SlackSender {
    pub fn new(c: &SlackConfig, base: &Path) -> Result<SlackSender, String> {
        let url = pick(&c.api_url, &c.api_url_file, base, "api_url", true)?.unwrap_or_default();
        check_url(url.expose()).map_err(|e| format!("api_{e}"))?;
        let optional = |name: &str, t: &Option<String>| t.as_deref().map(|t| Text::parse(name, Some(t), "", false)).transpose();
        Ok(SlackSender {
            url,
            poster: Poster::new(&c.http_config, base)?,
            channel: c.channel.clone(),
            username: c.username.clone(),
            icon_emoji: c.icon_emoji.clone(),
            icon_url: c.icon_url.clone(),
            title: Text::parse("title", c.title.as_deref(), DEFAULT_SUBJECT, false)?,
            title_link: optional("title_link", &c.title_link)?,
            text: Text::parse("text", c.text.as_deref(), DEFAULT_CHAT_TEXT, false)?,
            color: optional("color", &c.color)?,
            send_resolved: c.send_resolved,
            timeout: c.timeout.map_or(super::DEFAULT_TIMEOUT, |t| t.0),
        })
    }

    /// The message for `n`.
    pub fn message(&self, n: &Notification) -> Result<SlackMessage, super::SendError> {
        let title = self.title.render(n)?;
        let color = match &self.color {
            Some(t) => t.render(n)?,
            None => severity_color(n).to_string(),
        };
        let title_link = match &self.title_link {
            Some(t) => t.render(n)?,
            None => n.external_url.clone(),
        };
        Ok(SlackMessage {
            channel: self.channel.clone(),
            username: self.username.clone(),
            icon_emoji: self.icon_emoji.clone(),
            icon_url: self.icon_url.clone(),
            attachments: vec![SlackAttachment {
                fallback: title.clone(),
                title,
                title_link,
                text: self.text.render(n)?,
                color,
                mrkdwn_in: vec!["fallback", "pretext", "text"],
            }],
        })
    }
}

/// `good` when resolved; else by the most severe `severity` label among firing alerts:
/// `danger` for critical (or page/error), `warning` for warning, Slack's blue otherwise.
pub fn severity_color(n: &Notification) -> &'static str {
    if n.status == Status::Resolved {
        return "good";
    }
    let firing = n.alerts.iter().filter(|a| a.status == Status::Firing);
    let rank = |s: Option<&String>| match s.map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("critical" | "page" | "error") => 2,
        Some("warning" | "warn") => 1,
        _ => 0,
    };
    match firing.map(|a| rank(a.labels.get("severity"))).max().unwrap_or(0) {
        2 => "danger",
        1 => "warning",
        _ => "#439FE0",
    }
}

impl Sender for SlackSender {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(&self.message(n)?).unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::receiver::payload::fixtures::notification;

    fn sender(yaml: &str) -> SlackSender {
        let c: SlackConfig = serde_yaml_ng::from_str(yaml).unwrap();
        SlackSender::new(&c, Path::new("/")).unwrap()
    }

    #[test]
    fn slack_message_shape() {
        let s = sender("api_url: https://hooks.slack.invalid/services/T/B/X\nchannel: '#ops'\nusername: fleetwatch\n");
        let got = serde_json::to_value(s.message(&notification()).unwrap()).unwrap();
        let want = serde_json::json!({
            "channel": "#ops",
            "username": "fleetwatch",
            "attachments": [{
                "title": "[FIRING:1] HighCPU (critical)",
                "title_link": "http://alerter:9911",
                "text": "*FIRING* HighCPU on web-1:9100: CPU busy on web-1\n*RESOLVED* HighCPU on web-2:9100: CPU busy on web-2\n",
                "fallback": "[FIRING:1] HighCPU (critical)",
                "color": "danger",
                "mrkdwn_in": ["fallback", "pretext", "text"]
            }]
        });
        assert_eq!(got, want);
    }

    #[test]
    fn colors_follow_severity_and_resolution() {
        let mut n = notification();
        assert_eq!(severity_color(&n), "danger");
        for a in &mut n.alerts {
            a.labels.insert("severity".into(), "warning".into());
        }
        assert_eq!(severity_color(&n), "warning");
        n.alerts.remove(0);
        n.summarize();
        assert_eq!(severity_color(&n), "good");
        let s = sender("api_url: https://x.invalid/\ntitle: 'T {{ .Status }}'\ntext: 'n={{ len .Alerts }}'\ncolor: '#000000'\n");
        let m = s.message(&n).unwrap();
        assert_eq!((m.attachments[0].title.as_str(), m.attachments[0].text.as_str()), ("T resolved", "n=1"));
        assert_eq!(m.attachments[0].color, "#000000");
    }

    #[test]
    fn url_is_required_and_hidden() {
        let c: SlackConfig = serde_yaml_ng::from_str("channel: x\n").unwrap();
        assert!(SlackSender::new(&c, Path::new("/")).is_err());
        let c: SlackConfig = serde_yaml_ng::from_str("api_url: https://hooks.slack.invalid/secret-token\n").unwrap();
        assert!(!format!("{c:?}").contains("secret-token"));
    }
}
