//! The git scan against the git CLI on real histories: the project's own clone and a generated
//! repository of 20,000 commits (merges, renames, binary files). Commits reachable from HEAD
//! must equal `git rev-list --count HEAD`, every window's figures the sums of
//! `git log --since=... --numstat`, and the uncommitted counts `git status --porcelain`.

mod gitutil;

use fleetwatch_exporter::git::scan::{RepoCache, RepoStats};
use gitutil::{cli_status, cli_window, options, scan_at, write, Git, DAY, HOUR, NOW};
use std::path::Path;

const WINDOWS: [(&str, i64); 5] = [("1h", HOUR), ("24h", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY), ("365d", 365 * DAY)];

fn compare_with_cli(git: &Git, dir: &Path, s: &RepoStats, now: i64) {
    let cli: u64 = git.run(dir, &["rev-list", "--count", "HEAD"]).trim().parse().unwrap();
    assert_eq!(s.commits, cli, "git_repo_commits vs git rev-list --count HEAD");
    for (w, (label, secs)) in s.windows.iter().zip(WINDOWS) {
        let want = cli_window(git, dir, now - secs);
        assert_eq!((w.commits, w.insertions, w.deletions, w.files_changed), want, "window {label} vs git log --since --numstat");
    }
    let u = s.uncommitted.unwrap();
    assert_eq!((u.staged, u.unstaged, u.untracked.unwrap(), u.conflicted), cli_status(git, dir), "vs git status --porcelain");
}

/// Stages a change, makes two unstaged ones (a change and a deletion) and two untracked
/// entries, on the first tracked text files.
fn dirty(git: &Git, dir: &Path) {
    let listed = git.run(dir, &["ls-files", "*.txt", "*.md", "*.toml"]);
    let files: Vec<&str> = listed.lines().take(3).collect();
    assert_eq!(files.len(), 3, "too few tracked files in {}", dir.display());
    write(dir, files[0], b"staged change\n");
    git.run(dir, &["add", files[0]]);
    write(dir, files[1], b"unstaged change\n");
    std::fs::remove_file(dir.join(files[2])).unwrap();
    write(dir, "untracked.txt", b"u\n");
    write(dir, "untracked-dir/x.txt", b"x\n");
}

#[test]
fn own_clone_matches_git_cli() {
    if !gitutil::have_git("own_clone_matches_git_cli") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let git = Git::new(&t.path().join("home"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let clone = t.path().join("clone");
    git.run(t.path(), &["clone", "-q", "--no-local", root.to_str().unwrap(), clone.to_str().unwrap()]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    dirty(&git, &clone);
    let s = scan_at(&clone, &options(&WINDOWS, 5), &mut RepoCache::default(), now);
    assert!(s.commits > 1);
    compare_with_cli(&git, &clone, &s, now);
}

#[test]
fn twenty_thousand_commits_match_git_cli() {
    if !gitutil::have_git("twenty_thousand_commits_match_git_cli") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let git = Git::new(&t.path().join("home"));
    let dir = t.path().join("big");
    // One commit every 20 minutes: the windows hold 3, 72, 504 and 2160 commits and the year all.
    gitutil::import(&git, &dir, &gitutil::history_stream(20_000, NOW - 600, 1200));
    dirty(&git, &dir);
    let mut cache = RepoCache::default();
    let s = scan_at(&dir, &options(&WINDOWS, 5), &mut cache, NOW);
    assert!(s.commits >= 20_000, "{}", s.commits);
    assert!(s.windows[3].files_changed > 2000);
    compare_with_cli(&git, &dir, &s, NOW);
    // The second scan reads nothing from the object database and gives the same figures.
    assert_eq!(scan_at(&dir, &options(&WINDOWS, 5), &mut cache, NOW), s);
    assert_eq!((cache.last_loaded, cache.last_counted_walk), (0, 0));
}
