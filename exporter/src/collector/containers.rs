//! The `containers` collector: per-container CPU, memory, block I/O, pids and network figures
//! from the cgroup filesystem (v2, v1 or hybrid), with cAdvisor's metric names, types and labels
//! (`id` = cgroup path, `name`, `image`). Names and images come from the metadata cache
//! (`crate::containers::metadata`), which a background task fills; a scrape never waits for it.
//! Each container's files stay open across scrapes and are re-read with `pread` into one reused
//! buffer, so a container costs a handful of syscalls and no per-file allocation; counters that
//! move only on rare events are read only when they can have moved. A scrape's figures are kept
//! as rows, and its families are rendered from them while the response is written.

use super::{CollectError, Collector, Context};
use crate::containers::cgroup::{discover, Found, Layout, Runtime};
use crate::containers::metadata::{Meta, MetaMap, MetadataState, Refresher, Source};
use crate::containers::parse::{self, DeviceIo};
use crate::paths::Paths;
use fleetwatch_common::expfmt::{push_rendered_sample, Deferred, Family, MetricType};
use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The per-container scalar families, in output order: (name, help, type).
const SCALARS: [(&str, &str, bool); 18] = [
    ("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", true),
    ("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", true),
    ("container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", true),
    ("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", true),
    ("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", true),
    ("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", true),
    ("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", false),
    ("container_memory_working_set_bytes", "Current working set in bytes.", false),
    ("container_memory_rss", "Size of RSS in bytes.", false),
    ("container_memory_cache", "Number of bytes of page cache memory.", false),
    ("container_memory_swap", "Container swap usage in bytes.", false),
    ("container_memory_failcnt", "Number of memory usage hits limits.", true),
    ("container_oom_events_total", "Count of out of memory events observed for the container.", true),
    ("container_spec_memory_limit_bytes", "Memory limit for the container (0: none).", false),
    ("container_spec_cpu_quota", "CPU quota of the container (µs per period; absent: none).", false),
    ("container_spec_cpu_period", "CPU period of the container (µs).", false),
    ("container_spec_cpu_shares", "CPU share of the container.", false),
    ("container_processes", "Number of processes running inside the container.", false),
];

/// Indexes into `SCALARS` (and a container's values).
mod ix {
    pub const CPU: usize = 0;
    pub const USER: usize = 1;
    pub const SYSTEM: usize = 2;
    pub const PERIODS: usize = 3;
    pub const THROTTLED: usize = 4;
    pub const THROTTLED_SECS: usize = 5;
    pub const MEM: usize = 6;
    pub const WORKING_SET: usize = 7;
    pub const RSS: usize = 8;
    pub const CACHE: usize = 9;
    pub const SWAP: usize = 10;
    pub const FAILCNT: usize = 11;
    pub const OOM: usize = 12;
    pub const LIMIT: usize = 13;
    pub const QUOTA: usize = 14;
    pub const PERIOD: usize = 15;
    pub const SHARES: usize = 16;
    pub const PIDS: usize = 17;
}

type Values = [Option<f64>; SCALARS.len()];

/// The files read per container, by what they hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    CpuStat,
    CpuacctUsage,
    CpuacctStat,
    CpuMax,
    CfsQuota,
    CfsPeriod,
    Shares,
    MemUsage,
    MemStat,
    MemEvents,
    MemFailcnt,
    MemLimit,
    MemSwap,
    OomControl,
    Io,
    Pids,
    Procs,
}
const SLOTS: usize = Slot::Procs as usize + 1;

/// Which controller directory a v1 file lives in.
#[derive(Clone, Copy)]
enum Ctl {
    Cpu,
    Cpuacct,
    Memory,
    Blkio,
    Pids,
    Walk,
}

const V2_FILES: [(Slot, &str); 11] = [
    (Slot::CpuStat, "cpu.stat"),
    (Slot::CpuMax, "cpu.max"),
    (Slot::Shares, "cpu.weight"),
    (Slot::MemUsage, "memory.current"),
    (Slot::MemStat, "memory.stat"),
    (Slot::MemEvents, "memory.events"),
    (Slot::MemLimit, "memory.max"),
    (Slot::MemSwap, "memory.swap.current"),
    (Slot::Io, "io.stat"),
    (Slot::Pids, "pids.current"),
    (Slot::Procs, "cgroup.procs"),
];

const V1_FILES: [(Slot, Ctl, &str); 15] = [
    (Slot::CpuacctUsage, Ctl::Cpuacct, "cpuacct.usage"),
    (Slot::CpuacctStat, Ctl::Cpuacct, "cpuacct.stat"),
    (Slot::CpuStat, Ctl::Cpu, "cpu.stat"),
    (Slot::CfsQuota, Ctl::Cpu, "cpu.cfs_quota_us"),
    (Slot::CfsPeriod, Ctl::Cpu, "cpu.cfs_period_us"),
    (Slot::Shares, Ctl::Cpu, "cpu.shares"),
    (Slot::MemUsage, Ctl::Memory, "memory.usage_in_bytes"),
    (Slot::MemStat, Ctl::Memory, "memory.stat"),
    (Slot::MemFailcnt, Ctl::Memory, "memory.failcnt"),
    (Slot::MemLimit, Ctl::Memory, "memory.limit_in_bytes"),
    (Slot::MemSwap, Ctl::Memory, "memory.memsw.usage_in_bytes"),
    (Slot::OomControl, Ctl::Memory, "memory.oom_control"),
    (Slot::Io, Ctl::Blkio, "blkio.throttle.io_service_bytes"),
    (Slot::Pids, Ctl::Pids, "pids.current"),
    (Slot::Procs, Ctl::Walk, "cgroup.procs"),
];

