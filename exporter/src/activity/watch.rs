//! File-modification watching for the activity collector: inotify over every directory under the
//! configured roots (recursive, new directories followed, excluded globs skipped), falling back to
//! a bounded periodic mtime scan for what no longer fits in the watch limit.
//!
//! One dedicated thread owns the inotify instance and all state; the collector reads counters
//! published under a mutex (`stats`, `take_recent`), so nothing here runs on the exporter's
//! runtime or its scrape path. Memory is one map entry per watched directory (descriptor → root
//! and relative path) and one per scanned directory; nothing is kept per file.
//!
//! What counts as one modification is documented in [`coalesce`]: changes to a path are gathered
//! for [`COALESCE_WINDOW`] and counted once, temporary files created and removed within it not at
//! all. Scanned directories are coarser: a file whose mtime or ctime moved since the last pass
//! counts once, and a directory whose own mtime moved with no such file (a deletion or rename in
//! it) counts once.

pub mod coalesce;
pub mod exclude;
mod sys;

use coalesce::{Change, Coalescer, Counted};
use exclude::Exclude;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long changes to one path are gathered before they count (once).
pub const COALESCE_WINDOW: Duration = Duration::from_secs(1);
/// Most distinct paths kept for `take_recent` between two calls.
const RECENT_MAX: usize = 1000;
/// The inotify read buffer (many events per read).
const READ_BUF: usize = 64 * 1024;
/// Most event bytes handled as one batch (renames are paired within a batch).
const MAX_BATCH: usize = 1024 * 1024;
/// How long the second half of a rename is waited for when a read ends between the two.
const MOVE_PAIR_WAIT: Duration = Duration::from_millis(5);

/// What the watcher is told to watch.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub roots: Vec<PathBuf>,
    /// Globs relative to a root, as in the config (`.git/`, `node_modules/`, `*.swp`, …); see
    /// [`exclude`] for how they match.
    pub exclude: Vec<String>,
    /// How often the fallback scan walks what inotify does not cover, and how often roots that do
    /// not exist are looked for again.
    pub scan_interval: Duration,
    /// Most directories the fallback scan visits per pass (the walk is bounded); 0 = no bound.
    pub scan_max_dirs: usize,
    /// Most inotify watches to use; 0 = as many as the kernel allows
    /// (`fs.inotify.max_user_watches`). Directories beyond it are scanned.
    pub max_watches: usize,
}

/// How a root (or part of it) is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Inotify,
    Scan,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Inotify => "inotify",
            Mode::Scan => "scan",
        }
    }
}

/// Counters of one root, as the collector exposes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RootStats {
    /// The root as configured (the `root` label).
    pub root: String,
    /// File creations, modifications, renames and deletions seen since start.
    pub modifications_total: u64,
    /// Unix seconds of the last one seen, if any.
    pub last_modification: Option<f64>,
    /// Directories watched by inotify.
    pub inotify_dirs: u64,
    /// Directories covered by the fallback scan.
    pub scan_dirs: u64,
}

/// The running watcher (a background thread); dropping it stops watching.
pub struct Watcher {
    shared: Arc<Shared>,
}

/// Why the watcher could not start at all (not the watch limit: that falls back to scanning).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("inotify: {0}")]
    Init(std::io::Error),
    #[error("exclude pattern {0:?}: {1}")]
    Exclude(String, glob::PatternError),
}

/// What the thread publishes and the collector reads.
#[derive(Debug, Default)]
struct Published {
    roots: Vec<RootStats>,
    ready: bool,
    recent: Vec<String>,
    recent_seen: HashSet<String>,
    recent_total: u64,
}

