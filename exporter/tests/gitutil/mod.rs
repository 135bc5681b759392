//! Building repositories with the git CLI for the git collector's tests: every command with a
//! fixed identity and fixed author and committer dates, no user or system config.
#![allow(dead_code)]

use fleetwatch_exporter::git::scan::{scan, RepoCache, RepoStats, ScanOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The "now" of the fixed-history tests: 2023-11-14T22:13:20Z.
pub const NOW: i64 = 1_700_000_000;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

/// A place to run git in, with a private HOME so no user config applies.
pub struct Git {
    pub home: PathBuf,
}

impl Git {
    pub fn new(home: &Path) -> Git {
        std::fs::create_dir_all(home).unwrap();
        Git { home: home.to_path_buf() }
    }

    fn command(&self, dir: &Path, who: &str, at: i64) -> Command {
        let mut cmd = Command::new("git");
        let date = format!("@{at} +0000");
        cmd.current_dir(dir)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", who)
            .env("GIT_AUTHOR_EMAIL", format!("{}@example.com", who.to_lowercase()))
            .env("GIT_COMMITTER_NAME", who)
            .env("GIT_COMMITTER_EMAIL", format!("{}@example.com", who.to_lowercase()))
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_EDITOR", "true")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs git as `who` at time `at`; panics with its output when it fails.
    pub fn at(&self, dir: &Path, who: &str, at: i64, args: &[&str]) -> String {
        let out = self.command(dir, who, at).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?} in {}: {}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs git and returns whether it succeeded (for commands expected to fail, e.g. a
    /// conflicted merge).
    pub fn try_at(&self, dir: &Path, who: &str, at: i64, args: &[&str]) -> bool {
        self.command(dir, who, at).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap().success()
    }

    pub fn run(&self, dir: &Path, args: &[&str]) -> String {
        self.at(dir, "Tester", NOW, args)
    }

    /// Writes a file and commits everything as `who` at `at`.
    pub fn commit_file(&self, dir: &Path, who: &str, at: i64, file: &str, content: &[u8], message: &str) {
        write(dir, file, content);
        self.at(dir, who, at, &["add", "-A"]);
        self.at(dir, who, at, &["commit", "-q", "-m", message]);
    }

    pub fn init(&self, dir: &Path, bare: bool) {
        std::fs::create_dir_all(dir).unwrap();
        let mut args = vec!["init", "-q", "-b", "main"];
        if bare {
            args.push("--bare");
        }
        self.run(dir, &args);
    }
}

pub fn write(dir: &Path, file: &str, content: &[u8]) {
    let path = dir.join(file);
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

/// True when git is installed; says why a test skips otherwise (and fails in CI).
pub fn have_git(test: &str) -> bool {
    let found = Command::new("git").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{test}: git is not installed");
        eprintln!("SKIP {test}: git is not installed");
    }
    found
}

pub fn options(windows: &[(&str, i64)], top_authors: usize) -> ScanOptions {
    ScanOptions {
        windows: windows.iter().map(|(l, s)| (l.to_string(), Duration::from_secs(*s as u64))).collect(),
        top_authors,
        include_untracked: true,
    }
}

pub fn scan_at(path: &Path, opts: &ScanOptions, cache: &mut RepoCache, now: i64) -> RepoStats {
    scan(path, opts, cache, now).unwrap_or_else(|e| panic!("scan of {} failed: {e}", path.display()))
}

/// A `git fast-import` stream of `n` commits on `main`, one every `step` seconds, the last at
/// `end`: each changes one of 40 text files (lines added and removed), every 97th renames a
/// file, every 89th changes a binary file, and every 500th is a merge of a two-commit side
/// branch. Authors rotate through five names.
pub fn history_stream(n: usize, end: i64, step: i64) -> Vec<u8> {
    let mut s = Vec::new();
    let authors = ["Ann", "Ben", "Cat", "Dan", "Eve"];
    let mut mark = 0usize;
    let mut time = end - step * (n as i64 - 1);
    let mut names: Vec<String> = (0..40).map(|i| format!("src/file{i}.txt")).collect();
    let mut i = 0usize;
    while i < n {
        let who = authors[i % authors.len()];
        if i > 0 && i.is_multiple_of(500) && i + 3 <= n {
            // Side branch of two commits from the current main, then a merge.
            let base = mark;
            for k in 0..2 {
                mark += 1;
                commit_header(&mut s, "refs/heads/side", mark, who, time, &format!("side {i}.{k}"));
                s.extend_from_slice(format!("from :{}\n", if k == 0 { base } else { mark - 1 }).as_bytes());
                blob(&mut s, &format!("side/s{i}.txt"), format!("side {i} {k}\n").repeat(k + 1).as_bytes());
                time += step;
            }
            let side = mark;
            mark += 1;
            commit_header(&mut s, "refs/heads/main", mark, who, time, &format!("merge side {i}"));
            s.extend_from_slice(format!("from :{base}\nmerge :{side}\n").as_bytes());
            blob(&mut s, &format!("side/s{i}.txt"), format!("side {i} 1\n").repeat(2).as_bytes());
            time += step;
            i += 3;
            continue;
        }
        mark += 1;
        commit_header(&mut s, "refs/heads/main", mark, who, time, &format!("change {i}"));
        if mark > 1 {
            s.extend_from_slice(format!("from :{}\n", mark - 1).as_bytes());
        }
        let f = i % names.len();
        if i % 97 == 96 {
            let new = format!("src/renamed{i}.txt");
            s.extend_from_slice(format!("R {} {new}\n", names[f]).as_bytes());
            names[f] = new;
        } else if i % 89 == 88 {
            blob(&mut s, "assets/logo.bin", format!("\0\x01binary {i}").as_bytes());
        } else {
            let lines: String = (0..(i % 7 + 1)).map(|k| format!("line {k} of change {}\n", i - i % 3)).collect();
            blob(&mut s, &names[f], lines.as_bytes());
        }
        time += step;
        i += 1;
    }
    s
}

fn commit_header(s: &mut Vec<u8>, branch: &str, mark: usize, who: &str, time: i64, message: &str) {
    let ident = format!("{who} <{}@example.com> {time} +0000", who.to_lowercase());
    s.extend_from_slice(
        format!("commit {branch}\nmark :{mark}\nauthor {ident}\ncommitter {ident}\ndata {}\n{message}\n", message.len()).as_bytes(),
    );
}

fn blob(s: &mut Vec<u8>, path: &str, content: &[u8]) {
    s.extend_from_slice(format!("M 100644 inline {path}\ndata {}\n", content.len()).as_bytes());
    s.extend_from_slice(content);
    s.push(b'\n');
}

/// Creates a work tree at `dir` holding the history of `stream` (main checked out).
pub fn import(git: &Git, dir: &Path, stream: &[u8]) {
    use std::io::Write;
    git.init(dir, false);
    let mut child = git.command(dir, "Tester", NOW).args(["fast-import", "--quiet"]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stream).unwrap();
    assert!(child.wait().unwrap().success(), "git fast-import failed");
    git.run(dir, &["checkout", "-q", "-f", "main"]);
}

/// `git log --since=@<since> --numstat` summed: (commits, insertions, deletions, files).
pub fn cli_window(git: &Git, dir: &Path, since: i64) -> (u64, u64, u64, u64) {
    let out = git.run(dir, &["log", &format!("--since=@{since}"), "--numstat", "--format=commit %H"]);
    let (mut commits, mut ins, mut del, mut files) = (0, 0, 0, 0);
    for line in out.lines() {
        if line.starts_with("commit ") {
            commits += 1;
            continue;
        }
        let mut parts = line.splitn(3, '\t');
        let (Some(a), Some(d), Some(_)) = (parts.next(), parts.next(), parts.next()) else { continue };
        files += 1;
        ins += a.parse::<u64>().unwrap_or(0);
        del += d.parse::<u64>().unwrap_or(0);
    }
    (commits, ins, del, files)
}

/// `git status --porcelain` counted as the collector counts: (staged, unstaged, untracked,
/// conflicted).
pub fn cli_status(git: &Git, dir: &Path) -> (u64, u64, u64, u64) {
    let out = git.run(dir, &["status", "--porcelain"]);
    let (mut staged, mut unstaged, mut untracked, mut conflicted) = (0, 0, 0, 0);
    for line in out.lines() {
        let xy = &line.as_bytes()[..2];
        match xy {
            b"??" => untracked += 1,
            b"DD" | b"AU" | b"UD" | b"UA" | b"DU" | b"AA" | b"UU" => conflicted += 1,
            _ => {
                staged += u64::from(xy[0] != b' ');
                unstaged += u64::from(xy[1] != b' ');
            }
        }
    }
    (staged, unstaged, untracked, conflicted)
}