/// One container's open files, kept while its cgroup exists, and what this scrape read from them.
struct Tracked {
    found: Found,
    files: [Option<File>; SLOTS],
    start_time: f64,
    /// The network namespace whose net/dev is reported (`None` inside: the host's, or none
    /// readable); `None`: not looked up yet. A container keeps its network namespace for its
    /// life, so it is looked up once (again only when its net/dev can no longer be read).
    net: Option<Option<String>>,
    /// Limits (memory limit, CPU quota, period, shares) and when they were last read.
    spec: [Option<f64>; 4],
    spec_read: Option<Instant>,
    /// This scrape's figures, block devices, and `inactive_file` (for the working set).
    values: Values,
    io: Vec<DeviceIo>,
    inactive: Option<u64>,
    /// The last `memory.failcnt` and OOM kill count read (see `Keep`).
    failcnt: Option<f64>,
    oom: Option<f64>,
    /// v1: the `cpuacct.usage` at which `cpuacct.stat` was last read, and what it said.
    cpu_stat_at: Option<f64>,
    user_system: (Option<f64>, Option<f64>),
}

/// How this scrape reads the containers' files.
#[derive(Clone, Copy)]
struct Plan {
    /// No OOM kill anywhere since the last scrape (`OomWatch`): every container's OOM count
    /// is taken from the last read.
    keep_oom: bool,
    /// `containers.limits_refresh`.
    limits_refresh: Duration,
}

const SPEC_SLOTS: [usize; 4] = [ix::LIMIT, ix::QUOTA, ix::PERIOD, ix::SHARES];

/// What a scrape keeps for the next: the layout, open files, device names, network namespaces,
/// the read buffer and each family's size last time.
#[derive(Default)]
struct State {
    layout: Option<Layout>,
    /// The containers of the last scrape, sorted by path.
    tracked: Vec<Tracked>,
    devices: HashMap<(u32, u32), String>,
    netns: HashMap<String, NetNs>,
    oom_watch: OomWatch,
    /// The host's network namespace, read once per scrape when a container's is looked up.
    host_netns: Option<Option<PathBuf>>,
    rows: Arc<Rows>,
    /// Counts scrapes, so that a network namespace is read once per scrape.
    scrape: u64,
    buf: Vec<u8>,
}

/// Whether any OOM kill happened since the last scrape. The kernel counts every OOM kill, global
/// or in a cgroup, in `/proc/vmstat`'s `oom_kill` in the same step as it counts it in the
/// victim's cgroups; while that count stands still, no container's OOM count moves, and the
/// containers' `memory.oom_control` need not be read (one read per scrape instead of one per
/// container).
#[derive(Default)]
struct OomWatch {
    last: Option<u64>,
    /// The count moved at the last scrape: read everything once more, in case a kill was
    /// counted in vmstat just before and in a cgroup just after that scrape's reads.
    moved: bool,
}

impl OomWatch {
    /// True when the containers' OOM counts can be kept from the last scrape.
    fn quiet(&mut self, paths: &Paths) -> bool {
        let now = super::read_small(&paths.proc("vmstat")).ok().and_then(|text| parse::keyed(&text, ["oom_kill"])[0]);
        let quiet = now.is_some() && now == self.last && !self.moved;
        self.moved = now != self.last;
        self.last = now;
        quiet
    }
}

/// One network namespace's net/dev, read once per scrape however many containers share it (the
/// containers of a pod, or of a `--network container:` group).
struct NetNs {
    file: File,
    read_in: u64,
    /// (interface, receive bytes, receive packets, transmit bytes, transmit packets).
    ifaces: Vec<(String, [u64; 4])>,
    /// Where this scrape's rows hold the interfaces (copied once, shared by its containers).
    in_rows: Range<usize>,
}

pub struct Containers {
    cgroup_root: PathBuf,
    paths: Paths,
    max_containers: usize,
    limits_refresh: Duration,
    systemd_services: bool,
    /// `container_label_<key>` names for the allow-listed label keys, in the same order.
    label_names: Vec<(String, String)>,
    socket: Option<PathBuf>,
    metadata: Arc<MetadataState>,
    state: Mutex<State>,
    now: fn() -> SystemTime,
    _refresher: Option<Refresher>,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    Ok(Box::new(Containers::new(ctx, SystemTime::now)))
}

/// `container_label_<key>` with every character outside [a-zA-Z0-9_] replaced by `_`.
pub fn label_name(key: &str) -> String {
    let clean: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    format!("container_label_{clean}")
}

