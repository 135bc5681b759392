//! `filesystem`: size, free space and inodes of mounted filesystems (`node_filesystem_*`), as
//! node_exporter's filesystem collector, with its default mount-point and fs-type excludes.
//!
//! `statfs` runs on a worker thread, off the scrape thread, with a timeout per mount. A mount
//! whose `statfs` does not return in time (a hung NFS/CIFS server) is reported with
//! `node_filesystem_device_error=1` and skipped by later scrapes until that call returns, so a
//! scrape never hangs and at most one thread is ever parked on each stuck mount.

use super::{read_at_start, CollectError, Collector, Context};
use crate::paths::Paths;
use fleetwatch_common::config::ConfigRegex;
use fleetwatch_common::expfmt::Family;
use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One line of a mount table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fstype: String,
    pub read_only: bool,
}

/// Space and inode figures of one filesystem, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsStats {
    pub size: f64,
    pub free: f64,
    pub avail: f64,
    pub files: f64,
    pub files_free: f64,
}

/// The function that asks the kernel for a filesystem's figures (injected in tests).
pub type StatfsFn = Arc<dyn Fn(&Path) -> io::Result<FsStats> + Send + Sync>;

/// Mount points whose `statfs` is still blocked in a worker thread.
#[derive(Default)]
pub struct StuckMounts(Mutex<HashSet<PathBuf>>);

impl StuckMounts {
    pub fn contains(&self, p: &Path) -> bool {
        self.0.lock().map(|s| s.contains(p)).unwrap_or(false)
    }
    fn insert(&self, p: &Path) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(p.to_path_buf());
        }
    }
    fn remove(&self, p: &Path) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(p);
        }
    }
    pub fn len(&self) -> usize {
        self.0.lock().map(|s| s.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses a mount table (/proc/1/mounts format), decoding octal escapes such as `\040`.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let (device, mount_point, fstype, options) = (f.next()?, f.next()?, f.next()?, f.next()?);
            Some(Mount {
                device: unescape_octal(device),
                mount_point: unescape_octal(mount_point),
                fstype: fstype.to_string(),
                read_only: options.split(',').any(|o| o == "ro"),
            })
        })
        .collect()
}

