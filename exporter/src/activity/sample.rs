//! One activity sample: the host's CPU busy ratio since the previous sample, the configured
//! users' processes (counts, the top five by CPU, busy processes) and their login sessions from
//! utmp, each record cross-checked against the live processes. Everything is read through the
//! injected procfs and rootfs; the sampler keeps the previous CPU counters between samples.

use super::procfs::{self, PidStat};
use super::utmp;
use crate::paths::Paths;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A process counts as using CPU (for `busy_processes` and `active_processes`) from this share
/// of one CPU over the interval.
pub const BUSY_PROCESS_RATIO: f64 = 0.01;
/// How many process names `activity_top_process_cpu_ratio` reports.
pub const TOP: usize = 5;

/// What one sample saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Host CPU busy ratio (0..1) since the previous sample; 0 for the first.
    pub cpu_busy_ratio: f64,
    /// Per configured user: processes (every configured user present, 0 included).
    pub user_processes: BTreeMap<String, u64>,
    /// Per configured user: live login sessions.
    pub user_sessions: BTreeMap<String, u64>,
    /// Live SSH sessions of the configured users.
    pub ssh_sessions: u64,
    /// The users' process names using most CPU since the previous sample, in CPUs (1 = one
    /// CPU's worth), at most [`TOP`], highest first.
    pub top: Vec<(String, f64)>,
    /// Names of the users' processes that used CPU (at least [`BUSY_PROCESS_RATIO`]).
    pub active_processes: Vec<String>,
}

impl Sample {
    pub fn process_count(&self) -> u64 {
        self.user_processes.values().sum()
    }
}

/// A live process as the sampler saw it.
#[derive(Debug, Clone)]
struct Proc {
    stat: PidStat,
    uid: Option<u32>,
}

/// Samples over and over, keeping the counters of the previous sample.
pub struct Sampler {
    paths: Paths,
    users: Vec<String>,
    utmp: PathBuf,
    prev: Option<Prev>,
    clock_ticks: f64,
}

struct Prev {
    at: Instant,
    cpu: (u64, u64),
    ticks: HashMap<(i32, u64), u64>,
}

impl Sampler {
    /// `users` empty means every regular user (uid 1000 and up) of `/etc/passwd` under rootfs.
    pub fn new(paths: &Paths, users: &[String], utmp_path: &Path) -> Sampler {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Sampler {
            paths: paths.clone(),
            users: users.to_vec(),
            utmp: paths.root(&utmp_path.to_string_lossy()),
            prev: None,
            clock_ticks: if hz > 0 { hz as f64 } else { 100.0 },
        }
    }

    /// The users that count now (name → uid when known), from the config or `/etc/passwd`.
    pub fn users(&self) -> BTreeMap<String, Option<u32>> {
        let passwd = crate::collector::read_small(&self.paths.root("/etc/passwd")).map(|t| procfs::passwd(&t)).unwrap_or_default();
        if self.users.is_empty() {
            return passwd.into_iter().filter(|u| procfs::regular_uid(u.uid)).map(|u| (u.name, Some(u.uid))).collect();
        }
        self.users.iter().map(|name| (name.clone(), passwd.iter().find(|u| &u.name == name).map(|u| u.uid))).collect()
    }

    /// Takes a sample now.
    pub fn sample(&mut self) -> Sample {
        let users = self.users();
        let now = Instant::now();
        let cpu = crate::collector::read_small(&self.paths.proc("stat")).ok().and_then(|t| procfs::host_cpu(&t));
        // Without users there is nothing to attribute processes or sessions to: /proc/stat only.
        let procs = if users.is_empty() { HashMap::new() } else { self.processes() };
        let by_uid: HashMap<u32, &str> = users.iter().filter_map(|(n, uid)| uid.map(|u| (u, n.as_str()))).collect();
        let mut s = Sample {
            user_processes: users.keys().map(|u| (u.clone(), 0)).collect(),
            user_sessions: users.keys().map(|u| (u.clone(), 0)).collect(),
            ..Sample::default()
        };
        let mut ticks = HashMap::new();
        let mut per_comm: HashMap<&str, f64> = HashMap::new();
        let elapsed = self.prev.as_ref().map(|p| now.duration_since(p.at).as_secs_f64()).unwrap_or(0.0);
        for (pid, p) in &procs {
            let key = (*pid, p.stat.start);
            ticks.insert(key, p.stat.ticks);
            let Some(user) = p.uid.and_then(|u| by_uid.get(&u)) else { continue };
            *s.user_processes.entry(user.to_string()).or_default() += 1;
            let Some(prev) = &self.prev else { continue };
            if elapsed <= 0.0 {
                continue;
            }
            let used = p.stat.ticks.saturating_sub(prev.ticks.get(&key).copied().unwrap_or(0));
            *per_comm.entry(p.stat.comm.as_str()).or_default() += used as f64 / self.clock_ticks / elapsed;
        }
        let mut top: Vec<(String, f64)> = per_comm.into_iter().map(|(c, r)| (c.to_string(), r)).collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        s.active_processes = top.iter().filter(|(_, r)| *r >= BUSY_PROCESS_RATIO).map(|(c, _)| c.clone()).collect();
        top.truncate(TOP);
        s.top = top;
        if let (Some(prev), Some(cpu)) = (&self.prev, cpu) {
            s.cpu_busy_ratio = busy_ratio(prev.cpu, cpu);
        }
        self.count_sessions(&procs, &mut s);
        self.prev = cpu.map(|cpu| Prev { at: now, cpu, ticks });
        s
    }

