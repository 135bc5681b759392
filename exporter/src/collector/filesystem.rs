//! `filesystem`: size, free space and inodes of mounted filesystems (`node_filesystem_*`), as
//! node_exporter's filesystem collector, with its default mount-point and fs-type excludes.
//!
//! `statfs` runs on a worker thread, off the scrape thread, with a timeout per mount. A mount
//! whose `statfs` does not return in time (a hung NFS/CIFS server) is reported with
//! `node_filesystem_device_error=1` and skipped by later scrapes until that call returns, so a
//! scrape never hangs and at most one thread is ever parked on each stuck mount.

use super::{CollectError, Collector, Context, OpenFiles};
use crate::paths::Paths;
use fleetwatch_common::config::ConfigRegex;
use fleetwatch_common::expfmt::Family;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

pub struct Filesystem {
    paths: Paths,
    mount_points_exclude: ConfigRegex,
    fs_types_exclude: ConfigRegex,
    runner: StatfsRunner,
    files: OpenFiles,
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
            files: OpenFiles::default(),
            runner: StatfsRunner::new(statfs, ctx.shared.stuck_mounts.clone(), cfg.mount_timeout.0),
        }
    }

    fn mounts(&self) -> Result<Vec<Mount>, CollectError> {
        let text = self.files.read(&self.paths.proc("1/mounts")).or_else(|_| self.files.read(&self.paths.proc("mounts")))?;
        let mut seen = HashSet::new();
        Ok(parse_mounts(&text)
            .into_iter()
            .map(|m| Mount { mount_point: self.paths.strip_rootfs(&m.mount_point), ..m })
            .filter(|m| !self.mount_points_exclude.is_match(&m.mount_point) && !self.fs_types_exclude.is_match(&m.fstype))
            .filter(|m| seen.insert(m.clone()))
            .collect())
    }
}

impl Collector for Filesystem {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let mounts = self.mounts()?;
        let targets: Vec<PathBuf> = mounts.iter().map(|m| self.paths.root(&m.mount_point)).collect();
        let results = self.runner.stat_all(&targets);
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
                    tracing::warn!(mountpoint = %m.mount_point, path = %target.display(), "mount point is not responding to statfs; skipping it until it does");
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

/// Hand-over between the scrape thread and a statfs worker: once `abandoned` is set, the
/// worker's current call is the scrape's stuck mount, which the worker clears when it returns.
struct Handover {
    abandoned: bool,
}

type Sent = (usize, io::Result<FsStats>);

/// A batch of statfs calls for one scrape and where to send each result.
struct Batch {
    jobs: Vec<(usize, PathBuf)>,
    reply: mpsc::Sender<Sent>,
}

struct Worker {
    tx: mpsc::Sender<Batch>,
    handover: Arc<Mutex<Handover>>,
}

/// Runs statfs calls on one long-lived worker thread, waiting at most `timeout` for each. A
/// worker whose call hangs is abandoned and replaced; it exits when that call returns.
pub struct StatfsRunner {
    statfs: StatfsFn,
    stuck: Arc<StuckMounts>,
    timeout: Duration,
    worker: Mutex<Option<Worker>>,
}

impl StatfsRunner {
    pub fn new(statfs: StatfsFn, stuck: Arc<StuckMounts>, timeout: Duration) -> StatfsRunner {
        StatfsRunner { statfs, stuck, timeout, worker: Mutex::new(None) }
    }

    /// statfs for every target; mounts already stuck are skipped at once.
    pub fn stat_all(&self, targets: &[PathBuf]) -> Vec<Outcome> {
        let mut results: Vec<Option<Outcome>> = targets.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..targets.len()).filter(|&i| !self.stuck.contains(&targets[i])).collect();
        let mut attempts = 0;
        while !pending.is_empty() && attempts <= targets.len() {
            attempts += 1;
            let (reply, rx) = mpsc::channel();
            let Some(handover) = self.submit(Batch { jobs: pending.iter().map(|&i| (i, targets[i].clone())).collect(), reply }) else {
                break;
            };
            let mut rest = std::mem::take(&mut pending).into_iter().peekable();
            while let Some(&expected) = rest.peek() {
                match rx.recv_timeout(self.timeout) {
                    Ok((i, r)) => {
                        results[i] = Some(Outcome::Done(r));
                        rest.next();
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        let Ok(mut h) = handover.lock() else { break };
                        // The result may have arrived between the timeout and taking the lock.
                        if let Ok((i, r)) = rx.try_recv() {
                            results[i] = Some(Outcome::Done(r));
                            rest.next();
                            continue;
                        }
                        h.abandoned = true;
                        self.stuck.insert(&targets[expected]);
                        self.drop_worker();
                        rest.next();
                        pending = rest.collect();
                        break;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        // The worker died (its statfs panicked): start afresh next round.
                        self.drop_worker();
                        pending = rest.collect();
                        break;
                    }
                }
            }
        }
        results.into_iter().map(|r| r.unwrap_or(Outcome::Stuck)).collect()
    }

    /// Hands a batch to the worker (starting one if needed); returns its hand-over state.
    fn submit(&self, batch: Batch) -> Option<Arc<Mutex<Handover>>> {
        let mut guard = self.worker.lock().ok()?;
        if guard.is_none() {
            *guard = Some(self.spawn()?);
        }
        let w = guard.as_ref()?;
        match w.tx.send(batch) {
            Ok(()) => Some(w.handover.clone()),
            Err(mpsc::SendError(batch)) => {
                *guard = Some(self.spawn()?);
                let w = guard.as_ref()?;
                w.tx.send(batch).ok()?;
                Some(w.handover.clone())
            }
        }
    }

    fn drop_worker(&self) {
        if let Ok(mut g) = self.worker.lock() {
            *g = None;
        }
    }

    fn spawn(&self) -> Option<Worker> {
        let (tx, rx) = mpsc::channel::<Batch>();
        let handover = Arc::new(Mutex::new(Handover { abandoned: false }));
        let (statfs, stuck, h) = (self.statfs.clone(), self.stuck.clone(), handover.clone());
        let work = move || {
            for batch in rx {
                for (i, path) in batch.jobs {
                    let r = statfs(&path);
                    let Ok(h) = h.lock() else { return };
                    if h.abandoned {
                        stuck.remove(&path);
                        return;
                    }
                    let _ = batch.reply.send((i, r));
                }
            }
        };
        match std::thread::Builder::new().name("statfs".into()).stack_size(128 * 1024).spawn(work) {
            Ok(_) => Some(Worker { tx, handover }),
            Err(e) => {
                tracing::error!(err = %e, "cannot start statfs worker thread");
                None
            }
        }
    }
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
}
