//! The optional JSON stats log (`git.stats_log_dir`): after every refresh,
//! `<user>_git_stats_latest.json` (every repository's latest scan, replaced atomically), and once
//! an hour one line per repository appended to `<user>_git_stats_YYYY-MM-DD.jsonl` (UTC date).
//! A line carries the repository's figures, its last commit (sha, author, time, summary unless
//! `include_messages: false`) and the commits of the longest window with their diff figures, so
//! the month-end report can count every commit once, on the day it was made.

use super::config::GitConfig;
use super::runner::{AfterRefresh, GitState, Report};
use super::timefmt::{date, rfc3339};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

/// The work to do after each refresh; None when no log is configured.
pub fn hook(cfg: &Arc<GitConfig>) -> Option<AfterRefresh> {
    cfg.stats_log_dir.as_ref()?;
    let cfg = cfg.clone();
    let last_hour = Mutex::new(None::<i64>);
    let user = current_user();
    Some(Arc::new(move |state: &GitState| {
        let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let Ok(mut last) = last_hour.lock() else { return };
        let hourly = *last != Some(now / 3600);
        if let Err(e) = write(&cfg, &user, &state.reports(), now, hourly) {
            tracing::warn!(err = %e, "cannot write the git stats log");
        } else if hourly {
            *last = Some(now / 3600);
        }
    }))
}

/// The name of the user the exporter runs as (`USER` when the password database has none).
pub fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer to static storage or null; read at once, on one thread
    // at start-up.
    let name = unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        (!pw.is_null()).then(|| std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned())
    };
    name.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".to_string())
}

/// Writes the latest file and, when `hourly`, appends to the day's file.
pub fn write(cfg: &GitConfig, user: &str, reports: &[Report], now: i64, hourly: bool) -> std::io::Result<()> {
    let Some(dir) = &cfg.stats_log_dir else { return Ok(()) };
    std::fs::create_dir_all(dir)?;
    let records: Vec<Value> = reports.iter().map(|r| record(cfg, user, r, now)).collect();
    let latest = json!({"timestamp": rfc3339(now), "user": user, "repos": records});
    replace(&dir.join(format!("{user}_git_stats_latest.json")), &serde_json::to_vec_pretty(&latest).unwrap_or_default())?;
    if hourly {
        let path = dir.join(format!("{user}_git_stats_{}.jsonl", date(now.div_euclid(86_400))));
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let mut lines = Vec::new();
        for r in &records {
            lines.extend_from_slice(r.to_string().as_bytes());
            lines.push(b'\n');
        }
        file.write_all(&lines)?;
    }
    Ok(())
}

fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// One repository's line.
pub fn record(cfg: &GitConfig, user: &str, r: &Report, now: i64) -> Value {
    let mut v = json!({
        "timestamp": rfc3339(now),
        "user": user,
        "repo": r.name,
        "path": r.path.display().to_string(),
        "scan_success": r.result.is_ok(),
    });
    let s = match &r.result {
        Ok(s) => s,
        Err(e) => {
            v["error"] = json!(e);
            return v;
        }
    };
    v["branch"] = json!(s.branch);
    v["upstream"] = json!(s.upstream);
    v["total_commits"] = json!(s.commits);
    let mut windows = serde_json::Map::new();
    for w in &s.windows {
        let authors: Vec<Value> = w.authors.iter().map(|(a, n)| json!({"author": a, "commits": n})).collect();
        windows.insert(
            w.label.clone(),
            json!({"commits": w.commits, "insertions": w.insertions, "deletions": w.deletions, "files_changed": w.files_changed, "top_authors": authors}),
        );
    }
    v["windows"] = Value::Object(windows);
    if let Some(u) = &s.uncommitted {
        v["staged"] = json!(u.staged);
        v["unstaged"] = json!(u.unstaged);
        v["untracked"] = json!(u.untracked);
        v["conflicted"] = json!(u.conflicted);
    }
    if let Some((a, b)) = s.ahead_behind {
        v["ahead"] = json!(a);
        v["behind"] = json!(b);
    }
    v["stashes"] = json!(s.stashes);
    v["operation"] = json!(s.operation);
    if let Some(c) = &s.last_commit {
        v["last_commit"] = json!({"sha": c.id, "author": c.author, "time": rfc3339(c.time)});
        if cfg.include_messages {
            v["last_commit"]["summary"] = json!(c.summary);
        }
    }
    let longest = s.windows.iter().max_by_key(|w| w.list.len());
    let commits: Vec<Value> = longest
        .map(|w| {
            w.list
                .iter()
                .map(|c| {
                    let mut e = json!({"sha": c.id, "author": c.author, "time": rfc3339(c.time), "merge": c.stat.is_none()});
                    let st = c.stat.unwrap_or_default();
                    e["insertions"] = json!(st.insertions);
                    e["deletions"] = json!(st.deletions);
                    e["files_changed"] = json!(st.files);
                    e
                })
                .collect()
        })
        .unwrap_or_default();
    v["commits"] = Value::Array(commits);
    v
}
