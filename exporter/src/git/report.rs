//! `fleetwatch-exporter report`: the month-end activity report, per user and UTC day, from the
//! git stats log (`<user>_git_stats_YYYY-MM-DD.jsonl`) and, when given, the activity event log
//! (JSON lines `{timestamp, user, event_type, details}`, event types `activity_detected`,
//! `idle_started`, `idle_action`).
//!
//! - commits, insertions, deletions: every commit listed in the git stats lines, counted once per
//!   user, repository path and sha, on the day of its commit time; merges count as commits only.
//! - active and idle minutes: a user is active from an `activity_detected` event and idle from an
//!   `idle_started` one until their next event of either kind; the time between two events goes
//!   to the state in force, split at midnight; time after the user's last event is not counted.
//! - idle actions: `idle_action` events; file modifications: the sum of the events'
//!   `details.modified_files` (a number, when present; the field issue 8's activity event log writes).

use super::timefmt::{date, parse_date, parse_rfc3339};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// One row: a user's day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub active_seconds: i64,
    pub idle_seconds: i64,
    pub idle_actions: u64,
    pub file_modifications: u64,
    pub commits: u64,
    pub insertions: u64,
    pub deletions: u64,
}

/// The report: (day number, user) → row.
pub type Report = BTreeMap<(i64, String), Row>;

/// Why the report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{path}:{line}: {message}")]
    Parse { path: String, line: usize, message: String },
    #[error("{0}")]
    Usage(String),
}

/// Adds the commits of git stats lines (`origin` names them in errors).
pub fn add_git_lines(
    report: &mut Report,
    seen: &mut HashSet<(String, String, String)>,
    text: &str,
    origin: &str,
) -> Result<(), ReportError> {
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let err = |message: String| ReportError::Parse { path: origin.to_string(), line: n + 1, message };
        let v: Value = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        let user = v["user"].as_str().ok_or_else(|| err("no user".into()))?.to_string();
        let path = v["path"].as_str().unwrap_or_default().to_string();
        for c in v["commits"].as_array().into_iter().flatten() {
            let sha = c["sha"].as_str().ok_or_else(|| err("commit without sha".into()))?;
            let time = c["time"].as_str().and_then(parse_rfc3339).ok_or_else(|| err(format!("commit {sha}: bad time")))?;
            if !seen.insert((user.clone(), path.clone(), sha.to_string())) {
                continue;
            }
            let row = report.entry((time.div_euclid(86_400), user.clone())).or_default();
            row.commits += 1;
            row.insertions += c["insertions"].as_u64().unwrap_or(0);
            row.deletions += c["deletions"].as_u64().unwrap_or(0);
        }
    }
    Ok(())
}

/// Adds the activity events of an event log.
pub fn add_activity_lines(report: &mut Report, text: &str, origin: &str) -> Result<(), ReportError> {
    let mut events: Vec<(String, i64, String, u64)> = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let err = |message: String| ReportError::Parse { path: origin.to_string(), line: n + 1, message };
        let v: Value = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        let user = v["user"].as_str().ok_or_else(|| err("no user".into()))?.to_string();
        let time = v["timestamp"].as_str().and_then(parse_rfc3339).ok_or_else(|| err("bad or missing timestamp".into()))?;
        let kind = v["event_type"].as_str().ok_or_else(|| err("no event_type".into()))?.to_string();
        let files = v["details"]["modified_files"].as_u64().unwrap_or(0);
        events.push((user, time, kind, files));
    }
    events.sort();
    let mut state: BTreeMap<String, (i64, bool)> = BTreeMap::new();
    for (user, time, kind, files) in events {
        let row = report.entry((time.div_euclid(86_400), user.clone())).or_default();
        row.file_modifications += files;
        if kind == "idle_action" {
            row.idle_actions += 1;
        }
        if let Some((since, active)) = state.get(&user).copied() {
            credit(report, &user, since, time, active);
        }
        let active = match kind.as_str() {
            "activity_detected" => true,
            "idle_started" => false,
            _ => state.get(&user).is_none_or(|s| s.1),
        };
        if kind == "activity_detected" || kind == "idle_started" || state.contains_key(&user) {
            state.insert(user, (time, active));
        }
    }
    Ok(())
}

/// Credits [from, to) to the user's active or idle time, day by day.
fn credit(report: &mut Report, user: &str, mut from: i64, to: i64, active: bool) {
    while from < to {
        let day = from.div_euclid(86_400);
        let end = to.min((day + 1) * 86_400);
        let row = report.entry((day, user.to_string())).or_default();
        if active {
            row.active_seconds += end - from;
        } else {
            row.idle_seconds += end - from;
        }
        from = end;
    }
}

/// Every user's every day from `from` to `to` (inclusive), zeros where nothing happened.
pub fn rows(report: &Report, from: i64, to: i64) -> Vec<(i64, String, Row)> {
    let users: std::collections::BTreeSet<&String> = report.keys().filter(|(d, _)| (from..=to).contains(d)).map(|(_, u)| u).collect();
    let mut out = Vec::new();
    for day in from..=to {
        for user in &users {
            let row = report.get(&(day, (*user).clone())).cloned().unwrap_or_default();
            out.push((day, (*user).clone(), row));
        }
    }
    out
}

pub const CSV_HEADER: &str = "date,user,active_minutes,idle_minutes,idle_actions,file_modifications,commits,insertions,deletions";