impl Containers {
    /// The collector with an injected clock (tests pin `container_last_seen`).
    pub fn new(ctx: &Context, now: fn() -> SystemTime) -> Containers {
        let cfg = &ctx.config.containers;
        let metadata = ctx.shared.containers.clone();
        let socket = cfg.docker_socket.clone();
        let refresher = socket.as_ref().and_then(|s| {
            let source = Source {
                socket: s.clone(),
                interval: cfg.metadata_interval.0,
                timeout: cfg.metadata_timeout.0,
                labels: cfg.labels.clone(),
            };
            Refresher::start(source, metadata.clone())
        });
        let cgroup_root = ctx.paths.sys("fs/cgroup");
        let state = State { layout: Layout::detect(&cgroup_root), ..State::default() };
        Containers {
            cgroup_root,
            paths: ctx.paths.clone(),
            max_containers: cfg.max_containers,
            limits_refresh: cfg.limits_refresh.0,
            systemd_services: cfg.systemd_services,
            label_names: cfg.labels.iter().map(|k| (k.clone(), label_name(k))).collect(),
            socket,
            metadata,
            state: Mutex::new(state),
            now,
            _refresher: refresher,
        }
    }

    /// The name and image labels: from the API, else the short id (units: the unit name).
    fn identity<'a>(&self, found: &'a Found, meta: Option<&'a Meta>) -> (&'a str, &'a str) {
        match meta {
            Some(m) if !m.name.is_empty() => (&m.name, &m.image),
            Some(m) => (short(found.id()), &m.image),
            None if found.runtime == Runtime::Systemd => (found.id(), ""),
            None => (short(found.id()), ""),
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

impl Collector for Containers {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let mut guard = self.state.lock().map_err(|_| CollectError::Other("containers state poisoned".into()))?;
        let state = &mut *guard;
        if state.layout.is_none() {
            state.layout = Layout::detect(&self.cgroup_root);
        }
        let mut found = match state.layout.as_ref().and_then(|l| l.walk_root()) {
            Some(root) => discover(root, self.systemd_services),
            None => Vec::new(),
        };
        let socket_present = self.socket.as_ref().is_some_and(|s| s.exists());
        if found.is_empty() && !socket_present {
            state.tracked.clear();
            return Ok(());
        }
        if found.len() > self.max_containers {
            self.metadata.dropped.fetch_add((found.len() - self.max_containers) as u64, Ordering::Relaxed);
            found.truncate(self.max_containers);
        }
        if let Some(layout) = state.layout.as_ref() {
            state.tracked = track(layout, std::mem::take(&mut state.tracked), found);
            let plan = Plan { keep_oom: state.oom_watch.quiet(&self.paths), limits_refresh: self.limits_refresh };
            read_all(layout, &mut state.tracked, plan, &mut state.buf);
        }
        let meta = self.metadata.snapshot();
        state.scrape += 1;
        state.host_netns = None;
        let now = (self.now)().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        // The last scrape's rows, when its response is written (their memory is reused).
        let mut rows = Arc::get_mut(&mut state.rows).map(std::mem::take).unwrap_or_default();
        rows.clear(now);
        let mut unknown = false;
        for i in 0..state.tracked.len() {
            let f = &state.tracked[i].found;
            unknown |= f.runtime != Runtime::Systemd && !meta.contains_key(f.id());
            self.add_row(state, i, &meta, &mut rows);
        }
        if unknown && socket_present {
            self.metadata.request_refresh();
        }
        let scrape = state.scrape;
        state.netns.retain(|_, ns| ns.read_in == scrape);
        state.rows = Arc::new(rows);
        out.extend(Rows::families(&state.rows));
        if self.socket.is_some() {
            let up = if self.metadata.up() { 1.0 } else { 0.0 };
            out.push(Family::single(
                "fleetwatch_containers_metadata_up",
                "Whether the last read of container names and images from the Docker-compatible API succeeded.",
                MetricType::Gauge,
                up,
            ));
        }
        out.push(Family::single(
            "fleetwatch_containers_dropped_total",
            "Containers left out of a scrape because of containers.max_containers, summed over scrapes.",
            MetricType::Counter,
            self.metadata.dropped.load(Ordering::Relaxed) as f64,
        ));
        Ok(())
    }
}

/// This scrape's containers, in `found`'s (path) order: the ones already tracked keep their open
/// files, new ones are opened (a cgroup that vanished meanwhile is left out), gone ones closed.
fn track(layout: &Layout, old: Vec<Tracked>, found: Vec<Found>) -> Vec<Tracked> {
    let mut old = old.into_iter().peekable();
    let mut tracked = Vec::with_capacity(found.len());
    for f in found {
        while old.next_if(|t| t.found.path < f.path).is_some() {}
        match old.next_if(|t| t.found.path == f.path) {
            Some(t) => tracked.push(t),
            None => tracked.extend(open(layout, f)),
        }
    }
    tracked
}

/// Reads every container's files into its figures; drops the containers whose cgroup is gone.
fn read_all(layout: &Layout, tracked: &mut Vec<Tracked>, plan: Plan, buf: &mut Vec<u8>) {
    tracked.retain_mut(|t| {
        // Nothing readable through the open files: the cgroup was removed and made again (a
        // restart between two scrapes), or is gone. Open it again, once.
        if !read_one(layout, t, plan, buf) {
            let Some(mut fresh) = open(layout, t.found.clone()) else { return false };
            if !read_one(layout, &mut fresh, plan, buf) {
                return false;
            }
            *t = fresh;
        }
        finish_values(t);
        true
    });
}

/// Which of a container's rarely moving counters this scrape takes from the last one.
#[derive(Clone, Copy)]
struct Kept {
    failcnt: bool,
    oom: bool,
}

/// Prepares a container for this scrape's reads: limits refreshed when due, figures cleared.
fn begin(layout: &Layout, t: &mut Tracked, plan: Plan) -> Kept {
    let v2 = matches!(layout, Layout::V2 { .. });
    let refreshed = refresh_spec(layout, t, plan.limits_refresh);
    (t.values, t.inactive) = ([None; SCALARS.len()], None);
    t.io.clear();
    // v1's memory.failcnt counts the charges that failed at this cgroup's own limit: without a
    // limit it cannot move, so it is read with the limits (a limit set meanwhile is seen, and
    // failcnt read again, within `containers.limits_refresh`).
    Kept { failcnt: !v2 && !refreshed && t.spec[0] == Some(0.0) && t.failcnt.is_some(), oom: !v2 && plan.keep_oom && t.oom.is_some() }
}

/// Reads all of one container's files; false when none of them could be read.
fn read_one(layout: &Layout, t: &mut Tracked, plan: Plan, buf: &mut Vec<u8>) -> bool {
    let v2 = matches!(layout, Layout::V2 { .. });
    let kept = begin(layout, t, plan);
    let mut readable = false;
    for slot in if v2 { &V2_READ_ORDER[..] } else { &V1_READ_ORDER[..] } {
        readable |= read_kept(t, *slot, kept, v2, buf);
    }
    (t.failcnt, t.oom) = (t.values[ix::FAILCNT], t.values[ix::OOM]);
    readable
}

/// Reads one of a container's files, or takes its figures from the last read when they cannot
/// have moved; true when it read the file.
fn read_kept(t: &mut Tracked, slot: Slot, kept: Kept, v2: bool, buf: &mut Vec<u8>) -> bool {
    match slot {
        Slot::MemFailcnt if kept.failcnt => {
            t.values[ix::FAILCNT] = t.failcnt;
            false
        }
        Slot::OomControl if kept.oom => {
            t.values[ix::OOM] = t.oom;
            false
        }
        // cpuacct.stat splits the cgroup's run time (the sum cpuacct.usage gives) into user
        // and system: the kernel scales its tick counts so that they add up to that sum and
        // never go back, so while the sum stands still it prints the same two numbers.
        Slot::CpuacctStat if t.values[ix::CPU].is_some() && t.values[ix::CPU] == t.cpu_stat_at => {
            (t.values[ix::USER], t.values[ix::SYSTEM]) = t.user_system;
            false
        }
        Slot::CpuacctStat => {
            let read = read_slot(t, slot, v2, buf);
            (t.cpu_stat_at, t.user_system) = (t.values[ix::CPU], (t.values[ix::USER], t.values[ix::SYSTEM]));
            read
        }
        _ => read_slot(t, slot, v2, buf),
    }
}

/// Re-reads the limits every `refresh` (`containers.limits_refresh`: they change only with
/// `docker update`, and re-reading four files per container every scrape would cost more than
/// everything else the collector does); true when it did.
fn refresh_spec(layout: &Layout, t: &mut Tracked, refresh: Duration) -> bool {
    if t.spec_read.is_some_and(|at| at.elapsed() < refresh) {
        return false;
    }
    let path = &t.found.path;
    let get = |slot| read_once(layout, path, slot);
    t.spec = if matches!(layout, Layout::V2 { .. }) { spec_v2(get) } else { spec_v1(get) };
    t.spec_read = Some(Instant::now());
    true
}

/// What is derived once every file is read: the working set, the CFS families only with a
/// quota (as cAdvisor: without one they stay 0), and the limits.
fn finish_values(t: &mut Tracked) {
    let v = &mut t.values;
    if v.iter().all(Option::is_none) {
        return;
    }
    v[ix::WORKING_SET] = v[ix::MEM].map(|u| (u - t.inactive.unwrap_or(0) as f64).max(0.0));
    if t.spec[1].is_none() {
        (v[ix::PERIODS], v[ix::THROTTLED], v[ix::THROTTLED_SECS]) = (None, None, None);
    }
    for (i, value) in SPEC_SLOTS.iter().zip(t.spec) {
        v[*i] = value;
    }
}

/// The files read every scrape, in reading order (memory usage before `memory.stat`, and both
/// before v1's memsw file, which is read only when `memory.stat` has no `total_swap`).
const V2_READ_ORDER: [Slot; 7] = [Slot::CpuStat, Slot::MemUsage, Slot::MemStat, Slot::MemEvents, Slot::MemSwap, Slot::Pids, Slot::Io];
const V1_READ_ORDER: [Slot; 10] = [
    Slot::CpuacctUsage,
    Slot::CpuacctStat,
    Slot::CpuStat,
    Slot::MemUsage,
    Slot::MemStat,
    Slot::MemSwap,
    Slot::MemFailcnt,
    Slot::OomControl,
    Slot::Pids,
    Slot::Io,
];

/// Reads one of a container's files into its figures (`v2`: the file is a cgroup v2 one); true
/// when it read the file.
fn read_slot(t: &mut Tracked, slot: Slot, v2: bool, buf: &mut Vec<u8>) -> bool {
    let v = &mut t.values;
    // v1: cpu.stat only with a quota (the CFS families need one), memsw only without total_swap.
    if !v2 && ((slot == Slot::CpuStat && t.spec[1].is_none()) || (slot == Slot::MemSwap && v[ix::SWAP].is_some())) {
        return false;
    }
    let Some(text) = read(t.files[slot as usize].as_ref(), buf) else { return false };
    let num = |x: Option<u64>| x.map(|x| x as f64);
    let secs = |x: Option<u64>, per_sec: f64| x.map(|x| x as f64 / per_sec);
    match slot {
        Slot::CpuStat if v2 => {
            let [usage, user, system, periods, throttled, throttled_us] =
                parse::keyed(text, ["usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec"]);
            (v[ix::CPU], v[ix::USER], v[ix::SYSTEM]) = (secs(usage, 1e6), secs(user, 1e6), secs(system, 1e6));
            (v[ix::PERIODS], v[ix::THROTTLED], v[ix::THROTTLED_SECS]) = (num(periods), num(throttled), secs(throttled_us, 1e6));
        }
        Slot::CpuStat => {
            let [periods, throttled, throttled_ns] = parse::keyed(text, ["nr_periods", "nr_throttled", "throttled_time"]);
            (v[ix::PERIODS], v[ix::THROTTLED], v[ix::THROTTLED_SECS]) = (num(periods), num(throttled), secs(throttled_ns, 1e9));
        }
        Slot::CpuacctUsage => v[ix::CPU] = secs(parse::single(text), 1e9),
        Slot::CpuacctStat => {
            let [user, system] = parse::keyed(text, ["user", "system"]);
            (v[ix::USER], v[ix::SYSTEM]) = (secs(user, super::cpu::USER_HZ), secs(system, super::cpu::USER_HZ));
        }
        Slot::MemUsage => v[ix::MEM] = num(parse::single(text)),
        Slot::MemStat if v2 => {
            let [anon, file, inactive] = parse::keyed(text, ["anon", "file", "inactive_file"]);
            (v[ix::RSS], v[ix::CACHE], t.inactive) = (num(anon), num(file), inactive);
        }
        Slot::MemStat => {
            let [rss, cache, inactive, swap] = parse::keyed(text, ["total_rss", "total_cache", "total_inactive_file", "total_swap"]);
            (v[ix::RSS], v[ix::CACHE], t.inactive, v[ix::SWAP]) = (num(rss), num(cache), inactive, num(swap));
        }
        Slot::MemEvents => {
            let [max, oom] = parse::keyed(text, ["max", "oom_kill"]);
            (v[ix::FAILCNT], v[ix::OOM]) = (num(max), num(oom));
        }
        Slot::MemSwap if v2 => v[ix::SWAP] = num(parse::single(text)),
        // v1 without total_swap in memory.stat: memsw usage (memory + swap) minus memory usage.
        Slot::MemSwap => v[ix::SWAP] = num(parse::single(text)).zip(v[ix::MEM]).map(|(sw, m)| (sw - m).max(0.0)),
        Slot::MemFailcnt => v[ix::FAILCNT] = num(parse::single(text)),
        Slot::OomControl => v[ix::OOM] = num(parse::keyed(text, ["oom_kill"])[0]),
        Slot::Pids => v[ix::PIDS] = num(parse::single(text)),
        Slot::Io if v2 => parse::io_stat(text, &mut t.io),
        Slot::Io => parse::blkio_service_bytes(text, &mut t.io),
        Slot::CpuMax | Slot::CfsQuota | Slot::CfsPeriod | Slot::Shares | Slot::MemLimit | Slot::Procs => {}
    }
    true
}

impl Containers {
    /// Adds container `i` of `state.tracked` to the scrape's rows.
    fn add_row(&self, state: &mut State, i: usize, meta: &MetaMap, rows: &mut Rows) {
        let Some(layout) = state.layout.as_ref() else { return };
        let t = &mut state.tracked[i];
        let m = meta.get(t.found.id()).map(|m| m.as_ref());
        let (name, image) = self.identity(&t.found, m);
        let start = rows.labels.len();
        let labels = &mut rows.labels;
        render_label(labels, start, "id", &t.found.path);
        render_label(labels, start, "image", image);
        render_label(labels, start, "name", name);
        if let Some(m) = m {
            for (key, label) in &self.label_names {
                if let Some((_, v)) = m.labels.iter().find(|(k, _)| k == key) {
                    render_label(labels, start, label, v);
                }
            }
        }
        let io_start = rows.io.len();
        for io in &t.io {
            resolve_device(&mut state.devices, &self.paths, io.major, io.minor);
            let device = state.devices.get(&(io.major, io.minor)).map_or("", |d| d.as_str());
            rows.io.push((device.to_string(), io.read, io.write));
        }
        let mut net = 0..0;
        if let Some(ns) = self.netns_of(t, layout, &mut state.netns, &mut state.host_netns) {
            match read_netns(&mut state.netns, ns, state.scrape, &mut state.buf) {
                Some(ns) => {
                    if ns.in_rows.is_empty() {
                        let first = rows.net.len();
                        rows.net.extend(ns.ifaces.iter().cloned());
                        ns.in_rows = first..rows.net.len();
                    }
                    net = ns.in_rows.clone();
                }
                None => t.net = None,
            }
        }
        let mut values = [0.0; SCALARS.len()];
        let mut present = 0u32;
        for (i, v) in t.values.iter().enumerate() {
            if let Some(v) = v {
                (values[i], present) = (*v, present | 1 << i);
            }
        }
        rows.rows.push(Row {
            labels: start..rows.labels.len(),
            values,
            present,
            start_time: t.start_time,
            io: io_start..rows.io.len(),
            net,
        });
    }

