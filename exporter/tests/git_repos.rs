//! The git scan on repositories built here with a known history (fixed identities and dates):
//! merges, a rename, a binary file, an upstream that is ahead and behind, stashes, staged,
//! unstaged and untracked files, a conflicted merge, a detached HEAD, a bare and an empty
//! repository. Every figure is checked against its exact expected value; the incremental paths
//! (nothing changed, new commits, rewritten history) against the work they did.

mod gitutil;

use fleetwatch_exporter::git::scan::{scan, DiffStat, RepoCache, ScanError, Uncommitted};
use gitutil::{options, scan_at, write, Git, DAY, HOUR, NOW};
use std::path::Path;

/// Builds `origin` (bare), `seed` (pushes to it) and `work` (a clone with local history, an
/// upstream ahead and behind, stashes and a dirty work tree). Returns the git runner.
fn build_work(dir: &Path) -> Git {
    let git = Git::new(&dir.join("home"));
    let (origin, seed, work) = (dir.join("origin.git"), dir.join("seed"), dir.join("work"));
    git.init(&origin, true);
    git.init(&seed, false);
    write(&seed, "a.txt", b"1\n2\n3\n");
    git.commit_file(&seed, "Alice", NOW - 10 * DAY, "bin.dat", b"\x00\x01\x02binary", "c1: first");
    git.run(&seed, &["remote", "add", "origin", origin.to_str().unwrap()]);
    git.run(&seed, &["push", "-q", "origin", "main"]);
    git.run(dir, &["clone", "-q", origin.to_str().unwrap(), "work"]);
    // c2 (3 days ago, Bob): a.txt line 2 changed (+1 -1), b.txt added (+2).
    write(&work, "a.txt", b"1\ntwo\n3\n");
    git.commit_file(&work, "Bob", NOW - 3 * DAY, "b.txt", b"x\ny\n", "c2");
    // c3 (2 hours ago, Alice): b.txt renamed to c.txt unchanged, bin.dat changed: 2 files, 0 lines.
    git.at(&work, "Alice", NOW - 2 * HOUR, &["mv", "b.txt", "c.txt"]);
    git.commit_file(&work, "Alice", NOW - 2 * HOUR, "bin.dat", b"\x00\x01\x02binary, changed", "c3");
    // c4 on a feature branch (1 hour ago, Carol): d.txt added (+4).
    git.run(&work, &["checkout", "-q", "-b", "feature"]);
    git.commit_file(&work, "Carol", NOW - HOUR, "d.txt", b"a\nb\nc\nd\n", "c4");
    git.run(&work, &["checkout", "-q", "main"]);
    // c5 (50 minutes ago, Alice): a.txt +1; then the feature merged (30 minutes ago, Alice).
    git.commit_file(&work, "Alice", NOW - 50 * 60, "a.txt", b"1\ntwo\n3\n4\n", "c5");
    git.at(&work, "Alice", NOW - 30 * 60, &["merge", "-q", "--no-ff", "-m", "m6: merge feature", "feature"]);
    // Upstream moves on (1 day ago): work is 5 ahead (c2..c5, m6) and 1 behind.
    git.commit_file(&seed, "Alice", NOW - DAY, "u.txt", b"up\n", "u1");
    git.run(&seed, &["push", "-q", "origin", "main"]);
    git.run(&work, &["fetch", "-q"]);
    // Two stashes.
    write(&work, "a.txt", b"stash me\n");
    git.run(&work, &["stash", "-q"]);
    write(&work, "c.txt", b"stash me too\n");
    git.run(&work, &["stash", "-q"]);
    // Staged: s.txt (new), d.txt (modified, then changed again: also unstaged); unstaged: c.txt;
    // untracked: notes.txt and the directory new/ (one entry, as git status shows it).
    write(&work, "s.txt", b"staged\n");
    write(&work, "d.txt", b"a\nb\n");
    git.run(&work, &["add", "s.txt", "d.txt"]);
    write(&work, "d.txt", b"a\n");
    write(&work, "c.txt", b"x\ny\nz\n");
    write(&work, "notes.txt", b"n\n");
    write(&work, "new/one.txt", b"1\n");
    write(&work, "new/two.txt", b"2\n");
    git
}