/// Minutes, rounded to the nearest.
fn minutes(secs: i64) -> i64 {
    (secs + 30) / 60
}

pub fn csv(rows: &[(i64, String, Row)]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for (day, user, r) in rows {
        let user = if user.contains([',', '"', '\n']) { format!("\"{}\"", user.replace('"', "\"\"")) } else { user.clone() };
        out.push_str(&format!(
            "{},{user},{},{},{},{},{},{},{}\n",
            date(*day),
            minutes(r.active_seconds),
            minutes(r.idle_seconds),
            r.idle_actions,
            r.file_modifications,
            r.commits,
            r.insertions,
            r.deletions
        ));
    }
    out
}

pub fn json(rows: &[(i64, String, Row)]) -> String {
    let items: Vec<Value> = rows
        .iter()
        .map(|(day, user, r)| {
            serde_json::json!({
                "date": date(*day), "user": user, "active_minutes": minutes(r.active_seconds), "idle_minutes": minutes(r.idle_seconds),
                "idle_actions": r.idle_actions, "file_modifications": r.file_modifications, "commits": r.commits,
                "insertions": r.insertions, "deletions": r.deletions,
            })
        })
        .collect();
    serde_json::to_string_pretty(&items).unwrap_or_default() + "\n"
}

/// `report` command-line arguments.
#[derive(Debug, clap::Parser)]
#[command(
    name = "report",
    bin_name = "fleetwatch-exporter report",
    about = "Month-end activity report from the git stats log and the activity event log."
)]
pub struct Args {
    /// First day (YYYY-MM-DD, UTC), included.
    #[arg(long)]
    pub from: String,
    /// Last day (YYYY-MM-DD, UTC), included.
    #[arg(long)]
    pub to: String,
    /// csv or json.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Directory of the git stats log; default: git.stats_log_dir of --config.file.
    #[arg(long = "git-stats-dir")]
    pub git_stats_dir: Option<PathBuf>,
    /// The exporter config file whose git.stats_log_dir is read.
    #[arg(long = "config.file")]
    pub config_file: Option<PathBuf>,
    /// Activity event log files (JSON lines), or directories of *.jsonl files; optional.
    #[arg(long = "activity-log")]
    pub activity_log: Vec<PathBuf>,
}

/// Runs the report and returns its text.
pub fn run(args: &Args) -> Result<String, ReportError> {
    let day = |s: &str| parse_date(s).ok_or_else(|| ReportError::Usage(format!("invalid date {s:?} (want YYYY-MM-DD)")));
    let (from, to) = (day(&args.from)?, day(&args.to)?);
    if from > to {
        return Err(ReportError::Usage("--from is after --to".into()));
    }
    let dir = match (&args.git_stats_dir, &args.config_file) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(c)) => crate::config::Config::load(Some(c)).map_err(|e| ReportError::Usage(e.to_string()))?.git.stats_log_dir,
        (None, None) => None,
    };
    let mut report = Report::new();
    if let Some(dir) = dir {
        let mut seen = HashSet::new();
        // A commit made on a day is logged that day or, within the longest window, after it.
        for path in files(&dir, |name| name.contains("_git_stats_") && name.ends_with(".jsonl"))? {
            let text = std::fs::read_to_string(&path).map_err(|e| ReportError::Io(path.clone(), e))?;
            add_git_lines(&mut report, &mut seen, &text, &path.display().to_string())?;
        }
    }
    let mut activity = String::new();
    for p in &args.activity_log {
        for path in if p.is_dir() { files(p, |n| n.ends_with(".jsonl"))? } else { vec![p.clone()] } {
            activity.push_str(&std::fs::read_to_string(&path).map_err(|e| ReportError::Io(path.clone(), e))?);
            activity.push('\n');
        }
    }
    add_activity_lines(&mut report, &activity, "activity log")?;
    let rows = rows(&report, from, to);
    match args.format.as_str() {
        "csv" => Ok(csv(&rows)),
        "json" => Ok(json(&rows)),
        other => Err(ReportError::Usage(format!("unknown format {other:?} (csv or json)"))),
    }
}

fn files(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, ReportError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ReportError::Io(dir.to_path_buf(), e))?;
    let mut out: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.file_name().is_some_and(|n| keep(&n.to_string_lossy()))).collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_splits_at_midnight_and_counts_actions() {
        let mut r = Report::new();
        let log = r#"{"timestamp":"2024-05-01T23:30:00Z","user":"al","event_type":"activity_detected","details":{"modified_files":3}}
{"timestamp":"2024-05-02T00:10:00Z","user":"al","event_type":"idle_started","details":{}}
{"timestamp":"2024-05-02T00:40:00Z","user":"al","event_type":"idle_action","details":{"action":"suspend"}}
{"timestamp":"2024-05-02T01:00:00Z","user":"al","event_type":"activity_detected","details":{"modified_files":2}}"#;
        add_activity_lines(&mut r, log, "x").unwrap();
        let d1 = parse_date("2024-05-01").unwrap();
        let text = csv(&rows(&r, d1, d1 + 1));
        assert_eq!(text, format!("{CSV_HEADER}\n2024-05-01,al,30,0,0,3,0,0,0\n2024-05-02,al,10,50,1,2,0,0,0\n"));
    }
}