fn unescape_octal(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The kernel's statfs, in node_exporter's units (blocks times the block size).
pub fn real_statfs(path: &Path) -> io::Result<FsStats> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `buf` a writable statfs struct.
    if unsafe { libc::statfs(c.as_ptr(), &mut buf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let bsize = buf.f_bsize as f64;
    Ok(FsStats {
        size: buf.f_blocks as f64 * bsize,
        free: buf.f_bfree as f64 * bsize,
        avail: buf.f_bavail as f64 * bsize,
        files: buf.f_files as f64,
        files_free: buf.f_ffree as f64,
    })
}

/// Filesystem types whose statfs is served from memory (no I/O, no server to wait for), so it is
/// called directly. Deliberately short: ZFS (a suspended pool blocks) and every network or FUSE
/// type go through the timeout-guarded worker.
const LOCAL_FS_TYPES: &[&str] = &["ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs", "vfat", "msdos", "exfat", "f2fs"];

pub struct Filesystem {
    paths: Paths,
    mount_points_exclude: ConfigRegex,
    fs_types_exclude: ConfigRegex,
    statfs: StatfsFn,
    runner: StatfsRunner,
    table: Mutex<Option<MountTable>>,
}

/// The mount table file, kept open, and the mounts last read from it (after the excludes).
struct MountTable {
    file: File,
    /// procfs mount tables can be polled for changes; a recorded file is always re-read.
    pollable: bool,
    mounts: Vec<Mount>,
}

/// True when the kernel reports that the mount table changed since we last polled it.
fn mount_table_changed(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLPRI, revents: 0 };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n != 0 && pfd.revents & (libc::POLLPRI | libc::POLLERR) != 0
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    Ok(Box::new(Filesystem::new(ctx, Arc::new(real_statfs))))
}

impl Filesystem {
    pub fn new(ctx: &Context, statfs: StatfsFn) -> Filesystem {
        let cfg = &ctx.config.filesystem;
        Filesystem {
            paths: ctx.paths.clone(),
            mount_points_exclude: cfg.mount_points_exclude.clone(),
            fs_types_exclude: cfg.fs_types_exclude.clone(),
            table: Mutex::new(None),
            statfs: statfs.clone(),
            runner: StatfsRunner::new(statfs, ctx.shared.stuck_mounts.clone(), cfg.mount_timeout.0),
        }
    }

    /// statfs for every mount: local disk and memory filesystems directly (their statfs answers
    /// from in-memory counters and never waits on I/O), everything else (network, FUSE, and any
    /// type not known to be local) on the guarded worker with the timeout.
    fn stat_all(&self, mounts: &[Mount], targets: &[PathBuf]) -> Vec<Outcome> {
        let guarded: Vec<usize> = (0..mounts.len()).filter(|&i| !LOCAL_FS_TYPES.contains(&mounts[i].fstype.as_str())).collect();
        let guarded_targets: Vec<PathBuf> = guarded.iter().map(|&i| targets[i].clone()).collect();
        let mut guarded_results = self.runner.stat_all(&guarded_targets).into_iter();
        (0..mounts.len())
            .map(|i| match guarded.contains(&i) {
                true => guarded_results.next().unwrap_or(Outcome::Stuck),
                false => Outcome::Done((self.statfs)(&targets[i])),
            })
            .collect()
    }

    /// The mounts to report: re-read only when the kernel says the table changed.
    fn mounts(&self) -> Result<Vec<Mount>, CollectError> {
        let mut table = self.table.lock().map_err(|_| CollectError::Other("mount table lock poisoned".into()))?;
        if let Some(t) = table.as_ref() {
            if t.pollable && !mount_table_changed(&t.file) {
                return Ok(t.mounts.clone());
            }
        }
        let (file, text) = match table.take() {
            Some(t) => match read_at_start(&t.file) {
                Ok(text) => (t.file, text),
                Err(_) => self.open_mount_table()?,
            },
            None => self.open_mount_table()?,
        };
        let pollable = file.metadata().map(|m| m.len() == 0).unwrap_or(false);
        let mut seen = HashSet::new();
        let mounts: Vec<Mount> = parse_mounts(&text)
            .into_iter()
            .map(|m| Mount { mount_point: self.paths.strip_rootfs(&m.mount_point), ..m })
            .filter(|m| !self.mount_points_exclude.is_match(&m.mount_point) && !self.fs_types_exclude.is_match(&m.fstype))
            .filter(|m| seen.insert(m.clone()))
            .collect();
        *table = Some(MountTable { file, pollable, mounts: mounts.clone() });
        Ok(mounts)
    }

    /// Opens /proc/1/mounts (the host's table even in a container), falling back to /proc/mounts.
    fn open_mount_table(&self) -> Result<(File, String), CollectError> {
        let mut last = None;
        for rel in ["1/mounts", "mounts"] {
            let path = self.paths.proc(rel);
            match File::open(&path).and_then(|f| read_at_start(&f).map(|t| (f, t))) {
                Ok(ok) => return Ok(ok),
                Err(source) => last = Some(CollectError::Io { path, source }),
            }
        }
        Err(last.unwrap_or_else(|| CollectError::Other("no mount table".into())))
    }
}

impl Collector for Filesystem {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let mounts = self.mounts()?;
        let targets: Vec<PathBuf> = mounts.iter().map(|m| self.paths.root(&m.mount_point)).collect();
        let results = self.stat_all(&mounts, &targets);
        let mut fams = FsFamilies::new();
        for ((m, target), result) in mounts.iter().zip(&targets).zip(results) {
            let labels = [("device", m.device.as_str()), ("fstype", m.fstype.as_str()), ("mountpoint", m.mount_point.as_str())];
            let stats = match result {
                Outcome::Done(Ok(s)) => Some(s),
                Outcome::Done(Err(e)) => {
                    tracing::debug!(mountpoint = %m.mount_point, err = %e, "statfs failed");
                    None
                }
                Outcome::Stuck => {
                    tracing::debug!(mountpoint = %m.mount_point, path = %target.display(), "mount point still not responding to statfs; skipped");
                    None
                }
            };
            fams.add(&labels, m.read_only, stats);
        }
        out.extend(fams.into_vec());
        Ok(())
    }
}

