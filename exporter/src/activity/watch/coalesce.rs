//! What counts as one file modification: the raw changes seen for a path (by inotify or by the
//! fallback scan) are gathered per path for a short window and then counted at most once.
//!
//! - One `touch` (open, attribute change, close-after-write) or one editor save that writes a file
//!   several times counts as 1.
//! - A path created and removed again within the window (`4913`, `file~` and other temporary or
//!   lock files of editors' safe saves) counts as 0.
//! - A rename counts once, on its destination (the source side of a rename seen whole is not a
//!   change of its own); moving a file into the tree counts as a creation, out of it as a deletion.
//! - Creating, changing or deleting a directory entry (file or directory) counts as 1 each; the
//!   files in a deleted directory count one each as they are deleted.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A raw change to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Created or moved in.
    Created,
    /// Written or its attributes changed.
    Written,
    /// Deleted or moved out of the tree.
    Removed,
    /// The source of a rename whose destination is also in the tree.
    RenamedAway,
}

/// A path under root number `.0`.
pub type Key = (usize, PathBuf);

#[derive(Debug, Clone)]
struct Entry {
    /// Unix seconds of the first change.
    wall: f64,
    /// Some change that counts was seen.
    counts: bool,
    /// The first change that counts was a creation.
    created_first: bool,
    /// The path exists after the last change.
    exists: bool,
}

impl Entry {
    /// Whether the window's changes make one modification: something that counts happened, and
    /// the path is not a temporary (created and gone again).
    fn counts(&self) -> bool {
        let temporary = self.created_first && !self.exists;
        self.counts && !temporary
    }
}

/// A modification as counted: which root, the relative path, when.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub root: usize,
    pub rel: PathBuf,
    pub wall: f64,
}

/// Changes gathered per path until their window ends.
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    pending: HashMap<Key, Entry>,
    /// Paths in the order their windows end (the window is the same for all).
    queue: VecDeque<(Instant, Key)>,
}

impl Coalescer {
    pub fn new(window: Duration) -> Coalescer {
        Coalescer { window, pending: HashMap::new(), queue: VecDeque::new() }
    }

    /// Notes one change of `key` seen at `now` (`wall`: the same instant in Unix seconds).
    pub fn note(&mut self, key: Key, change: Change, now: Instant, wall: f64) {
        let entry = self.pending.entry(key).or_insert_with_key(|key| {
            self.queue.push_back((now + self.window, key.clone()));
            Entry { wall, counts: false, created_first: false, exists: true }
        });
        let counts = change != Change::RenamedAway;
        if counts && !entry.counts {
            entry.counts = true;
            entry.created_first = change == Change::Created;
        }
        entry.exists = matches!(change, Change::Created | Change::Written);
    }

    /// When the earliest window ends.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|(at, _)| *at)
    }

    /// Ends the windows that are over at `now` and returns the modifications they count.
    pub fn due(&mut self, now: Instant) -> Vec<Counted> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, key)) = self.queue.pop_front() else { break };
            if let Some(e) = self.pending.remove(&key) {
                if e.counts() {
                    out.push(Counted { root: key.0, rel: key.1, wall: e.wall });
                }
            }
        }
        out
    }

    /// Forgets everything pending for a root (it went away).
    pub fn forget_root(&mut self, root: usize) {
        self.pending.retain(|k, _| k.0 != root);
        self.queue.retain(|(_, k)| k.0 != root);
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Change::*;
    use super::*;

    const W: Duration = Duration::from_secs(1);

    /// Applies `changes` (path, change) within one window and returns the counted paths.
    fn count(changes: &[(&str, Change)]) -> Vec<String> {
        let mut c = Coalescer::new(W);
        let t0 = Instant::now();
        for (i, (path, change)) in changes.iter().enumerate() {
            c.note((0, PathBuf::from(path)), *change, t0 + Duration::from_millis(i as u64), 100.0);
        }
        assert!(c.due(t0 + W - Duration::from_millis(1)).is_empty(), "nothing is due before the window ends");
        let mut paths: Vec<String> = c.due(t0 + W * 2).into_iter().map(|m| m.rel.display().to_string()).collect();
        paths.sort();
        assert_eq!(c.pending(), 0);
        assert_eq!(c.next_due(), None);
        paths
    }

    #[test]
    fn one_touch_is_one_modification() {
        // touch on an existing file: IN_ATTRIB then IN_CLOSE_WRITE; on a new one IN_CREATE first.
        assert_eq!(count(&[("a", Written), ("a", Written)]), ["a"]);
        assert_eq!(count(&[("n", Created), ("n", Written), ("n", Written)]), ["n"]);
        assert_eq!(count(&[("a", Written), ("b", Written), ("c", Written)]), ["a", "b", "c"]);
    }

    #[test]
    fn an_editor_save_is_one_modification() {
        // vim with backup: probe file 4913, f -> f~, new f written, f~ deleted.
        let vim = [
            ("4913", Created),
            ("4913", Removed),
            ("f", RenamedAway),
            ("f~", Created),
            ("f", Created),
            ("f", Written),
            ("f", Written),
            ("f~", Removed),
        ];
        assert_eq!(count(&vim), ["f"]);
        // Atomic save: write a temporary file and rename it over the original.
        let atomic = [("f.tmp", Created), ("f.tmp", Written), ("f.tmp", RenamedAway), ("f", Created)];
        assert_eq!(count(&atomic), ["f"]);
    }

    #[test]
    fn renames_deletes_and_temporaries() {
        assert_eq!(count(&[("old", RenamedAway), ("new", Created)]), ["new"]);
        assert_eq!(count(&[("gone", Removed)]), ["gone"]);
        assert_eq!(count(&[("moved-out", Removed)]), ["moved-out"]);
        assert_eq!(count(&[("lock", Created), ("lock", Removed)]), Vec::<String>::new());
        // Changed, then deleted: the file existed before, so the deletion is a modification.
        assert_eq!(count(&[("x", Written), ("x", Removed)]), ["x"]);
    }

    #[test]
    fn a_path_counts_again_in_the_next_window() {
        let mut c = Coalescer::new(W);
        let t0 = Instant::now();
        let key = (1, PathBuf::from("f"));
        c.note(key.clone(), Written, t0, 10.0);
        c.note(key.clone(), Written, t0 + W / 2, 10.5);
        assert_eq!(c.next_due(), Some(t0 + W));
        assert_eq!(c.due(t0 + W), [Counted { root: 1, rel: "f".into(), wall: 10.0 }]);
        c.note(key.clone(), Written, t0 + W * 3, 13.0);
        assert_eq!(c.due(t0 + W * 4).len(), 1);
    }

    #[test]
    fn forgetting_a_root() {
        let mut c = Coalescer::new(W);
        let t0 = Instant::now();
        c.note((0, "a".into()), Written, t0, 0.0);
        c.note((1, "b".into()), Written, t0, 0.0);
        c.forget_root(0);
        assert_eq!(c.due(t0 + W).len(), 1);
    }
}