    /// Every process in procfs (those that vanish while being read are skipped).
    fn processes(&self) -> HashMap<i32, Proc> {
        let mut out = HashMap::new();
        let Ok(dir) = std::fs::read_dir(&self.paths.procfs) else { return out };
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let base = entry.path();
            let Some(stat) = crate::collector::read_small(&base.join("stat")).ok().and_then(|t| procfs::pid_stat(&t)) else { continue };
            let uid = crate::collector::read_small(&base.join("status")).ok().and_then(|t| procfs::status_uid(&t));
            out.insert(pid, Proc { stat, uid });
        }
        out
    }

    /// utmp's USER_PROCESS records of the users whose process is alive (a stale record of a
    /// session that died without logging out does not count); an SSH one when that process or
    /// its parent is sshd. Plus sshd sessions without a terminal, which utmp never records.
    fn count_sessions(&self, procs: &HashMap<i32, Proc>, s: &mut Sample) {
        if s.user_sessions.is_empty() {
            return;
        }
        let records = match std::fs::read(&self.utmp) {
            Ok(bytes) => utmp::parse(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::debug!(path = %self.utmp.display(), err = %e, "cannot read utmp");
                Vec::new()
            }
        };
        let sshd = |pid: i32| procs.get(&pid).is_some_and(|p| procfs::is_sshd(&p.stat.comm));
        let mut counted = HashSet::new();
        for r in records {
            let Some(n) = s.user_sessions.get_mut(&r.user) else { continue };
            let Some(p) = procs.get(&r.pid) else { continue };
            if !counted.insert(r.pid) {
                continue;
            }
            *n += 1;
            if sshd(r.pid) || sshd(p.stat.ppid) {
                s.ssh_sessions += 1;
            }
        }
        for (pid, p) in procs {
            if !procfs::is_sshd(&p.stat.comm) || counted.contains(pid) {
                continue;
            }
            let Ok(cmdline) = std::fs::read(self.paths.procfs.join(pid.to_string()).join("cmdline")) else { continue };
            if let Some(n) = procfs::sshd_notty_user(&cmdline).and_then(|u| s.user_sessions.get_mut(&u)) {
                *n += 1;
                s.ssh_sessions += 1;
            }
        }
    }
}