    /// The network namespace a container's net/dev is read from: that of its first process
    /// when it has its own (not the host's). Opens the namespace's net/dev when no other container did.
    fn netns_of<'t>(
        &self,
        t: &'t mut Tracked,
        layout: &Layout,
        netns: &mut HashMap<String, NetNs>,
        host: &mut Option<Option<PathBuf>>,
    ) -> Option<&'t str> {
        if t.net.is_none() {
            let pid = read_once(layout, &t.found.path, Slot::Procs).as_deref().and_then(parse::first_pid)?;
            let host = host.get_or_insert_with(|| self.host_netns());
            t.net = Some(self.own_netns(pid, host.as_ref()));
            if let Some(Some(ns)) = &t.net {
                if !netns.contains_key(ns) {
                    let file = File::open(self.paths.proc(&format!("{pid}/net/dev"))).ok();
                    match file {
                        Some(file) => {
                            netns.insert(ns.clone(), NetNs { file, read_in: 0, ifaces: Vec::new(), in_rows: 0..0 });
                        }
                        None => t.net = Some(None),
                    }
                }
            }
        }
        t.net.as_ref()?.as_deref()
    }

    /// The host's network namespace: PID 1's, or where PID 1 cannot be inspected (a sandbox
    /// that hides it), the exporter's own (it runs in the host's, as node_exporter does).
    fn host_netns(&self) -> Option<PathBuf> {
        std::fs::read_link(self.paths.proc("1/ns/net")).or_else(|_| std::fs::read_link(self.paths.proc("self/ns/net"))).ok()
    }

    /// The process's network namespace (`net:[inode]`), `None` when it is the host's or cannot
    /// be read.
    fn own_netns(&self, pid: u32, host: Option<&PathBuf>) -> Option<String> {
        let ns = std::fs::read_link(self.paths.proc(&format!("{pid}/ns/net"))).ok()?;
        if host == Some(&ns) {
            return None;
        }
        ns.into_os_string().into_string().ok()
    }
}