#[test]
fn work_tree_with_merges_renames_binary_upstream_and_stashes() {
    if !gitutil::have_git("work_tree_with_merges_renames_binary_upstream_and_stashes") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    build_work(t.path());
    let opts = options(&[("24h", DAY), ("7d", 7 * DAY)], 2);
    let s = scan_at(&t.path().join("work"), &opts, &mut RepoCache::default(), NOW);
    assert_eq!((s.branch.as_str(), s.upstream.as_str(), s.bare), ("main", "origin/main", false));
    assert_eq!(s.commits, 6);
    assert_eq!(s.ahead_behind, Some((5, 1)));
    assert_eq!(s.stashes, 2);
    assert_eq!(s.operation, None);
    assert_eq!(s.uncommitted, Some(Uncommitted { staged: 2, unstaged: 2, untracked: Some(2), conflicted: 0 }));
    let last = s.last_commit.clone().unwrap();
    assert_eq!((last.author.as_str(), last.time, last.summary.as_str()), ("Alice", NOW - 30 * 60, "m6: merge feature"));
    let day = &s.windows[0];
    assert_eq!((day.label.as_str(), day.commits, day.insertions, day.deletions, day.files_changed), ("24h", 4, 5, 0, 4));
    assert_eq!(day.authors, vec![("Alice".to_string(), 3), ("Carol".to_string(), 1)]);
    // Newest first; the merge has no diff; the rename and the binary change count as files.
    let stats: Vec<Option<DiffStat>> = day.list.iter().map(|c| c.stat).collect();
    let d = |insertions, deletions, files| Some(DiffStat { insertions, deletions, files });
    assert_eq!(stats, vec![None, d(1, 0, 1), d(4, 0, 1), d(0, 0, 2)]);
    let week = &s.windows[1];
    assert_eq!((week.commits, week.insertions, week.deletions, week.files_changed), (5, 8, 1, 6));
    // Top 2: Alice 3, then Bob and Carol tie at 1 and Bob sorts first.
    assert_eq!(week.authors, vec![("Alice".to_string(), 3), ("Bob".to_string(), 1)]);
}

#[test]
fn incremental_scans_walk_only_what_changed_and_recount_rewritten_history() {
    if !gitutil::have_git("incremental_scans_walk_only_what_changed") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let git = build_work(t.path());
    let work = t.path().join("work");
    let opts = options(&[("24h", DAY)], 5);
    let mut cache = RepoCache::default();
    let first = scan_at(&work, &opts, &mut cache, NOW);
    assert_eq!(cache.last_counted_walk, 6);
    // Nothing changed: no commit read, nothing counted, same figures.
    let again = scan_at(&work, &opts, &mut cache, NOW);
    assert_eq!((cache.last_loaded, cache.last_counted_walk), (0, 0));
    assert_eq!(again, first);
    // Two new commits: only they are read and counted.
    git.run(&work, &["stash", "-q", "-u"]);
    git.commit_file(&work, "Dave", NOW + 60, "e.txt", b"e\n", "c7");
    git.commit_file(&work, "Dave", NOW + 120, "e.txt", b"e\nf\n", "c8");
    let grown = scan_at(&work, &opts, &mut cache, NOW + 180);
    assert_eq!((cache.last_loaded, cache.last_counted_walk), (2, 2));
    assert_eq!((grown.commits, grown.windows[0].commits, grown.windows[0].insertions), (8, 6, 7));
    // Time passes: the window shrinks from memory alone (c4 and older leave).
    let later = scan_at(&work, &opts, &mut cache, NOW + DAY - 55 * 60);
    assert_eq!((cache.last_loaded, cache.last_counted_walk, later.windows[0].commits), (0, 0, 4));
    // History rewritten (three commits dropped, one added): a full recount.
    git.run(&work, &["reset", "-q", "--hard", "HEAD~3"]);
    git.commit_file(&work, "Dave", NOW + 240, "f.txt", b"f\n", "c9");
    let rewritten = scan_at(&work, &opts, &mut cache, NOW + 300);
    let cli: u64 = git.run(&work, &["rev-list", "--count", "HEAD"]).trim().parse().unwrap();
    assert_eq!((rewritten.commits, cache.last_counted_walk as u64), (cli, cli));
}