struct Shared {
    stop: AtomicBool,
    wake: sys::Wake,
    published: Mutex<Published>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Watcher {
    /// Starts watching; roots that do not exist are reported with zero counts. Returns at once:
    /// the watches are put in place by the watcher's thread (see [`Watcher::ready`]).
    pub fn start(config: WatchConfig) -> Result<Watcher, WatchError> {
        let exclude = Exclude::new(&config.exclude).map_err(|(g, e)| WatchError::Exclude(g, e))?;
        let inotify = sys::Inotify::new().map_err(WatchError::Init)?;
        let wake = sys::Wake::new().map_err(WatchError::Init)?;
        let roots: Vec<RootStats> =
            config.roots.iter().map(|r| RootStats { root: r.display().to_string(), ..Default::default() }).collect();
        let published = Published { roots: roots.clone(), ..Default::default() };
        let shared = Arc::new(Shared { stop: AtomicBool::new(false), wake, published: Mutex::new(published) });
        let worker = Worker::new(config, exclude, inotify, roots, shared.clone());
        std::thread::Builder::new().name("activity-watch".into()).spawn(move || worker.run()).map_err(WatchError::Init)?;
        Ok(Watcher { shared })
    }

    /// The per-root counters now.
    pub fn stats(&self) -> Vec<RootStats> {
        self.shared.lock().roots.clone()
    }

    /// Whether the initial watches (or scan entries) are all in place.
    pub fn ready(&self) -> bool {
        self.shared.lock().ready
    }

    /// Paths modified since the last call (relative to their root, at most `cap`), and how many
    /// modifications there were in all since then; for the event log's `files` and
    /// `modified_files`.
    pub fn take_recent(&self, cap: usize) -> (u64, Vec<String>) {
        let mut p = self.shared.lock();
        let total = std::mem::take(&mut p.recent_total);
        let mut paths = std::mem::take(&mut p.recent);
        p.recent_seen.clear();
        paths.truncate(cap);
        (total, paths)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.signal();
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    let modified = m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
    let changed = m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128;
    modified.max(changed)
}

/// A watched directory.
#[derive(Debug)]
struct Dir {
    root: usize,
    rel: PathBuf,
}

/// A directory covered by the scan: the coarse clock when it was last visited.
type ScanKey = (usize, PathBuf);

/// What happened when a directory was to be watched.
#[derive(Debug, PartialEq, Eq)]
enum Placed {
    /// Newly watched or scanned.
    New,
    /// Already watched or scanned under this path.
    Known,
    /// Gone or unreadable.
    Failed,
}

struct Root {
    /// As configured.
    configured: PathBuf,
    /// With symlinks resolved when it was attached (`~/projects` may be a link to another disk):
    /// what the watches are added on.
    path: PathBuf,
    present: bool,
}

/// The watcher thread's state.
struct Worker {
    shared: Arc<Shared>,
    inotify: sys::Inotify,
    exclude: Exclude,
    roots: Vec<Root>,
    stats: Vec<RootStats>,
    max_watches: usize,
    scan_interval: Duration,
    scan_max_dirs: usize,
    watches: HashMap<i32, Dir>,
    scan: BTreeMap<ScanKey, i128>,
    scan_cursor: Option<ScanKey>,
    coalescer: Coalescer,
    limit_logged: bool,
}

impl Worker {
    fn new(config: WatchConfig, exclude: Exclude, inotify: sys::Inotify, stats: Vec<RootStats>, shared: Arc<Shared>) -> Worker {
        Worker {
            shared,
            inotify,
            exclude,
            roots: config.roots.into_iter().map(|path| Root { configured: path.clone(), path, present: false }).collect(),
            stats,
            max_watches: config.max_watches,
            scan_interval: config.scan_interval.max(Duration::from_millis(10)),
            scan_max_dirs: if config.scan_max_dirs == 0 { usize::MAX } else { config.scan_max_dirs },
            watches: HashMap::new(),
            scan: BTreeMap::new(),
            scan_cursor: None,
            coalescer: Coalescer::new(COALESCE_WINDOW),
            limit_logged: false,
        }
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    fn run(mut self) {
        let started = Instant::now();
        self.attach_roots();
        let (watched, scanned) = (self.watches.len(), self.scan.len());
        tracing::info!(
            roots = self.roots.len(),
            inotify_dirs = watched,
            scan_dirs = scanned,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "activity: watches in place"
        );
        self.publish();
        let mut buf = vec![0u8; READ_BUF];
        let mut next_scan = Instant::now() + self.scan_interval;
        while !self.stopping() {
            let now = Instant::now();
            let until = self.coalescer.next_due().map_or(next_scan, |d| d.min(next_scan));
            let ready = sys::poll(&[self.inotify.raw(), self.shared.wake.raw()], Some(until.saturating_duration_since(now)));
            if self.stopping() {
                break;
            }
            if ready[0] {
                self.read_events(&mut buf);
            }
            let now = Instant::now();
            let due = self.coalescer.due(now);
            self.count(due);
            if now >= next_scan {
                self.recheck_roots();
                self.scan_pass();
                next_scan = Instant::now() + self.scan_interval;
            }
            self.publish();
        }
    }

    fn publish(&self) {
        let mut p = self.shared.lock();
        p.roots.clone_from(&self.stats);
        p.ready = true;
    }

    fn count(&mut self, counted: Vec<Counted>) {
        if counted.is_empty() {
            return;
        }
        let mut p = self.shared.lock();
        for c in counted {
            let s = &mut self.stats[c.root];
            s.modifications_total += 1;
            s.last_modification = Some(s.last_modification.map_or(c.wall, |l| l.max(c.wall)));
            p.recent_total += 1;
            if p.recent.len() < RECENT_MAX {
                let rel = c.rel.to_string_lossy().into_owned();
                if p.recent_seen.insert(rel.clone()) {
                    p.recent.push(rel);
                }
            }
        }
    }

    fn note(&mut self, root: usize, rel: PathBuf, change: Change) {
        self.coalescer.note((root, rel), change, Instant::now(), unix_now());
    }

    // --- roots -------------------------------------------------------------------------------

    /// Starts watching a root if it is a directory (through symlinks); says whether it is.
    fn attach_root(&mut self, root: usize) -> bool {
        let r = &mut self.roots[root];
        if !r.configured.is_dir() {
            return false;
        }
        r.path = std::fs::canonicalize(&r.configured).unwrap_or_else(|_| r.configured.clone());
        r.present = true;
        self.add_tree(root, PathBuf::new(), false);
        true
    }

    fn attach_roots(&mut self) {
        for i in 0..self.roots.len() {
            if !self.attach_root(i) {
                tracing::info!(root = %self.roots[i].configured.display(), "activity: root does not exist (yet); looked for again every scan interval");
            }
        }
    }

    fn recheck_roots(&mut self) {
        for i in 0..self.roots.len() {
            if !self.roots[i].present && self.attach_root(i) {
                tracing::info!(root = %self.roots[i].configured.display(), "activity: root appeared; watching it");
            }
        }
    }

    /// The root itself was deleted or moved away: drop everything under it until it reappears.
    fn detach_root(&mut self, root: usize) {
        tracing::info!(root = %self.roots[root].configured.display(), "activity: root went away; looked for again every scan interval");
        self.roots[root].present = false;
        self.drop_subtree(root, Path::new(""), true);
    }

    // --- placing watches -------------------------------------------------------------------------

    /// Watches (or scans, past the limit) the directory `rel` and everything below it that is not
    /// excluded. With `created`, every entry found counts as created: the directory is new and
    /// whatever is in it was created before its watch landed (`mkdir -p a/b && touch a/b/f`).
    /// Returns whether the top directory was new to the watcher.
    fn add_tree(&mut self, root: usize, rel: PathBuf, created: bool) -> bool {
        let mut stack = vec![rel];
        let mut top_new = None;
        while let Some(rel) = stack.pop() {
            if self.stopping() {
                break;
            }
            let abs = self.roots[root].path.join(&rel);
            let placed = self.place(root, &rel, &abs);
            top_new.get_or_insert(placed == Placed::New);
            if placed != Placed::New {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&abs) else { continue };
            for entry in entries.flatten() {
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let child = rel.join(entry.file_name());
                if self.exclude.excludes(&child, is_dir) {
                    continue;
                }
                if created {
                    self.note(root, child.clone(), Change::Created);
                }
                if is_dir {
                    stack.push(child);
                }
            }
        }
        top_new.unwrap_or(false)
    }

    /// Puts one directory under an inotify watch, or in the scan past the limit.
    fn place(&mut self, root: usize, rel: &Path, abs: &Path) -> Placed {
        if self.max_watches == 0 || self.watches.len() < self.max_watches {
            match self.inotify.add(abs) {
                Ok(wd) => return self.watched(wd, root, rel),
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {}
                Err(e) => {
                    tracing::debug!(dir = %abs.display(), err = %e, "activity: cannot watch directory");
                    return Placed::Failed;
                }
            }
        }
        self.log_limit_once();
        let key = (root, rel.to_path_buf());
        if self.scan.contains_key(&key) {
            return Placed::Known;
        }
        self.scan.insert(key, sys::coarse_now_ns());
        self.stats[root].scan_dirs += 1;
        Placed::New
    }

    fn watched(&mut self, wd: i32, root: usize, rel: &Path) -> Placed {
        if let Some(dir) = self.watches.get_mut(&wd) {
            // Also Known when the inode is already watched above this path: a bind mount looping
            // back into the tree, not to be followed.
            if dir.root == root && rel.starts_with(&dir.rel) {
                return Placed::Known;
            }
            // The same inode under another path (it was moved while we were not looking).
            self.stats[dir.root].inotify_dirs -= 1;
            self.stats[root].inotify_dirs += 1;
            *dir = Dir { root, rel: rel.to_path_buf() };
            return Placed::New;
        }
        self.watches.insert(wd, Dir { root, rel: rel.to_path_buf() });
        self.stats[root].inotify_dirs += 1;
        Placed::New
    }

    fn log_limit_once(&mut self) {
        if !self.limit_logged {
            self.limit_logged = true;
            let every = format!("{:?}", self.scan_interval);
            tracing::warn!(
                inotify_dirs = self.watches.len(),
                max_watches = self.max_watches,
                scan_interval = %every,
                scan_max_dirs = self.scan_max_dirs,
                "activity: inotify watch limit reached (max_watches or fs.inotify.max_user_watches); the remaining directories are covered by a periodic mtime scan"
            );
        }
    }

    /// Forgets the scan entries and (with `watches`) the watches of `rel` and everything below it
    /// (moved out, deleted or the root gone). A deleted directory's watches go by themselves
    /// (IN_IGNORED), which spares a pass over all watches per deleted directory.
    fn drop_subtree(&mut self, root: usize, rel: &Path, watches: bool) {
        let gone: Vec<i32> = if !watches {
            Vec::new()
        } else {
            self.watches.iter().filter(|(_, d)| d.root == root && d.rel.starts_with(rel)).map(|(wd, _)| *wd).collect()
        };
        for wd in gone {
            self.inotify.remove(wd);
            self.watches.remove(&wd);
            self.stats[root].inotify_dirs -= 1;
        }
        let scanned: Vec<ScanKey> = self
            .scan
            .range((root, rel.to_path_buf())..)
            .take_while(|(k, _)| k.0 == root && k.1.starts_with(rel))
            .map(|(k, _)| k.clone())
            .collect();
        for key in scanned {
            self.scan.remove(&key);
            self.stats[root].scan_dirs -= 1;
        }
    }

    // --- events ------------------------------------------------------------------------------

    /// Handles every queued event, a batch (up to [`MAX_BATCH`] bytes) at a time. Renames are
    /// paired by cookie within a batch.
    fn read_events(&mut self, buf: &mut [u8]) {
        let mut overflowed = false;
        let mut data = Vec::new();
        loop {
            self.read_batch(buf, &mut data);
            if data.is_empty() {
                break;
            }
            let events = sys::parse(&data);
            let moved_to: HashSet<u32> =
                events.iter().filter(|e| e.mask & libc::IN_MOVED_TO != 0 && self.seen(e)).map(|e| e.cookie).collect();
            for event in &events {
                if event.mask & libc::IN_Q_OVERFLOW != 0 {
                    overflowed = true;
                    continue;
                }
                let paired = event.mask & libc::IN_MOVED_FROM != 0 && moved_to.contains(&event.cookie);
                self.handle(event, paired);
            }
        }
        if overflowed {
            self.overflow();
        }
    }

    /// Reads what is queued into `data`. The kernel queues a rename's IN_MOVED_FROM and
    /// IN_MOVED_TO one after the other, so a read can fall between them: when the queue ends with
    /// an IN_MOVED_FROM, its pair is waited for briefly, once.
    fn read_batch(&self, buf: &mut [u8], data: &mut Vec<u8>) {
        data.clear();
        let mut waited = false;
        while data.len() < MAX_BATCH {
            match self.inotify.read(buf) {
                Ok(0) => {
                    let ends_with_move = sys::parse(data).last().is_some_and(|e| e.mask & libc::IN_MOVED_FROM != 0);
                    if waited || !ends_with_move {
                        break;
                    }
                    waited = true;
                    sys::poll(&[self.inotify.raw()], Some(MOVE_PAIR_WAIT));
                }
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) => {
                    tracing::warn!(err = %e, "activity: reading inotify events failed");
                    break;
                }
            }
        }
    }

    /// Whether an event about an entry is in a watched directory and not excluded.
    fn seen(&self, event: &sys::Event<'_>) -> bool {
        let (Some(dir), Some(name)) = (self.watches.get(&event.wd), event.name) else { return false };
        !self.exclude.excludes(&dir.rel.join(name), event.mask & libc::IN_ISDIR != 0)
    }

    fn handle(&mut self, event: &sys::Event<'_>, paired: bool) {
        let Some(dir) = self.watches.get(&event.wd) else { return };
        let (root, dir_rel) = (dir.root, dir.rel.clone());
        if event.mask & libc::IN_IGNORED != 0 {
            self.watches.remove(&event.wd);
            self.stats[root].inotify_dirs -= 1;
            return;
        }
        if event.mask & (libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
            if dir_rel.as_os_str().is_empty() {
                self.detach_root(root);
            }
            return;
        }
        let Some(name) = event.name else { return };
        let rel = dir_rel.join(name);
        let is_dir = event.mask & libc::IN_ISDIR != 0;
        if self.exclude.excludes(&rel, is_dir) {
            return;
        }
        let m = event.mask;
        if m & libc::IN_CREATE != 0 {
            self.note(root, rel.clone(), Change::Created);
            if is_dir {
                self.add_tree(root, rel, true);
            }
        } else if m & libc::IN_MOVED_TO != 0 {
            self.note(root, rel.clone(), Change::Created);
            if is_dir {
                self.add_tree(root, rel, false);
            }
        } else if m & (libc::IN_MOVED_FROM | libc::IN_DELETE) != 0 {
            self.note(root, rel.clone(), if paired { Change::RenamedAway } else { Change::Removed });
            if is_dir {
                self.drop_subtree(root, &rel, m & libc::IN_MOVED_FROM != 0);
            }
        } else if m & (libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_CLOSE_WRITE) != 0 {
            self.note(root, rel, Change::Written);
        }
    }

    /// The kernel dropped events: count it as activity in every watched root and put the watches
    /// back in line with the tree (new directories missed, deleted ones whose IN_IGNORED was lost).
    fn overflow(&mut self) {
        tracing::warn!("activity: inotify event queue overflowed; counted as activity, re-syncing the watches");
        let now = unix_now();
        let mut p = self.shared.lock();
        for (_, stats) in self.roots.iter().zip(&mut self.stats).filter(|(r, _)| r.present) {
            stats.modifications_total += 1;
            stats.last_modification = Some(now);
            p.recent_total += 1;
        }
        drop(p);
        let old = std::mem::take(&mut self.watches);
        self.scan.clear();
        for s in &mut self.stats {
            s.inotify_dirs = 0;
            s.scan_dirs = 0;
        }
        for i in 0..self.roots.len() {
            if self.roots[i].present && !self.attach_root(i) {
                self.roots[i].present = false;
            }
        }
        for wd in old.keys().filter(|wd| !self.watches.contains_key(wd)) {
            self.inotify.remove(*wd);
        }
    }

    // --- the fallback scan ---------------------------------------------------------------------

    /// Visits up to `scan_max_dirs` scanned directories, continuing where the last pass stopped.
    fn scan_pass(&mut self) {
        if self.scan.is_empty() {
            return;
        }
        let budget = self.scan_max_dirs.min(self.scan.len());
        let start = self.scan_cursor.take();
        let after = match &start {
            Some(k) => (Bound::Excluded(k.clone()), Bound::Unbounded),
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        let mut keys: Vec<ScanKey> = self.scan.range(after).take(budget).map(|(k, _)| k.clone()).collect();
        if let Some(start) = start.as_ref().filter(|_| keys.len() < budget) {
            let more = budget - keys.len();
            keys.extend(self.scan.keys().take_while(|k| *k <= start).take(more).cloned());
        }
        self.scan_cursor = keys.last().cloned();
        for key in keys {
            if self.stopping() {
                return;
            }
            self.visit(key);
        }
    }

    /// Looks for changes in one scanned directory since its last visit.
    fn visit(&mut self, key: ScanKey) {
        let Some(&since) = self.scan.get(&key) else { return };
        let (root, rel) = key;
        let abs = self.roots[root].path.join(&rel);
        let visited_at = sys::coarse_now_ns();
        let entries = match std::fs::read_dir(&abs) {
            Ok(e) => e,
            Err(_) => {
                if rel.as_os_str().is_empty() {
                    self.detach_root(root);
                } else if self.scan.remove(&(root, rel)).is_some() {
                    self.stats[root].scan_dirs -= 1;
                }
                return;
            }
        };
        let mut changed = false;
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let child = rel.join(entry.file_name());
            if self.exclude.excludes(&child, is_dir) {
                continue;
            }
            if is_dir {
                if !self.scan.contains_key(&(root, child.clone())) && self.add_tree(root, child.clone(), true) {
                    self.note(root, child, Change::Created);
                    changed = true;
                }
            } else if entry.metadata().is_ok_and(|m| mtime_ns(&m) >= since) {
                self.note(root, child, Change::Written);
                changed = true;
            }
        }
        let dir_changed =
            std::fs::symlink_metadata(&abs).is_ok_and(|m| m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128 >= since);
        if dir_changed && !changed {
            let what = if rel.as_os_str().is_empty() { PathBuf::from(".") } else { rel.clone() };
            self.note(root, what, Change::Written);
        }
        if let Some(at) = self.scan.get_mut(&(root, rel)) {
            *at = visited_at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(root: &Path, max_watches: usize) -> WatchConfig {
        WatchConfig {
            roots: vec![root.to_path_buf()],
            exclude: vec![".git/".into()],
            scan_interval: Duration::from_millis(100),
            scan_max_dirs: 0,
            max_watches,
        }
    }

    fn wait(what: &str, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn invalid_exclude_is_an_error() {
        let mut c = config(Path::new("/nonexistent"), 0);
        c.exclude = vec!["[".into()];
        assert!(matches!(Watcher::start(c), Err(WatchError::Exclude(..))));
    }

    #[test]
    fn a_missing_root_is_picked_up_when_it_appears() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("later");
        let w = Watcher::start(config(&root, 0)).unwrap();
        wait("ready", || w.ready());
        assert_eq!(w.stats(), [RootStats { root: root.display().to_string(), ..Default::default() }]);
        std::fs::create_dir_all(root.join("sub")).unwrap();
        wait("the root's watches", || w.stats()[0].inotify_dirs == 2);
        std::fs::write(root.join("sub/f"), "x").unwrap();
        wait("the file", || w.stats()[0].modifications_total == 1);
        std::fs::remove_dir_all(&root).unwrap();
        wait("the root dropped", || w.stats()[0].inotify_dirs == 0);
    }

    #[test]
    fn a_symlinked_root_is_followed() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("disk/projects/app")).unwrap();
        let root = tmp.path().join("projects");
        std::os::unix::fs::symlink(tmp.path().join("disk/projects"), &root).unwrap();
        let w = Watcher::start(config(&root, 0)).unwrap();
        wait("ready", || w.ready());
        assert_eq!((w.stats()[0].root.as_str(), w.stats()[0].inotify_dirs), (root.to_str().unwrap(), 2));
        std::fs::write(root.join("app/main.rs"), "x").unwrap();
        wait("the file", || w.stats()[0].modifications_total == 1);
        assert_eq!(w.take_recent(5), (1, vec!["app/main.rs".to_string()]));
    }

    #[test]
    fn an_overflow_counts_as_activity_and_resyncs_the_watches() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("gone/x")).unwrap();
        let shared = Arc::new(Shared { stop: AtomicBool::new(false), wake: sys::Wake::new().unwrap(), published: Mutex::default() });
        let inotify = sys::Inotify::new().unwrap();
        let mut w = Worker::new(config(root, 0), Exclude::default(), inotify, vec![RootStats::default()], shared.clone());
        assert!(w.attach_root(0));
        assert_eq!(w.stats[0].inotify_dirs, 5);
        // Changes whose events are never read, as if the queue had overflowed.
        std::fs::remove_dir_all(root.join("gone")).unwrap();
        std::fs::create_dir_all(root.join("new/y")).unwrap();
        w.overflow();
        let mut dirs: Vec<String> = w.watches.values().map(|d| d.rel.display().to_string()).collect();
        dirs.sort();
        assert_eq!(dirs, ["", "a", "a/b", "new", "new/y"]);
        assert_eq!((w.stats[0].inotify_dirs, w.stats[0].modifications_total), (5, 1));
        assert_eq!(shared.lock().recent_total, 1);
    }
}