/// `name="value"` (escaped), after a comma unless first (`out` holds nothing after `start`).
fn render_label(out: &mut String, start: usize, name: &str, value: &str) {
    if out.len() > start {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    fleetwatch_common::expfmt::push_escaped_label_value(out, value);
    out.push('"');
}

/// The namespace's interfaces, read and parsed on its first use in scrape `scrape`; `None` (and
/// the namespace forgotten) when its net/dev cannot be read (the process that opened it is gone).
fn read_netns<'a>(netns: &'a mut HashMap<String, NetNs>, key: &str, scrape: u64, buf: &mut Vec<u8>) -> Option<&'a mut NetNs> {
    let ns = netns.get_mut(key)?;
    if ns.read_in != scrape {
        let Some(text) = read(Some(&ns.file), buf) else {
            netns.remove(key);
            return None;
        };
        ns.ifaces.clear();
        parse::net_dev(text, |iface, rb, rp, tb, tp| ns.ifaces.push((iface.to_string(), [rb, rp, tb, tp])));
        ns.read_in = scrape;
        ns.in_rows = 0..0;
    }
    netns.get_mut(key)
}

/// One scrape's figures of every container, from which the families are rendered while the
/// response is written (`Deferred`): the collector keeps no rendered text.
#[derive(Default)]
struct Rows {
    rows: Vec<Row>,
    /// Every container's labels (`id="…",image="…",name="…"…`, escaped), back to back.
    labels: String,
    /// (device, bytes read, bytes written) of every container, back to back.
    io: Vec<(String, u64, u64)>,
    /// (interface, receive bytes, receive packets, transmit bytes, transmit packets).
    net: Vec<(String, [u64; 4])>,
    now: f64,
}