struct FsFamilies([Family; 7]);

impl FsFamilies {
    fn new() -> Self {
        FsFamilies([
            Family::gauge("node_filesystem_device_error", "Whether an error occurred while getting statistics for the given device."),
            Family::gauge("node_filesystem_readonly", "Filesystem read-only status."),
            Family::gauge("node_filesystem_size_bytes", "Filesystem size in bytes."),
            Family::gauge("node_filesystem_free_bytes", "Filesystem free space in bytes."),
            Family::gauge("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."),
            Family::gauge("node_filesystem_files", "Filesystem total file nodes."),
            Family::gauge("node_filesystem_files_free", "Filesystem total free file nodes."),
        ])
    }

    fn add(&mut self, labels: &[(&str, &str)], read_only: bool, stats: Option<FsStats>) {
        let f = &mut self.0;
        f[0].add(labels, if stats.is_some() { 0.0 } else { 1.0 });
        f[1].add(labels, if read_only { 1.0 } else { 0.0 });
        if let Some(s) = stats {
            for (family, v) in f[2..].iter_mut().zip([s.size, s.free, s.avail, s.files, s.files_free]) {
                family.add(labels, v);
            }
        }
    }

    fn into_vec(self) -> Vec<Family> {
        self.0.into()
    }
}

/// What became of one mount's statfs this scrape.
pub enum Outcome {
    Done(io::Result<FsStats>),
    Stuck,
}

/// One scrape's statfs calls as the worker runs them. The worker records which call is running
/// and since when, without waking the scrape; it wakes it once, when the batch is done. The
/// scrape wakes itself when the running call passes its deadline, marks that mount stuck and
/// sets `abandoned`; the worker, when its call finally returns, clears the mark and exits.
struct Batch {
    jobs: Vec<(usize, PathBuf)>,
    results: Vec<Option<io::Result<FsStats>>>,
    running: Option<(usize, Instant)>,
    done: bool,
    abandoned: bool,
}

type Shared = Arc<(Mutex<Batch>, Condvar)>;

/// Runs statfs calls on one long-lived worker thread, waiting at most `timeout` for each. A
/// worker whose call hangs is abandoned and replaced; it exits when that call returns.
pub struct StatfsRunner {
    statfs: StatfsFn,
    stuck: Arc<StuckMounts>,
    timeout: Duration,
    worker: Mutex<Option<mpsc::Sender<Shared>>>,
}

impl StatfsRunner {
    pub fn new(statfs: StatfsFn, stuck: Arc<StuckMounts>, timeout: Duration) -> StatfsRunner {
        StatfsRunner { statfs, stuck, timeout, worker: Mutex::new(None) }
    }

