//! The exporter's `git` collector end to end: repositories built here under a configured root,
//! scanned in the background every second, read by scrapes. A clean repository has its figures,
//! one with an `index.lock` and one with a corrupted object report `git_repo_scan_success 0`
//! (with a log line) while the others are unaffected, a repository deleted while the exporter
//! runs loses its series, and the lock's removal brings its repository back. The JSON stats log
//! is written and the month-end report made from it.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{bin, eventually, free_port, get, wait_port, Proc};

/// Runs git in `dir` with a fixed identity and date and no user config.
fn git(home: &Path, dir: &Path, args: &[&str]) {
    support::git_as_alice(home, dir, Some("@1700000000 +0000"), args);
}

/// A repository with `commits` commits of one file each.
fn repo(home: &Path, dir: &Path, commits: usize) {
    std::fs::create_dir_all(dir).unwrap();
    git(home, dir, &["init", "-q", "-b", "main"]);
    for i in 0..commits {
        std::fs::write(dir.join(format!("f{i}.txt")), format!("{i}\n")).unwrap();
        git(home, dir, &["add", "-A"]);
        git(home, dir, &["commit", "-q", "-m", &format!("c{i}")]);
    }
}

/// The value of the series `name` with exactly these labels.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, v) = line.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        if n != name {
            return None;
        }
        let got: BTreeMap<&str, &str> = rest
            .trim_end_matches('}')
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        (got == want).then(|| v.parse().ok()).flatten()
    })
}

#[test]
fn git_collector_scans_in_the_background_and_survives_broken_repositories() {
    if !support::require("git", "git_collector_end_to_end") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let root = t.path().join("projects");
    repo(&home, &root.join("clean"), 2);
    repo(&home, &root.join("team/locked"), 1);
    repo(&home, &root.join("doomed"), 1);
    repo(&home, &root.join("corrupt"), 1);
    repo(&home, &root.join("node_modules/dep"), 1);
    std::fs::write(root.join("team/locked/.git/index.lock"), b"").unwrap();
    let corrupt = root.join("corrupt/.git/objects");
    for entry in walk(&corrupt) {
        if entry.parent().is_some_and(|p| p.file_name().is_some_and(|n| n.len() == 2)) {
            let _ = std::fs::write(&entry, b"garbage");
        }
    }
    let config = t.path().join("exporter.yml");
    let stats = t.path().join("stats");
    std::fs::write(
        &config,
        format!(
            "git:\n  roots: ['{}']\n  refresh_interval: 1s\n  windows: [24h, 1y, 5000d]\n  stats_log_dir: '{}'\n",
            root.display(),
            stats.display()
        ),
    )
    .unwrap();
    let log = t.path().join("exporter.log");
    let port = free_port();
    let mut cmd = Command::new(bin("fleetwatch-exporter"));
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--config.file={}", config.display()))
        .args(["--collector.disable-defaults", "--collector.git"])
        .stderr(std::fs::File::create(&log).unwrap());
    let _exporter = Proc::spawn("fleetwatch-exporter", &mut cmd);
    wait_port(port, "fleetwatch-exporter");
    let scrape = || get(port, "/metrics", &[]).text();
    let text = eventually(Duration::from_secs(20), "four repositories scanned", || {
        let text = scrape();
        ["clean", "team/locked", "doomed", "corrupt"]
            .iter()
            .all(|r| value(&text, "git_repo_scan_success", &[("repo", r)]).is_some())
            .then_some(text)
    });
    let ok = |text: &str, r: &str| value(text, "git_repo_scan_success", &[("repo", r)]);
    assert_eq!((ok(&text, "clean"), ok(&text, "doomed")), (Some(1.0), Some(1.0)), "{text}");
    assert_eq!((ok(&text, "team/locked"), ok(&text, "corrupt")), (Some(0.0), Some(0.0)), "{text}");
    assert!(!text.contains("node_modules"), "a dependency directory was searched:\n{text}");
    let path = root.join("clean").display().to_string();
    let info = [("repo", "clean"), ("path", path.as_str()), ("branch", "main"), ("upstream", "")];
    assert_eq!(value(&text, "git_repo_info", &info), Some(1.0), "{text}");
    assert_eq!(value(&text, "git_repo_commits", &[("repo", "clean")]), Some(2.0));
    assert_eq!(value(&text, "git_repo_recent_commits", &[("repo", "clean"), ("window", "1y")]), Some(0.0));
    assert_eq!(value(&text, "git_repo_last_commit_timestamp_seconds", &[("repo", "clean")]), Some(1_700_000_000.0));
    assert_eq!(value(&text, "git_repo_uncommitted_files", &[("repo", "clean"), ("state", "untracked")]), Some(0.0));
    assert_eq!(value(&text, "git_repo_operation_in_progress", &[("repo", "clean"), ("operation", "rebase")]), Some(0.0));
    assert_eq!(value(&text, "git_repo_commits", &[("repo", "corrupt")]), None, "a failed scan reports no figures");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("git scan failed") && logged.contains("index.lock"), "{logged}");
    check_stats_log(&stats);

    // Deleted while running: its series go; the lock removed: its repository recovers.
    std::fs::remove_dir_all(root.join("doomed")).unwrap();
    std::fs::remove_file(root.join("team/locked/.git/index.lock")).unwrap();
    let text = eventually(Duration::from_secs(20), "deleted repo gone, locked repo recovered", || {
        let text = scrape();
        (!text.contains("repo=\"doomed\"") && ok(&text, "team/locked") == Some(1.0)).then_some(text)
    });
    assert_eq!(ok(&text, "clean"), Some(1.0));
    assert_eq!(value(&text, "git_repo_commits", &[("repo", "team/locked")]), Some(1.0));
}