struct Row {
    labels: Range<usize>,
    /// The figures, `values[i]` when bit `i` of `present` is set (half the size of options).
    values: [f64; SCALARS.len()],
    present: u32,
    start_time: f64,
    io: Range<usize>,
    net: Range<usize>,
}

impl Row {
    fn value(&self, i: usize) -> Option<f64> {
        (self.present & 1 << i != 0).then_some(self.values[i])
    }
}

/// Which family of `Rows` a deferred family renders.
#[derive(Clone, Copy)]
enum Part {
    Scalar(usize),
    FsReads,
    FsWrites,
    Start,
    LastSeen,
    Net(usize),
}

const NET_FAMILIES: [(&str, &str); 4] = [
    ("container_network_receive_bytes_total", "Cumulative count of bytes received."),
    ("container_network_receive_packets_total", "Cumulative count of packets received."),
    ("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted."),
    ("container_network_transmit_packets_total", "Cumulative count of packets transmitted."),
];

/// The other families: (part, name, help, counter).
const OTHER_FAMILIES: [(Part, &str, &str, bool); 4] = [
    (Part::FsReads, "container_fs_reads_bytes_total", "Cumulative count of bytes read.", true),
    (Part::FsWrites, "container_fs_writes_bytes_total", "Cumulative count of bytes written.", true),
    (Part::Start, "container_start_time_seconds", "Start time of the container since unix epoch in seconds.", false),
    (Part::LastSeen, "container_last_seen", "Last time a container was seen by the exporter.", false),
];