    /// statfs for every target; mounts already stuck are skipped at once.
    pub fn stat_all(&self, targets: &[PathBuf]) -> Vec<Outcome> {
        let mut results: Vec<Option<Outcome>> = targets.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..targets.len()).filter(|&i| !self.stuck.contains(&targets[i])).collect();
        while !pending.is_empty() {
            let batch = Arc::new((
                Mutex::new(Batch {
                    jobs: pending.iter().map(|&i| (i, targets[i].clone())).collect(),
                    results: targets.iter().map(|_| None).collect(),
                    running: None,
                    done: false,
                    abandoned: false,
                }),
                Condvar::new(),
            ));
            if !self.submit(batch.clone()) {
                break;
            }
            let stuck_at = self.wait(&batch);
            let Ok(mut b) = batch.0.lock() else { break };
            for (i, r) in b.results.iter_mut().enumerate() {
                if let Some(r) = r.take() {
                    results[i] = Some(Outcome::Done(r));
                }
            }
            pending = match stuck_at {
                Some(stuck) => pending.into_iter().filter(|&i| i != stuck && results[i].is_none()).collect(),
                None => vec![],
            };
        }
        results.into_iter().map(|r| r.unwrap_or(Outcome::Stuck)).collect()
    }

    /// Waits for the batch; returns the index of the call that hung, if one did.
    fn wait(&self, batch: &Shared) -> Option<usize> {
        let (lock, cv) = &**batch;
        let mut b = lock.lock().ok()?;
        loop {
            if b.done {
                return None;
            }
            let now = Instant::now();
            let wait_for = match b.running {
                Some((i, started)) if now >= started + self.timeout => {
                    b.abandoned = true;
                    let path = &b.jobs.iter().find(|(j, _)| *j == i)?.1;
                    tracing::warn!(path = %path.display(), timeout = ?self.timeout, "statfs did not return in time; reporting device_error=1 and skipping this mount until it answers");
                    self.stuck.insert(path);
                    self.drop_worker();
                    return Some(i);
                }
                Some((_, started)) => started + self.timeout - now,
                None => self.timeout,
            };
            b = cv.wait_timeout(b, wait_for).ok()?.0;
        }
    }

    /// Hands a batch to the worker, starting one if there is none or it has gone.
    fn submit(&self, batch: Shared) -> bool {
        let Ok(mut guard) = self.worker.lock() else { return false };
        if let Some(tx) = guard.as_ref() {
            if tx.send(batch.clone()).is_ok() {
                return true;
            }
        }
        *guard = self.spawn();
        guard.as_ref().is_some_and(|tx| tx.send(batch).is_ok())
    }

    fn drop_worker(&self) {
        if let Ok(mut g) = self.worker.lock() {
            *g = None;
        }
    }

    fn spawn(&self) -> Option<mpsc::Sender<Shared>> {
        let (tx, rx) = mpsc::channel::<Shared>();
        let (statfs, stuck) = (self.statfs.clone(), self.stuck.clone());
        let work = move || {
            for batch in rx {
                if !run_batch(&batch, &statfs, &stuck) {
                    return;
                }
            }
        };
        match std::thread::Builder::new().name("statfs".into()).stack_size(128 * 1024).spawn(work) {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::error!(err = %e, "cannot start statfs worker thread");
                None
            }
        }
    }
}