/// Busy share of the CPU time that passed between two `/proc/stat` readings.
pub fn busy_ratio(prev: (u64, u64), now: (u64, u64)) -> f64 {
    let total = now.1.saturating_sub(prev.1);
    if total == 0 {
        return 0.0;
    }
    (now.0.saturating_sub(prev.0) as f64 / total as f64).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn busy_ratio_of_the_interval() {
        assert_eq!(busy_ratio((100, 1000), (150, 1100)), 0.5);
        assert_eq!(busy_ratio((100, 1000), (100, 1000)), 0.0);
        assert_eq!(busy_ratio((100, 1000), (90, 1100)), 0.0);
    }

    fn pid(root: &Path, pid: i32, comm: &str, ppid: i32, ticks: u64, uid: u32, cmdline: &str) {
        let dir = root.join("proc").join(pid.to_string());
        fs::create_dir_all(&dir).unwrap();
        let stat = format!("{pid} ({comm}) S {ppid} 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 {} 0 0\n", 1000 + pid);
        fs::write(dir.join("stat"), stat).unwrap();
        fs::write(dir.join("status"), format!("Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")).unwrap();
        fs::write(dir.join("cmdline"), cmdline).unwrap();
    }

    /// A recorded-style tree: alice (1000) with a shell under a pty sshd session, a notty sshd
    /// session and a busy cargo; bob (1001) with a stale utmp record; root's sshd.
    fn tree(root: &Path, cargo_ticks: u64, busy: u64) {
        fs::create_dir_all(root.join("root/etc")).unwrap();
        fs::create_dir_all(root.join("root/run")).unwrap();
        fs::create_dir_all(root.join("proc")).unwrap();
        fs::write(root.join("root/etc/passwd"), "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n").unwrap();
        fs::write(root.join("proc/stat"), format!("cpu  {busy} 0 0 {} 0 0 0 0 0 0\n", 10_000 - busy)).unwrap();
        pid(root, 1, "sshd", 0, 5, 0, "/usr/sbin/sshd\0-D\0");
        pid(root, 100, "sshd", 1, 1, 0, "sshd: alice [priv]\0");
        pid(root, 101, "sshd", 100, 1, 1000, "sshd: alice@pts/0\0");
        pid(root, 102, "bash", 101, 3, 1000, "-bash\0");
        pid(root, 103, "cargo", 102, cargo_ticks, 1000, "cargo\0build\0");
        pid(root, 110, "sshd", 1, 1, 1000, "sshd: alice@notty\0");
        let mut utmp = utmp::record(7, 101, "pts/0", "alice", "192.0.2.7", 1);
        utmp.extend(utmp::record(7, 4999, "pts/1", "bob", "192.0.2.8", 1)); // dead pid: stale
        utmp.extend(utmp::record(7, 1, "pts/2", "root", "192.0.2.9", 1)); // not a counted user
        fs::write(root.join("root/run/utmp"), utmp).unwrap();
    }

    #[test]
    fn sample_from_a_recorded_tree() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path(), 10, 1000);
        let mut sampler = Sampler::new(&Paths::under(dir.path()), &[], Path::new("/run/utmp"));
        let first = sampler.sample();
        assert_eq!(first.cpu_busy_ratio, 0.0);
        assert!(first.top.is_empty());
        assert_eq!(first.user_processes, BTreeMap::from([("alice".into(), 4), ("bob".into(), 0)]));
        assert_eq!(first.user_sessions, BTreeMap::from([("alice".into(), 2), ("bob".into(), 0)]));
        assert_eq!(first.ssh_sessions, 2);
        // cargo used 100 more ticks; the host 2000 busy ticks out of 10000 more.
        tree(dir.path(), 110, 3000);
        fs::write(dir.path().join("proc/stat"), "cpu  3000 0 0 17000 0 0 0 0 0 0\n").unwrap();
        let second = sampler.sample();
        assert!((second.cpu_busy_ratio - 0.2).abs() < 1e-9, "{second:?}");
        assert_eq!(second.top[0].0, "cargo");
        assert!(second.top[0].1 > 0.0);
        assert_eq!(second.active_processes, ["cargo"]);
        assert_eq!(second.process_count(), 4);
    }

    #[test]
    fn configured_users_and_absent_utmp() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path(), 10, 1000);
        fs::remove_file(dir.path().join("root/run/utmp")).unwrap();
        let mut sampler = Sampler::new(&Paths::under(dir.path()), &["root".into(), "ghost".into()], Path::new("/run/utmp"));
        let s = sampler.sample();
        assert_eq!(s.user_processes, BTreeMap::from([("ghost".into(), 0), ("root".into(), 2)]));
        assert_eq!(s.user_sessions, BTreeMap::from([("ghost".into(), 0), ("root".into(), 0)]));
        assert_eq!(s.ssh_sessions, 0);
    }

    #[test]
    fn no_users_means_no_process_scan() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path(), 10, 1000);
        fs::write(dir.path().join("root/etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        let mut sampler = Sampler::new(&Paths::under(dir.path()), &[], Path::new("/run/utmp"));
        sampler.sample();
        fs::write(dir.path().join("proc/stat"), "cpu  3000 0 0 17000 0 0 0 0 0 0\n").unwrap();
        let s = sampler.sample();
        assert!(s.user_processes.is_empty() && s.top.is_empty() && s.ssh_sessions == 0);
        assert!(s.cpu_busy_ratio > 0.0);
    }
}
