//! The optional activity event log (`activity.event_log`): JSON lines
//! `{timestamp, user, event_type, details}` as the month-end report (`git::report`) reads them,
//! rotated by size (`path` → `path.1` → … → `path.N`, the oldest dropped).

use crate::activity::config::EventLogConfig;
use crate::git::timefmt::rfc3339;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const ACTIVITY_DETECTED: &str = "activity_detected";
pub const IDLE_STARTED: &str = "idle_started";
pub const IDLE_ACTION: &str = "idle_action";

/// One event's `details`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details {
    /// Host CPU busy, in percent.
    pub cpu_usage: f64,
    pub process_count: u64,
    /// File modifications since the previous sample.
    pub modified_files: u64,
    /// Some of those files (at most `max_files_listed`).
    pub files: Vec<String>,
    pub ssh_sessions: u64,
    pub active_processes: Vec<String>,
}

/// One event as a JSON line (without the newline). `extra` is merged into `details`.
pub fn line(now: i64, user: &str, event_type: &str, d: &Details, extra: Option<Value>) -> String {
    let mut details = json!({
        "cpu_usage": (d.cpu_usage * 10.0).round() / 10.0,
        "process_count": d.process_count,
        "modified_files": d.modified_files,
        "files": d.files,
        "ssh_sessions": d.ssh_sessions,
        "active_processes": d.active_processes,
    });
    if let (Some(Value::Object(extra)), Some(map)) = (extra, details.as_object_mut()) {
        map.extend(extra);
    }
    json!({"timestamp": rfc3339(now), "user": user, "event_type": event_type, "details": details}).to_string()
}

/// Appends lines to the log, rotating it first when the line would take it past the size limit.
pub struct EventLog {
    path: PathBuf,
    max_size: u64,
    max_files: usize,
}

impl EventLog {
    /// None when no path is configured.
    pub fn new(cfg: &EventLogConfig) -> Option<EventLog> {
        (!cfg.path.as_os_str().is_empty()).then(|| EventLog {
            path: cfg.path.clone(),
            max_size: cfg.max_size_bytes,
            max_files: cfg.max_files,
        })
    }

    pub fn append(&self, line: &str) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if size > 0 && size + line.len() as u64 + 1 > self.max_size {
            self.rotate()?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        file.write_all(format!("{line}\n").as_bytes())
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&self) -> std::io::Result<()> {
        if self.max_files == 0 {
            return remove(&self.path);
        }
        remove(&self.numbered(self.max_files))?;
        for n in (1..self.max_files).rev() {
            rename(&self.numbered(n), &self.numbered(n + 1))?;
        }
        rename(&self.path, &self.numbered(1))
    }
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::report::{add_activity_lines, Report};

    #[test]
    fn lines_are_what_the_report_reads() {
        let d = Details {
            cpu_usage: 12.345,
            process_count: 7,
            modified_files: 3,
            files: vec!["src/a.rs".into()],
            ssh_sessions: 1,
            active_processes: vec!["cargo".into()],
        };
        let day = 19_844 * 86_400; // 2024-05-01
        let text = [
            line(day + 3600, "alice", ACTIVITY_DETECTED, &d, None),
            line(day + 7200, "alice", IDLE_STARTED, &Details::default(), None),
            line(day + 9000, "alice", IDLE_ACTION, &Details::default(), Some(json!({"command": ["systemctl", "poweroff"]}))),
        ]
        .join("\n");
        let v: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["timestamp"], "2024-05-01T01:00:00Z");
        assert_eq!(v["details"]["cpu_usage"], 12.3);
        assert_eq!(v["details"]["files"], json!(["src/a.rs"]));
        let mut report = Report::new();
        add_activity_lines(&mut report, &text, "log").unwrap();
        let row = &report[&(19_844, "alice".to_string())];
        assert_eq!((row.active_seconds, row.idle_seconds, row.idle_actions, row.file_modifications), (3600, 1800, 1, 3));
    }

    #[test]
    fn rotates_by_size_keeping_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.jsonl");
        let log = EventLog::new(&EventLogConfig { path: path.clone(), max_size_bytes: 25, max_files: 2, max_files_listed: 5 }).unwrap();
        for i in 0..5 {
            log.append(&format!("{{\"n\":{i},\"pad\":\"xxxx\"}}")).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "{\"n\":4,\"pad\":\"xxxx\"}\n");
        assert_eq!(read(&dir.path().join("sub/events.jsonl.1")), "{\"n\":3,\"pad\":\"xxxx\"}\n");
        assert_eq!(read(&dir.path().join("sub/events.jsonl.2")), "{\"n\":2,\"pad\":\"xxxx\"}\n");
        assert!(!dir.path().join("sub/events.jsonl.3").exists());
        assert!(EventLog::new(&EventLogConfig::default()).is_none());
    }
}
