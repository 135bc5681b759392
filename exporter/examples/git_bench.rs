//! Benchmark of the git collector's refresh against the naive git CLI approach (run by
//! benches/git_vs_cli.sh).
//!
//!   git_bench generate DIR REPOS BIG_COMMITS   50 repositories, one of BIG_COMMITS commits
//!   git_bench measure DIR                      first scan, no-change refresh, refresh after 10
//!                                              new commits, each against the CLI per repo:
//!                                              git rev-list --count HEAD,
//!                                              git log --since=24h --numstat,
//!                                              git status --porcelain

use fleetwatch_exporter::git::config::GitConfig;
use fleetwatch_exporter::git::discover::{discover, Target};
use fleetwatch_exporter::git::scan::{scan, RepoCache, ScanOptions};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") if args.len() == 5 => generate(Path::new(&args[2]), args[3].parse().unwrap(), args[4].parse().unwrap()),
        Some("measure") if args.len() == 3 => measure(Path::new(&args[2])),
        _ => {
            eprintln!("usage: git_bench generate DIR REPOS BIG_COMMITS | git_bench measure DIR");
            std::process::exit(2);
        }
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn git(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir).args(args).env("GIT_AUTHOR_NAME", "Bench").env("GIT_AUTHOR_EMAIL", "bench@example.com");
    c.env("GIT_COMMITTER_NAME", "Bench").env("GIT_COMMITTER_EMAIL", "bench@example.com").stdin(Stdio::null());
    c
}

fn ok(mut c: Command) {
    assert!(c.stdout(Stdio::null()).status().unwrap().success(), "{c:?} failed");
}

/// A fast-import stream of `n` commits, one every `step` seconds up to now: 40 text files
/// changed in turn, 5 authors.
fn stream(n: usize, step: i64) -> Vec<u8> {
    let mut s = Vec::new();
    let start = now() - step * n as i64;
    for i in 0..n {
        let who = ["Ann", "Ben", "Cat", "Dan", "Eve"][i % 5];
        let ident = format!("{who} <{}@example.com> {} +0000", who.to_lowercase(), start + step * i as i64);
        let msg = format!("change {i}");
        s.extend_from_slice(
            format!("commit refs/heads/main\nmark :{}\nauthor {ident}\ncommitter {ident}\ndata {}\n{msg}\n", i + 1, msg.len()).as_bytes(),
        );
        if i > 0 {
            s.extend_from_slice(format!("from :{i}\n").as_bytes());
        }
        let body: String = (0..(i % 7 + 1)).map(|k| format!("line {k} of change {i}\n")).collect();
        s.extend_from_slice(format!("M 100644 inline src/file{}.txt\ndata {}\n{body}\n", i % 40, body.len()).as_bytes());
    }
    s
}

fn generate(dir: &Path, repos: usize, big: usize) {
    for r in 0..repos {
        let repo = dir.join(format!("repo{r:02}"));
        std::fs::create_dir_all(&repo).unwrap();
        ok(git(&repo, &["init", "-q", "-b", "main"]));
        let (n, step) = if r == 0 { (big, 300) } else { (200, 3600) };
        let mut child = git(&repo, &["fast-import", "--quiet"]).stdin(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(&stream(n, step)).unwrap();
        assert!(child.wait().unwrap().success());
        ok(git(&repo, &["checkout", "-q", "-f", "main"]));
    }
}

/// One refresh as the collector does it (scans in sequence here, to measure the total work).
fn refresh(targets: &[Target], caches: &mut HashMap<PathBuf, RepoCache>, opts: &ScanOptions) -> Duration {
    let t = Instant::now();
    let now = now();
    for target in targets {
        scan(&target.path, opts, caches.entry(target.path.clone()).or_default(), now).unwrap();
    }
    t.elapsed()
}

/// The naive approach: three git commands per repository.
fn cli(targets: &[Target]) -> Duration {
    let t = Instant::now();
    for target in targets {
        for args in [&["rev-list", "--count", "HEAD"][..], &["log", "--since=24 hours ago", "--numstat"], &["status", "--porcelain"]] {
            ok(git(&target.path, args));
        }
    }
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn measure(dir: &Path) {
    let cfg = GitConfig { roots: vec![dir.to_path_buf()], ..GitConfig::default() };
    let targets = discover(&cfg);
    let opts = ScanOptions { windows: vec![("24h".into(), Duration::from_secs(86_400))], top_authors: 5, include_untracked: true };
    let mut caches = HashMap::new();
    let cli_cost = median((0..3).map(|_| cli(&targets)).collect());
    let first = refresh(&targets, &mut caches, &opts);
    let unchanged = median((0..5).map(|_| refresh(&targets, &mut caches, &opts)).collect());
    let big = &targets[0].path;
    for i in 0..10 {
        std::fs::write(big.join("bench.txt"), format!("{i}\n")).unwrap();
        ok(git(big, &["add", "bench.txt"]));
        ok(git(big, &["commit", "-q", "-m", "bench"]));
    }
    let after_commits = refresh(&targets, &mut caches, &opts);
    let cli_after = median((0..3).map(|_| cli(&targets)).collect());
    let ratio = |d: Duration, c: Duration| d.as_secs_f64() / c.as_secs_f64();
    println!("repositories: {}", targets.len());
    println!("CLI (3 commands per repo): {} (after the 10 commits: {})", ms(cli_cost), ms(cli_after));
    println!("first scan:                {}  = {:.3}x CLI", ms(first), ratio(first, cli_cost));
    println!("no-change refresh:         {}  = {:.3}x CLI (target <= 0.05x)", ms(unchanged), ratio(unchanged, cli_cost));
    println!("after 10 new commits:      {}  = {:.3}x CLI (target <= 0.1x)", ms(after_commits), ratio(after_commits, cli_after));
}
