//! The `exec` integration: runs a command (argv, no shell) with the notification's webhook JSON
//! on stdin and `FLEETWATCH_*` variables in its environment. A non-zero exit or running past the
//! timeout (the process group is killed) is a failed, retryable delivery; the output is logged,
//! truncated.

use super::payload::webhook_json;
use super::secret::{resolve, SecretString};
use super::{SendError, SendFuture, Sender};
use crate::notify::message::Notification;
use fleetwatch_common::duration::PromDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How much of the command's stdout and stderr is logged.
const LOGGED_OUTPUT: usize = 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// Program and arguments; a relative program path with a `/` is relative to the config file.
    pub command: Vec<String>,
    pub timeout: Option<PromDuration>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Extra environment variables (values are treated as secrets).
    #[serde(default)]
    pub env: BTreeMap<String, SecretString>,
}

fn yes() -> bool {
    true
}

pub struct ExecSender {
    receiver: String,
    argv: Vec<String>,
    env: BTreeMap<String, SecretString>,
    send_resolved: bool,
    timeout: Duration,
}

impl ExecSender {
    pub fn new(receiver: &str, c: &ExecConfig, base: &Path) -> Result<ExecSender, String> {
        let Some(program) = c.command.first() else { return Err("command: must not be empty".into()) };
        let mut argv = c.command.clone();
        if program.contains('/') {
            argv[0] = resolve(base, Path::new(program)).display().to_string();
        }
        Ok(ExecSender {
            receiver: receiver.to_string(),
            argv,
            env: c.env.clone(),
            send_resolved: c.send_resolved,
            timeout: c.timeout.map_or(super::DEFAULT_TIMEOUT, |t| t.0),
        })
    }

    async fn run(&self, n: &Notification) -> Result<(), SendError> {
        let mut cmd = tokio::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v.expose())))
            .envs(fleetwatch_env(n))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| SendError::retry(format!("cannot run {:?}: {e}", self.argv[0])))?;
        let pgid = child.id();
        let stdin = child.stdin.take();
        let json = webhook_json(n, 0);
        let exchange = async move {
            if let Some(mut stdin) = stdin {
                // A command that does not read its input is not a failure.
                let _ = stdin.write_all(&json).await;
            }
            child.wait_with_output().await
        };
        let out = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r.map_err(|e| SendError::retry(format!("waiting for {:?}: {e}", self.argv[0])))?,
            Err(_) => {
                kill_group(pgid);
                return Err(SendError::retry(format!("{:?} killed after the {:?} timeout", self.argv[0], self.timeout)));
            }
        };
        let (stdout, stderr) = (truncated(&out.stdout), truncated(&out.stderr));
        if out.status.success() {
            tracing::debug!(receiver = %self.receiver, command = %self.argv[0], %stdout, %stderr, "exec notifier finished");
            return Ok(());
        }
        tracing::warn!(receiver = %self.receiver, command = %self.argv[0], status = %out.status, %stdout, %stderr, "exec notifier failed");
        Err(SendError::retry(format!("{:?} failed ({}): {}", self.argv[0], out.status, stderr.trim())))
    }
}

/// The `FLEETWATCH_*` variables describing the notification.
pub fn fleetwatch_env(n: &Notification) -> Vec<(&'static str, String)> {
    let alertname = n.group_labels.get("alertname").or_else(|| n.common_labels.get("alertname")).cloned().unwrap_or_default();
    vec![
        ("FLEETWATCH_STATUS", n.status.as_str().to_string()),
        ("FLEETWATCH_RECEIVER", n.receiver.clone()),
        ("FLEETWATCH_ALERTNAME", alertname),
        ("FLEETWATCH_GROUP_KEY", n.group_key.clone()),
        ("FLEETWATCH_ALERTS", n.alerts.len().to_string()),
    ]
}

fn kill_group(pgid: Option<u32>) {
    if let Some(pid) = pgid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

fn truncated(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(LOGGED_OUTPUT)]).into_owned();
    if b.len() > LOGGED_OUTPUT {
        format!("{s}… ({} bytes)", b.len())
    } else {
        s
    }
}

impl Sender for ExecSender {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(self.run(n))
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

    fn sender(yaml: &str) -> ExecSender {
        let c: ExecConfig = serde_yaml_ng::from_str(yaml).unwrap();
        ExecSender::new("team-x", &c, Path::new("/")).unwrap()
    }

    #[test]
    fn env_describes_the_notification() {
        let env: BTreeMap<_, _> = fleetwatch_env(&notification()).into_iter().collect();
        assert_eq!(env["FLEETWATCH_STATUS"], "firing");
        assert_eq!(env["FLEETWATCH_RECEIVER"], "team-x");
        assert_eq!(env["FLEETWATCH_ALERTNAME"], "HighCPU");
        assert_eq!(env["FLEETWATCH_ALERTS"], "2");
    }

    #[tokio::test]
    async fn exit_status_and_timeout_decide_the_outcome() {
        let n = notification();
        sender("command: [sh, -c, 'cat >/dev/null; test \"$FLEETWATCH_ALERTS\" = 2']").send(&n).await.unwrap();
        let e = sender("command: [sh, -c, 'echo oops >&2; exit 1']").send(&n).await.unwrap_err();
        assert!(e.retryable && e.msg.contains("oops"), "{}", e.msg);
        let started = std::time::Instant::now();
        let e = sender("command: [sh, -c, 'sleep 30']\ntimeout: 200ms").send(&n).await.unwrap_err();
        assert!(e.msg.contains("timeout") && started.elapsed() < Duration::from_secs(5), "{}", e.msg);
        assert!(sender("command: [/nonexistent/x]").send(&n).await.is_err());
    }
}