/// The stats log written after the first refresh, and the month-end report made from it: the
/// day of the fixed commit dates (2023-11-14) has clean's 2 commits and doomed's 1, one line
/// each; the locked and corrupt repositories failed and list none.
fn check_stats_log(stats: &Path) {
    let latest = eventually(Duration::from_secs(20), "the stats log", || {
        let entry =
            std::fs::read_dir(stats).ok()?.flatten().find(|e| e.file_name().to_string_lossy().ends_with("_git_stats_latest.json"))?;
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(entry.path()).ok()?).ok()?;
        (v["repos"].as_array()?.len() == 4).then_some(v)
    });
    let user = latest["user"].as_str().unwrap().to_string();
    let clean = latest["repos"].as_array().unwrap().iter().find(|r| r["repo"] == "clean").unwrap();
    assert_eq!(clean["total_commits"], 2);
    assert_eq!(clean["last_commit"]["summary"], "c1");
    assert_eq!(clean["last_commit"]["time"], "2023-11-14T22:13:20Z");
    assert_eq!(clean["windows"]["5000d"]["commits"], 2);
    let day_files = std::fs::read_dir(stats).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl")).count();
    assert_eq!(day_files, 1);
    let out = Command::new(bin("fleetwatch-exporter"))
        .args(["report", "--from", "2023-11-13", "--to", "2023-11-14", "--git-stats-dir"])
        .arg(stats)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "date,user,active_minutes,idle_minutes,idle_actions,file_modifications,commits,insertions,deletions\n2023-11-13,{user},0,0,0,0,0,0,0\n2023-11-14,{user},0,0,0,0,3,3,0\n"
        )
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn git_collector_without_repositories_reports_nothing() {
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("exporter.yml");
    std::fs::write(&config, format!("git:\n  roots: ['{}']\n  refresh_interval: 1s\n", t.path().join("none").display())).unwrap();
    let port = free_port();
    let mut cmd = Command::new(bin("fleetwatch-exporter"));
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}")).arg(format!("--config.file={}", config.display()));
    let _exporter = Proc::spawn("fleetwatch-exporter", &mut cmd);
    wait_port(port, "fleetwatch-exporter");
    std::thread::sleep(Duration::from_millis(1500));
    let text = get(port, "/metrics", &[]).text();
    assert!(text.contains("node_load1"), "other collectors run");
    assert!(!text.contains("git_repo_"), "no repository, no git series:\n{text}");
}