#[test]
fn conflicted_merge_detached_head_bare_and_empty_repositories() {
    if !gitutil::have_git("conflicted_merge_detached_head_bare_and_empty_repositories") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    build_work(t.path());
    let git = Git::new(&t.path().join("home"));
    let opts = options(&[("24h", DAY)], 5);

    let conflict = t.path().join("conflict");
    git.init(&conflict, false);
    git.commit_file(&conflict, "Alice", NOW - 3 * HOUR, "x.txt", b"base\n", "base");
    git.run(&conflict, &["checkout", "-q", "-b", "other"]);
    write(&conflict, "y.txt", b"clean\n");
    git.commit_file(&conflict, "Bob", NOW - 2 * HOUR, "x.txt", b"theirs\n", "other");
    git.run(&conflict, &["checkout", "-q", "main"]);
    git.commit_file(&conflict, "Alice", NOW - HOUR, "x.txt", b"ours\n", "ours");
    assert!(!git.try_at(&conflict, "Alice", NOW, &["merge", "other"]), "the merge should conflict");
    let s = scan_at(&conflict, &opts, &mut RepoCache::default(), NOW);
    assert_eq!(s.operation, Some("merge"));
    assert_eq!(s.uncommitted, Some(Uncommitted { staged: 1, unstaged: 0, untracked: Some(0), conflicted: 1 }));
    assert_eq!((s.commits, s.windows[0].commits, s.upstream.as_str(), s.ahead_behind), (2, 2, "", None));

    let detached = t.path().join("work");
    git.run(&detached, &["checkout", "-q", "-f", "--detach", "HEAD~1"]);
    let s = scan_at(&detached, &opts, &mut RepoCache::default(), NOW);
    assert_eq!((s.branch.as_str(), s.upstream.as_str(), s.ahead_behind), ("", "", None));
    assert_eq!(s.commits, 4);
    assert_eq!(s.last_commit.unwrap().time, NOW - 50 * 60);

    let bare = scan_at(&t.path().join("origin.git"), &opts, &mut RepoCache::default(), NOW);
    assert!(bare.bare);
    assert_eq!((bare.branch.as_str(), bare.commits, bare.uncommitted, bare.windows[0].commits), ("main", 2, None, 1));

    let empty = t.path().join("empty");
    git.init(&empty, false);
    write(&empty, "draft.txt", b"d\n");
    let s = scan_at(&empty, &opts, &mut RepoCache::default(), NOW);
    assert_eq!((s.branch.as_str(), s.commits, s.last_commit, s.windows[0].commits), ("main", 0, None, 0));
    assert_eq!(s.uncommitted.unwrap().untracked, Some(1));
}

#[test]
fn corrupt_locked_and_vanished_repositories_fail_the_scan() {
    if !gitutil::have_git("corrupt_locked_and_vanished_repositories_fail_the_scan") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let git = Git::new(&t.path().join("home"));
    let opts = options(&[("24h", DAY)], 5);
    let repo = t.path().join("r");
    git.init(&repo, false);
    git.commit_file(&repo, "Alice", NOW - HOUR, "a.txt", b"a\n", "one");
    git.commit_file(&repo, "Alice", NOW - 60, "a.txt", b"a\nb\n", "two");

    // index.lock: locked.
    std::fs::write(repo.join(".git/index.lock"), b"").unwrap();
    let err = scan(&repo, &opts, &mut RepoCache::default(), NOW).unwrap_err();
    assert!(matches!(err, ScanError::Locked(_)), "{err}");
    std::fs::remove_file(repo.join(".git/index.lock")).unwrap();

    // The HEAD commit's loose object overwritten with garbage: corrupt.
    let head = git.run(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    let object = repo.join(".git/objects").join(&head[..2]).join(&head[2..]);
    let mut perms = std::fs::metadata(&object).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&object, perms).unwrap();
    std::fs::write(&object, b"not a zlib stream").unwrap();
    let err = scan(&repo, &opts, &mut RepoCache::default(), NOW).unwrap_err();
    assert!(matches!(err, ScanError::Git(_)), "{err}");

    // Not a repository any more, and gone.
    std::fs::remove_dir_all(repo.join(".git")).unwrap();
    assert!(matches!(scan(&repo, &opts, &mut RepoCache::default(), NOW), Err(ScanError::Git(_))));
    std::fs::remove_dir_all(&repo).unwrap();
    assert!(matches!(scan(&repo, &opts, &mut RepoCache::default(), NOW), Err(ScanError::Vanished)));
}
