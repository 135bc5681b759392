//! Runs the idle action and its warning: an argv (no shell), with a timeout after which the
//! process is killed, its output and exit status logged; in dry-run mode only logged.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    DryRun,
    Exited(Option<i32>),
    TimedOut,
    Failed(String),
}

/// Runs `argv` and waits for it (at most `timeout`); blocking. `what` names it in the log.
pub fn run(what: &str, argv: &[String], timeout: Duration, dry_run: bool) -> Outcome {
    let Some((program, args)) = argv.split_first() else { return Outcome::Failed("empty command".into()) };
    if dry_run {
        tracing::warn!(what, command = ?argv, "idle: dry run, would run");
        return Outcome::DryRun;
    }
    tracing::warn!(what, command = ?argv, "idle: running");
    let child = Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(what, command = ?argv, err = %e, "idle: cannot start the command");
            return Outcome::Failed(e.to_string());
        }
    };
    let readers = [child.stdout.take().map(drain), child.stderr.take().map(drain)];
    let deadline = Instant::now() + timeout;
    let outcome = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Outcome::Exited(status.code()),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Outcome::TimedOut;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break Outcome::Failed(e.to_string()),
        }
    };
    let [stdout, stderr] = readers.map(|r| r.and_then(|h| h.join().ok()).unwrap_or_default());
    match &outcome {
        Outcome::Exited(Some(0)) => tracing::info!(what, command = ?argv, %stdout, %stderr, "idle: command exited 0"),
        Outcome::TimedOut => tracing::error!(what, command = ?argv, ?timeout, %stdout, %stderr, "idle: command timed out and was killed"),
        other => tracing::error!(what, command = ?argv, outcome = ?other, %stdout, %stderr, "idle: command failed"),
    }
    outcome
}

/// Reads a pipe to its end on a thread (at most 64 KiB kept), so a chatty command never blocks.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if kept.len() < 64 << 10 {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        String::from_utf8_lossy(&kept).trim_end().to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exit_status_timeout_and_dry_run() {
        assert_eq!(run("t", &argv(&["true"]), Duration::from_secs(5), false), Outcome::Exited(Some(0)));
        assert_eq!(run("t", &argv(&["false"]), Duration::from_secs(5), false), Outcome::Exited(Some(1)));
        let started = Instant::now();
        assert_eq!(run("t", &argv(&["sleep", "30"]), Duration::from_millis(200), false), Outcome::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(run("t", &argv(&["/nonexistent/x"]), Duration::from_secs(1), false), Outcome::Failed(_)));
        assert_eq!(run("t", &argv(&["/nonexistent/x"]), Duration::from_secs(1), true), Outcome::DryRun);
    }

    #[test]
    fn no_shell_is_involved() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("m; touch x");
        assert_eq!(run("t", &argv(&["touch", marker.to_str().unwrap()]), Duration::from_secs(5), false), Outcome::Exited(Some(0)));
        assert!(marker.exists());
        assert!(!dir.path().join("x").exists());
    }
}