struct RowsPart {
    rows: Arc<Rows>,
    part: Part,
}

impl Rows {
    /// The samples `part` has for one container.
    fn count(&self, row: &Row, part: Part) -> usize {
        match part {
            Part::Scalar(i) => usize::from(row.value(i).is_some()),
            Part::FsReads | Part::FsWrites => row.io.len(),
            Part::Start | Part::LastSeen => 1,
            Part::Net(_) => row.net.len(),
        }
    }

    fn clear(&mut self, now: f64) {
        self.rows.clear();
        self.labels.clear();
        self.io.clear();
        self.net.clear();
        self.now = now;
    }

    /// Every family with at least one sample, deferred.
    fn families(rows: &Arc<Rows>) -> Vec<Family> {
        let kind = |counter| if counter { MetricType::Counter } else { MetricType::Gauge };
        let scalars = SCALARS.iter().enumerate().map(|(i, (name, help, counter))| (Part::Scalar(i), *name, *help, *counter));
        let others = OTHER_FAMILIES.into_iter();
        let net = NET_FAMILIES.iter().enumerate().map(|(i, (name, help))| (Part::Net(i), *name, *help, true));
        let mut out = Vec::new();
        for (part, name, help, counter) in scalars.chain(others).chain(net) {
            let samples = rows.rows.iter().map(|r| rows.count(r, part)).sum();
            if samples > 0 {
                out.push(Family::deferred(name, help, kind(counter), samples, Arc::new(RowsPart { rows: rows.clone(), part })));
            }
        }
        out
    }

    fn write(&self, row: &Row, part: Part, name: &str, out: &mut String) {
        let labels = &self.labels[row.labels.clone()];
        match part {
            Part::Scalar(i) => {
                if let Some(v) = row.value(i) {
                    push_rendered_sample(out, name, labels, (i == ix::CPU).then_some(("cpu", "total")), v);
                }
            }
            Part::FsReads | Part::FsWrites => {
                for (device, read, write) in &self.io[row.io.clone()] {
                    let v = if matches!(part, Part::FsReads) { read } else { write };
                    push_rendered_sample(out, name, labels, Some(("device", device)), *v as f64);
                }
            }
            Part::Start => push_rendered_sample(out, name, labels, None, row.start_time),
            Part::LastSeen => push_rendered_sample(out, name, labels, None, self.now),
            Part::Net(k) => {
                for (iface, v) in &self.net[row.net.clone()] {
                    push_rendered_sample(out, name, labels, Some(("interface", iface)), v[k] as f64);
                }
            }
        }
    }
}

impl Deferred for RowsPart {
    fn render(&self, name: &str, cursor: &mut usize, out: &mut String, until: usize) -> bool {
        while let Some(row) = self.rows.rows.get(*cursor) {
            if out.len() >= until {
                return false;
            }
            self.rows.write(row, self.part, name, out);
            *cursor += 1;
        }
        true
    }
}

/// Opens a container's files (a missing one stays `None`: a controller not mounted or a kernel
/// without that file). `None` when the cgroup vanished.
fn open(layout: &Layout, found: Found) -> Option<Tracked> {
    let rel = found.path.as_str();
    let mut files: [Option<File>; SLOTS] = Default::default();
    let meta = std::fs::metadata(layout.walk_root()?.join(rel.trim_start_matches('/'))).ok()?;
    for (i, file) in files.iter_mut().enumerate() {
        let slot = ALL_SLOTS[i];
        if !ON_DEMAND.contains(&slot) {
            *file = path_of(layout, rel, slot).and_then(|p| File::open(p).ok());
        }
    }
    let start_time = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let values = [None; SCALARS.len()];
    Some(Tracked {
        found,
        files,
        start_time,
        net: None,
        spec: [None; 4],
        spec_read: None,
        values,
        io: Vec::new(),
        inactive: None,
        failcnt: None,
        oom: None,
        cpu_stat_at: None,
        user_system: (None, None),
    })
}

