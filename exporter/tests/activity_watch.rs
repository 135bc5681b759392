//! The activity watcher against a real tree of 50,000 files (500 directories of 100): touching,
//! creating (also nested directories made in one go), renaming and deleting are counted once
//! each, excluded paths are not, and with the watch limit forced low the fallback scan still sees
//! the changes and the directories are reported per mode.

use fleetwatch_exporter::activity::watch::{RootStats, WatchConfig, Watcher, COALESCE_WINDOW};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

const PROJECTS: usize = 10;
const DIRS_PER_PROJECT: usize = 50;
const FILES_PER_DIR: usize = 100;
/// The root, the projects and their directories (the excluded ones not included).
const WATCHED_DIRS: u64 = 1 + PROJECTS as u64 + (PROJECTS * DIRS_PER_PROJECT) as u64;

/// root/pP/dD/fF, plus excluded trees: p0/node_modules/pkg/…, p1/.git/objects/…
fn make_tree(root: &Path) {
    for p in 0..PROJECTS {
        for d in 0..DIRS_PER_PROJECT {
            let dir = root.join(format!("p{p}/d{d}"));
            fs::create_dir_all(&dir).unwrap();
            for f in 0..FILES_PER_DIR {
                fs::File::create(dir.join(format!("f{f}"))).unwrap();
            }
        }
    }
    for dir in ["p0/node_modules/pkg/lib", "p1/.git/objects/ab", "p2/d3/.git/refs"] {
        fs::create_dir_all(root.join(dir)).unwrap();
        fs::write(root.join(dir).join("x"), "x").unwrap();
    }
}

fn config(root: &Path, max_watches: usize) -> WatchConfig {
    WatchConfig {
        roots: vec![root.to_path_buf()],
        exclude: vec![".git/".into(), "node_modules/".into(), "target/".into(), "*.swp".into()],
        scan_interval: Duration::from_millis(200),
        scan_max_dirs: 200,
        max_watches,
    }
}

fn stats(w: &Watcher) -> RootStats {
    w.stats().remove(0)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Counts what one step should add and checks the watcher reaches exactly that.
struct Expect<'a> {
    w: &'a Watcher,
    total: u64,
}

impl Expect<'_> {
    fn step(&mut self, what: &str, n: u64, action: impl FnOnce()) {
        action();
        self.total += n;
        let want = self.total;
        wait_for(what, || stats(self.w).modifications_total >= want);
        assert_eq!(stats(self.w).modifications_total, want, "{what}: counted more than expected");
    }
}

fn touch(paths: &[PathBuf]) {
    let status = Command::new("touch").args(paths).status().unwrap();
    assert!(status.success());
}

fn ready(root: &Path, max_watches: usize) -> Watcher {
    let w = Watcher::start(config(root, max_watches)).unwrap();
    wait_for("the initial watches", || w.ready());
    w
}