/// The worker's side of one batch; false when the scrape abandoned this worker.
fn run_batch(batch: &Shared, statfs: &StatfsFn, stuck: &StuckMounts) -> bool {
    let (lock, cv) = &**batch;
    let jobs = match lock.lock() {
        Ok(b) => b.jobs.clone(),
        Err(_) => return false,
    };
    for (i, path) in jobs {
        match lock.lock() {
            Ok(mut b) => b.running = Some((i, Instant::now())),
            Err(_) => return false,
        }
        let r = statfs(&path);
        let Ok(mut b) = lock.lock() else { return false };
        if b.abandoned {
            stuck.remove(&path);
            return false;
        }
        b.results[i] = Some(r);
        b.running = None;
    }
    if let Ok(mut b) = lock.lock() {
        b.done = true;
    }
    cv.notify_one();
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    #[test]
    fn parses_mount_table_with_escapes() {
        let text = "/dev/vda / ext4 rw,relatime 0 0\nserver:/x /mnt/my\\040share nfs4 ro,noatime 0 0\n";
        let m = parse_mounts(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], Mount { device: "/dev/vda".into(), mount_point: "/".into(), fstype: "ext4".into(), read_only: false });
        assert_eq!(m[1].mount_point, "/mnt/my share");
        assert!(m[1].read_only);
    }

    fn fixed(_: &Path) -> io::Result<FsStats> {
        Ok(FsStats { size: 1.0, free: 2.0, avail: 3.0, files: 4.0, files_free: 5.0 })
    }

    /// statfs that blocks on "/hung" until released, and counts its calls.
    fn blocking(release: Arc<Mutex<bool>>, calls: Arc<AtomicUsize>) -> StatfsFn {
        Arc::new(move |p: &Path| {
            calls.fetch_add(1, Ordering::SeqCst);
            if p == Path::new("/hung") {
                while !*release.lock().unwrap() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            fixed(p)
        })
    }

    #[test]
    fn stuck_mount_times_out_is_skipped_then_recovers() {
        let release = Arc::new(Mutex::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let statfs = blocking(release.clone(), calls.clone());
        let stuck = Arc::new(StuckMounts::default());
        let targets: Vec<PathBuf> = ["/a", "/hung", "/b"].iter().map(PathBuf::from).collect();
        let runner = StatfsRunner::new(statfs, stuck.clone(), Duration::from_millis(200));

        let t = Instant::now();
        let r = runner.stat_all(&targets);
        assert!(t.elapsed() < Duration::from_secs(2), "scrape waited {:?}", t.elapsed());
        assert!(matches!(r[0], Outcome::Done(Ok(_))));
        assert!(matches!(r[1], Outcome::Stuck));
        assert!(matches!(r[2], Outcome::Done(Ok(_))), "mounts after the stuck one are still read");
        assert!(stuck.contains(Path::new("/hung")));

        // While it is stuck, later scrapes skip it at once and start no new call on it.
        let calls_before = calls.load(Ordering::SeqCst);
        let t = Instant::now();
        let r = runner.stat_all(&targets);
        assert!(t.elapsed() < Duration::from_millis(150), "skipping took {:?}", t.elapsed());
        assert!(matches!(r[1], Outcome::Stuck));
        assert_eq!(calls.load(Ordering::SeqCst), calls_before + 2, "only /a and /b were asked");

        // Once the hung call returns, the mount is read again.
        *release.lock().unwrap() = true;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !stuck.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(stuck.is_empty());
        let r = runner.stat_all(&targets);
        assert!(r.iter().all(|o| matches!(o, Outcome::Done(Ok(_)))));
    }

    #[test]
    fn real_statfs_reads_root_and_fails_on_missing() {
        let s = real_statfs(Path::new("/")).unwrap();
        assert!(s.size > 0.0 && s.avail <= s.free && s.free <= s.size);
        assert!(real_statfs(Path::new("/definitely/not/here")).is_err());
    }

    /// Through the whole collector: a hung NFS mount costs one timeout, is reported with
    /// device_error=1, and the local filesystem next to it is still reported in full.
    #[test]
    fn collector_reports_hung_network_mount_and_keeps_the_rest() {
        use crate::collector::{Context, Shared};
        use crate::config::Config;
        use crate::paths::Paths;
        use fleetwatch_common::expfmt::{encode, Format};
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        std::fs::create_dir_all(paths.proc("1")).unwrap();
        std::fs::write(paths.proc("1/mounts"), "/dev/vda / ext4 rw 0 0\nnas:/x /mnt/hung nfs4 rw 0 0\n").unwrap();
        let mut config = Config::default();
        config.filesystem.mount_timeout = fleetwatch_common::duration::PromDuration(Duration::from_millis(200));
        let shared = Arc::new(Shared::default());
        let release = Arc::new(Mutex::new(false));
        let statfs: StatfsFn = {
            let release = release.clone();
            Arc::new(move |p: &Path| {
                if p.ends_with("mnt/hung") {
                    while !*release.lock().unwrap() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                fixed(p)
            })
        };
        let c = Filesystem::new(&Context { paths: &paths, config: &config, shared: &shared }, statfs);
        let scrape = || {
            let mut out = Vec::new();
            c.collect(&mut out).unwrap();
            encode(&out, Format::Text)
        };
        let t = Instant::now();
        let first = scrape();
        assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
        assert!(first.contains("node_filesystem_device_error{device=\"nas:/x\",fstype=\"nfs4\",mountpoint=\"/mnt/hung\"} 1"), "{first}");
        assert!(first.contains("node_filesystem_size_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 1"), "{first}");
        let t = Instant::now();
        let second = scrape();
        assert!(t.elapsed() < Duration::from_millis(150), "a stuck mount must not be waited for again");
        assert!(second.contains("mountpoint=\"/mnt/hung\"} 1"));
        *release.lock().unwrap() = true;
    }
}