/// Files read only every `containers.limits_refresh`: opened, read and closed then, rather than kept open
/// (each open cgroup file holds a page of kernel memory for its read buffer).
const ON_DEMAND: [Slot; 6] = [Slot::CpuMax, Slot::CfsQuota, Slot::CfsPeriod, Slot::Shares, Slot::MemLimit, Slot::Procs];

const ALL_SLOTS: [Slot; SLOTS] = [
    Slot::CpuStat,
    Slot::CpuacctUsage,
    Slot::CpuacctStat,
    Slot::CpuMax,
    Slot::CfsQuota,
    Slot::CfsPeriod,
    Slot::Shares,
    Slot::MemUsage,
    Slot::MemStat,
    Slot::MemEvents,
    Slot::MemFailcnt,
    Slot::MemLimit,
    Slot::MemSwap,
    Slot::OomControl,
    Slot::Io,
    Slot::Pids,
    Slot::Procs,
];

/// Where a slot's file is for the cgroup `rel` (`None`: not in this layout, or its controller
/// is not mounted).
fn path_of(layout: &Layout, rel: &str, slot: Slot) -> Option<PathBuf> {
    let rel = rel.trim_start_matches('/');
    match layout {
        Layout::V2 { root } => V2_FILES.iter().find(|(s, _)| *s == slot).map(|(_, name)| root.join(rel).join(name)),
        Layout::V1 { controllers: c, .. } => {
            let (_, ctl, name) = V1_FILES.iter().find(|(s, _, _)| *s == slot)?;
            let root = match ctl {
                Ctl::Cpu => c.cpu.as_deref(),
                Ctl::Cpuacct => c.cpuacct.as_deref(),
                Ctl::Memory => c.memory.as_deref(),
                Ctl::Blkio => c.blkio.as_deref(),
                Ctl::Pids => c.pids.as_deref(),
                Ctl::Walk => layout.walk_root(),
            };
            Some(root?.join(rel).join(name))
        }
    }
}

/// Opens, reads and closes one of the `ON_DEMAND` files.
fn read_once(layout: &Layout, rel: &str, slot: Slot) -> Option<String> {
    super::read_small(&path_of(layout, rel, slot)?).ok()
}

/// Reads a whole file from offset 0 into `buf`; `None` when absent, unreadable or not UTF-8.
fn read<'a>(file: Option<&File>, buf: &'a mut Vec<u8>) -> Option<&'a str> {
    let file = file?;
    if buf.len() < 4096 {
        buf.resize(4096, 0);
    }
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let room = buf.len() - len;
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            // cgroupfs and procfs fill the buffer up to the end of the file in one read: a short
            // read is the end (this saves the second, empty read per file).
            Ok(n) if n < room => {
                len += n;
                break;
            }
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    std::str::from_utf8(&buf[..len]).ok()
}

/// cgroup v2 limits in `SPEC_SLOTS` order: memory.max, cpu.max (quota, period), cpu.weight.
fn spec_v2(get: impl Fn(Slot) -> Option<String>) -> [Option<f64>; 4] {
    let limit = get(Slot::MemLimit).as_deref().and_then(parse::memory_limit).map(|x| x as f64);
    let (quota, period) = get(Slot::CpuMax).as_deref().map(parse::cpu_max).unwrap_or_default();
    let shares = get(Slot::Shares).as_deref().and_then(parse::single).map(|w| parse::weight_to_shares(w) as f64);
    [limit, quota.map(|x| x as f64), period.map(|x| x as f64), shares]
}

/// cgroup v1 limits in `SPEC_SLOTS` order.
fn spec_v1(get: impl Fn(Slot) -> Option<String>) -> [Option<f64>; 4] {
    let limit = get(Slot::MemLimit).as_deref().and_then(parse::memory_limit).map(|x| x as f64);
    let quota = get(Slot::CfsQuota).as_deref().and_then(parse::v1_quota).map(|x| x as f64);
    let int = |s| get(s).as_deref().and_then(parse::single).map(|x| x as f64);
    [limit, quota, int(Slot::CfsPeriod), int(Slot::Shares)]
}

/// `/dev/<name>` of a block device from `<sysfs>/dev/block/<major>:<minor>`, cached; the
/// `major:minor` pair when sysfs does not say.
fn resolve_device(cache: &mut HashMap<(u32, u32), String>, paths: &Paths, major: u32, minor: u32) {
    cache.entry((major, minor)).or_insert_with(|| {
        std::fs::read_link(paths.sys(&format!("dev/block/{major}:{minor}")))
            .ok()
            .and_then(|target| target.file_name().map(|n| format!("/dev/{}", n.to_string_lossy())))
            .unwrap_or_else(|| format!("{major}:{minor}"))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(label_name("com.docker.compose.service"), "container_label_com_docker_compose_service");
        assert_eq!(label_name("app"), "container_label_app");
    }

    #[test]
    fn slot_table_is_in_enum_order() {
        for (i, slot) in ALL_SLOTS.iter().enumerate() {
            assert_eq!(*slot as usize, i);
        }
    }

    #[test]
    fn short_ids() {
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}