#[test]
fn changes_in_a_50000_file_tree_are_counted_once_each() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_tree(root);
    let w = ready(root, 0);
    let s = stats(&w);
    assert_eq!((s.inotify_dirs, s.scan_dirs, s.modifications_total), (WATCHED_DIRS, 0, 0), "{s:?}");
    assert_eq!(s.last_modification, None);
    let mut e = Expect { w: &w, total: 0 };

    let existing: Vec<PathBuf> = (0..100).map(|i| root.join(format!("p{}/d{}/f{}", i % PROJECTS, i % DIRS_PER_PROJECT, i))).collect();
    e.step("touching 100 existing files", 100, || touch(&existing));
    let (n, recent) = w.take_recent(10);
    assert_eq!((n, recent.len()), (100, 10));
    for rel in &recent {
        assert!(Path::new(rel).is_relative() && root.join(rel).is_file(), "{rel}");
    }
    assert!(stats(&w).last_modification.is_some());

    e.step("one file touched 5 times in a row", 1, || {
        for _ in 0..5 {
            fs::File::options().write(true).open(&existing[0]).unwrap().set_modified(SystemTime::now()).unwrap();
        }
    });
    e.step("two editor saves: vim's backup dance and an atomic rename", 2, || {
        let dir = root.join("p9/d9");
        fs::write(dir.join("4913"), "").unwrap();
        fs::remove_file(dir.join("4913")).unwrap();
        fs::rename(dir.join("f1"), dir.join("f1~")).unwrap();
        fs::write(dir.join("f1"), "saved").unwrap();
        fs::remove_file(dir.join("f1~")).unwrap();
        fs::write(dir.join(".f2.tmp"), "saved").unwrap();
        fs::rename(dir.join(".f2.tmp"), dir.join("f2")).unwrap();
    });
    assert_eq!(w.take_recent(10).1[1..], ["p9/d9/f1".to_string(), "p9/d9/f2".to_string()]);
    e.step("a file rewritten in several writes", 1, || {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(&existing[1]).unwrap();
        (0..20).for_each(|_| f.write_all(b"line\n").unwrap());
    });

    e.step("nested directories made in one go, with files", 4 + 3, || {
        fs::create_dir_all(root.join("new/a/b/c")).unwrap();
        (0..3).for_each(|i| fs::write(root.join(format!("new/a/b/c/f{i}")), "x").unwrap());
    });
    wait_for("the new directories watched", || stats(&w).inotify_dirs == WATCHED_DIRS + 4);
    e.step("a file in the deepest new directory", 1, || fs::write(root.join("new/a/b/c/late"), "x").unwrap());

    e.step("10 files renamed", 10, || {
        (0..10).for_each(|i| fs::rename(root.join(format!("p5/d5/f{i}")), root.join(format!("p5/d5/renamed{i}"))).unwrap())
    });
    e.step("a directory renamed", 1, || fs::rename(root.join("p6/d6"), root.join("p6/d6-renamed")).unwrap());
    w.take_recent(usize::MAX);
    e.step("a file in the renamed directory", 1, || touch(&[root.join("p6/d6-renamed/f1")]));
    assert_eq!(w.take_recent(5), (1, vec!["p6/d6-renamed/f1".to_string()]));

    e.step("20 files deleted", 20, || (0..20).for_each(|i| fs::remove_file(root.join(format!("p7/d7/f{i}"))).unwrap()));
    e.step("a directory of 100 files deleted", 101, || fs::remove_dir_all(root.join("p8/d8")).unwrap());
    wait_for("the deleted directory's watch dropped", || stats(&w).inotify_dirs == WATCHED_DIRS + 3);

    e.step("changes in excluded paths, then one file", 1, || {
        touch(&[root.join("p0/node_modules/pkg/lib/x"), root.join("p1/.git/objects/ab/x"), root.join("p2/d3/.git/refs/x")]);
        fs::write(root.join("p1/.git/objects/ab/new"), "x").unwrap();
        fs::create_dir_all(root.join("p4/d4/node_modules/dep/dist")).unwrap();
        fs::write(root.join("p4/d4/node_modules/dep/dist/index.js"), "x").unwrap();
        fs::create_dir_all(root.join("p4/.git/hooks")).unwrap();
        fs::write(root.join("p4/d4/.main.rs.swp"), "x").unwrap();
        fs::write(root.join("p4/d4/main.rs"), "x").unwrap();
    });
    std::thread::sleep(COALESCE_WINDOW * 2);
    assert_eq!(stats(&w).modifications_total, e.total, "nothing more was counted late");
    assert_eq!(stats(&w).inotify_dirs, WATCHED_DIRS + 3, "excluded directories are not watched");
}

#[test]
fn past_the_watch_limit_the_scan_sees_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_tree(root);
    let w = ready(root, 10);
    let s = stats(&w);
    assert_eq!((s.inotify_dirs, s.scan_dirs), (10, WATCHED_DIRS - 10), "{s:?}");
    let mut e = Expect { w: &w, total: 0 };

    // One file in each of 40 directories: most of them scanned.
    let files: Vec<PathBuf> = (0..40).map(|i| root.join(format!("p{}/d{}/f{}", i % PROJECTS, i, i))).collect();
    e.step("40 files touched", 40, || touch(&files));
    e.step("a new file", 1, || fs::write(root.join("p9/d40/new"), "x").unwrap());
    e.step("a file deleted (its directory counts)", 1, || fs::remove_file(root.join("p9/d41/f0")).unwrap());
    e.step("a new directory with 2 files", 3, || {
        fs::create_dir_all(root.join("p9/d42/sub")).unwrap();
        fs::write(root.join("p9/d42/sub/a"), "x").unwrap();
        fs::write(root.join("p9/d42/sub/b"), "x").unwrap();
    });
    wait_for("the new directory scanned", || stats(&w).scan_dirs == WATCHED_DIRS - 10 + 1);
    e.step("a change in an excluded tree, then one file", 1, || {
        touch(&[root.join("p0/node_modules/pkg/lib/x")]);
        fs::write(root.join("p9/d43/f0"), "changed").unwrap();
    });
    let (n, recent) = w.take_recent(3);
    assert_eq!((n, recent.len()), (e.total, 3));
    std::thread::sleep(COALESCE_WINDOW * 2);
    let s = stats(&w);
    assert_eq!(s.modifications_total, e.total, "nothing more was counted late");
    assert_eq!(s.inotify_dirs + s.scan_dirs, WATCHED_DIRS + 1);
}
