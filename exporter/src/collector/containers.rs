//! The `containers` collector: per-container CPU, memory, block I/O, pids and network figures
//! from the cgroup filesystem (v2, v1 or hybrid), with cAdvisor's metric names, types and labels
//! (`id` = cgroup path, `name`, `image`). Names and images come from the metadata cache
//! (`crate::containers::metadata`), which a background task fills; a scrape never waits for it.
//! Each container's files stay open across scrapes and are re-read with `pread` into one reused
//! buffer, so a container costs a handful of syscalls and no per-file allocation.

use super::{CollectError, Collector, Context};
use crate::containers::cgroup::{discover, Found, Layout, Runtime};
use crate::containers::metadata::{Meta, MetaMap, MetadataState, Refresher, Source};
use crate::containers::parse::{self, DeviceIo};
use crate::paths::Paths;
use fleetwatch_common::expfmt::Family;
use std::collections::HashMap;
use std::fs::File;
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

/// One container's open files, kept while its cgroup exists.
struct Tracked {
    files: [Option<File>; SLOTS],
    start_time: f64,
    /// The network namespace whose net/dev is reported (`None` inside: the host's, or none
    /// readable); `None`: not looked up yet.
    net: Option<Option<String>>,
    /// Limits (memory limit, CPU quota, period, shares) and when they were last read.
    spec: [Option<f64>; 4],
    spec_read: Option<Instant>,
}

/// How long limits and the process whose network namespace is read are taken as known: they
/// rarely change (`docker update`), and re-reading five files per container every scrape would
/// cost a third of the collector's time.
const SPEC_REFRESH: Duration = Duration::from_secs(30);
const SPEC_SLOTS: [usize; 4] = [ix::LIMIT, ix::QUOTA, ix::PERIOD, ix::SHARES];

/// What a scrape keeps for the next: the layout, open files, device names, network namespaces,
/// the read buffer and each family's size last time.
#[derive(Default)]
struct State {
    layout: Option<Layout>,
    tracked: HashMap<String, Tracked>,
    devices: HashMap<(u32, u32), String>,
    netns: HashMap<String, NetNs>,
    /// Counts scrapes, so that a network namespace is read once per scrape.
    scrape: u64,
    buf: Vec<u8>,
    io: Vec<DeviceIo>,
    /// One container's labels, rendered once and written on each of its samples.
    labels: String,
    sizes: Vec<usize>,
}

/// One network namespace's net/dev, read once per scrape however many containers share it (the
/// containers of a pod, or of a `--network container:` group).
struct NetNs {
    file: File,
    read_in: u64,
    /// (interface, receive bytes, receive packets, transmit bytes, transmit packets).
    ifaces: Vec<(String, [u64; 4])>,
}

pub struct Containers {
    cgroup_root: PathBuf,
    paths: Paths,
    max_containers: usize,
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
            Some(m) => (short(&found.id), &m.image),
            None if found.runtime == Runtime::Systemd => (&found.id, ""),
            None => (short(&found.id), ""),
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
        state.tracked.retain(|path, _| found.binary_search_by(|f| f.path.as_str().cmp(path)).is_ok());
        let meta = self.metadata.snapshot();
        state.scrape += 1;
        let mut fams = Families::new(&state.sizes);
        let now = (self.now)().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let mut unknown = false;
        for f in &found {
            unknown |= f.runtime != Runtime::Systemd && !meta.contains_key(&f.id);
            self.one(state, f, &meta, now, &mut fams);
        }
        if unknown && socket_present {
            self.metadata.request_refresh();
        }
        let scrape = state.scrape;
        state.netns.retain(|_, ns| ns.read_in == scrape);
        state.sizes = fams.sizes();
        out.extend(fams.finish());
        if self.socket.is_some() {
            let up = if self.metadata.up() { 1.0 } else { 0.0 };
            out.push(Family::single(
                "fleetwatch_containers_metadata_up",
                "Whether the last read of container names and images from the Docker-compatible API succeeded.",
                fleetwatch_common::expfmt::MetricType::Gauge,
                up,
            ));
        }
        out.push(Family::single(
            "fleetwatch_containers_dropped_total",
            "Containers left out of a scrape because of containers.max_containers, summed over scrapes.",
            fleetwatch_common::expfmt::MetricType::Counter,
            self.metadata.dropped.load(Ordering::Relaxed) as f64,
        ));
        Ok(())
    }
}

impl Containers {
    /// Reads and emits one container.
    fn one(&self, state: &mut State, f: &Found, meta: &MetaMap, now: f64, fams: &mut Families) {
        let Some(layout) = state.layout.as_ref() else { return };
        let v2 = matches!(layout, Layout::V2 { .. });
        let read = |t: &mut Tracked, buf: &mut Vec<u8>, io: &mut Vec<DeviceIo>| {
            if t.spec_read.is_none_or(|at| at.elapsed() >= SPEC_REFRESH) {
                let get = |slot| read_once(layout, &f.path, slot);
                t.spec = if v2 { spec_v2(get) } else { spec_v1(get) };
                t.spec_read = Some(Instant::now());
                t.net = None;
            }
            // As cAdvisor: the CFS families only for a container with a CPU quota (without one
            // they stay 0), which spares v1 its cpu.stat read for most containers.
            let quota = t.spec[1].is_some();
            let mut v = if v2 { read_v2(t, buf, io) } else { read_v1(t, buf, io, quota) };
            // Nothing readable through the open files: the cgroup was removed and made again
            // (a restart between two scrapes), or is gone.
            if v.iter().all(Option::is_none) {
                return None;
            }
            if !quota {
                (v[ix::PERIODS], v[ix::THROTTLED], v[ix::THROTTLED_SECS]) = (None, None, None);
            }
            for (i, value) in SPEC_SLOTS.iter().zip(t.spec) {
                v[*i] = value;
            }
            Some(v)
        };
        let mut values = None;
        if let Some(t) = state.tracked.get_mut(&f.path) {
            values = read(t, &mut state.buf, &mut state.io);
            if values.is_none() {
                // Open the new cgroup below.
                state.tracked.remove(&f.path);
            }
        }
        if values.is_none() {
            let Some(mut t) = open(layout, &f.path) else { return };
            values = read(&mut t, &mut state.buf, &mut state.io);
            state.tracked.insert(f.path.clone(), t);
        }
        let (Some(values), Some(t)) = (values, state.tracked.get_mut(&f.path)) else { return };
        let m = meta.get(&f.id).map(|m| m.as_ref());
        let (name, image) = self.identity(f, m);
        let labels = &mut state.labels;
        labels.clear();
        render_label(labels, "id", &f.path);
        render_label(labels, "image", image);
        render_label(labels, "name", name);
        if let Some(m) = m {
            for (key, label) in &self.label_names {
                if let Some((_, v)) = m.labels.iter().find(|(k, _)| k == key) {
                    render_label(labels, label, v);
                }
            }
        }
        let labels = state.labels.as_str();
        for (i, v) in values.iter().enumerate() {
            let Some(v) = v else { continue };
            let extra = (i == ix::CPU).then_some(("cpu", "total"));
            fams.scalars[i].add_rendered(labels, extra, *v);
        }
        for io in &state.io {
            resolve_device(&mut state.devices, &self.paths, io.major, io.minor);
        }
        for io in &state.io {
            let device = state.devices.get(&(io.major, io.minor)).map_or("", |d| d.as_str());
            fams.fs_reads.add_rendered(labels, Some(("device", device)), io.read as f64);
            fams.fs_writes.add_rendered(labels, Some(("device", device)), io.write as f64);
        }
        fams.start.add_rendered(labels, None, t.start_time);
        fams.last_seen.add_rendered(labels, None, now);
        let Some(ns) = self.netns_of(t, layout, &f.path, &mut state.netns) else { return };
        let Some(ns) = read_netns(&mut state.netns, ns, state.scrape, &mut state.buf) else {
            t.net = None;
            return;
        };
        for (iface, v) in &ns.ifaces {
            for (fam, value) in fams.net.iter_mut().zip(v) {
                fam.add_rendered(labels, Some(("interface", iface)), *value as f64);
            }
        }
    }

    /// The network namespace a container's net/dev is read from: that of its first process
    /// when it has its own (not the host's). Looked up again with the limits, every
    /// `SPEC_REFRESH`; opens the namespace's net/dev when no other container did.
    fn netns_of<'t>(&self, t: &'t mut Tracked, layout: &Layout, rel: &str, netns: &mut HashMap<String, NetNs>) -> Option<&'t str> {
        if t.net.is_none() {
            let pid = read_once(layout, rel, Slot::Procs).as_deref().and_then(parse::first_pid)?;
            t.net = Some(self.own_netns(pid));
            if let Some(Some(ns)) = &t.net {
                if !netns.contains_key(ns) {
                    let file = File::open(self.paths.proc(&format!("{pid}/net/dev"))).ok();
                    match file {
                        Some(file) => {
                            netns.insert(ns.clone(), NetNs { file, read_in: 0, ifaces: Vec::new() });
                        }
                        None => t.net = Some(None),
                    }
                }
            }
        }
        t.net.as_ref()?.as_deref()
    }

    /// The process's network namespace (`net:[inode]`), `None` when it is the host's (PID 1's)
    /// or cannot be read.
    fn own_netns(&self, pid: u32) -> Option<String> {
        let ns = std::fs::read_link(self.paths.proc(&format!("{pid}/ns/net"))).ok()?;
        let host = std::fs::read_link(self.paths.proc("1/ns/net")).ok();
        if host.as_ref() == Some(&ns) {
            return None;
        }
        ns.into_os_string().into_string().ok()
    }
}

/// `name="value"` (escaped), after a comma unless first.
fn render_label(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    fleetwatch_common::expfmt::push_escaped_label_value(out, value);
    out.push('"');
}

/// The namespace's interfaces, read and parsed on its first use in scrape `scrape`; `None` (and
/// the namespace forgotten) when its net/dev cannot be read (the process that opened it is gone).
fn read_netns<'a>(netns: &'a mut HashMap<String, NetNs>, key: &str, scrape: u64, buf: &mut Vec<u8>) -> Option<&'a NetNs> {
    let ns = netns.get_mut(key)?;
    if ns.read_in != scrape {
        let Some(text) = read(Some(&ns.file), buf) else {
            netns.remove(key);
            return None;
        };
        ns.ifaces.clear();
        parse::net_dev(text, |iface, rb, rp, tb, tp| ns.ifaces.push((iface.to_string(), [rb, rp, tb, tp])));
        ns.read_in = scrape;
    }
    netns.get(key)
}

/// The families of one scrape.
struct Families {
    scalars: Vec<Family>,
    fs_reads: Family,
    fs_writes: Family,
    start: Family,
    last_seen: Family,
    net: [Family; 4],
}

impl Families {
    /// Empty families, each with room for `sizes[i]` bytes (the last scrape's) plus an eighth.
    fn new(sizes: &[usize]) -> Families {
        let family = |name: &'static str, help: &'static str, counter: bool| {
            if counter {
                Family::counter(name, help)
            } else {
                Family::gauge(name, help)
            }
        };
        let mut fams = Families {
            scalars: SCALARS.iter().map(|(n, h, c)| family(n, h, *c)).collect(),
            fs_reads: Family::counter("container_fs_reads_bytes_total", "Cumulative count of bytes read."),
            fs_writes: Family::counter("container_fs_writes_bytes_total", "Cumulative count of bytes written."),
            start: Family::gauge("container_start_time_seconds", "Start time of the container since unix epoch in seconds."),
            last_seen: Family::gauge("container_last_seen", "Last time a container was seen by the exporter."),
            net: [
                Family::counter("container_network_receive_bytes_total", "Cumulative count of bytes received."),
                Family::counter("container_network_receive_packets_total", "Cumulative count of packets received."),
                Family::counter("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted."),
                Family::counter("container_network_transmit_packets_total", "Cumulative count of packets transmitted."),
            ],
        };
        for (f, size) in fams.each().zip(sizes) {
            f.reserve(size + size / 8);
        }
        fams
    }

    fn each(&mut self) -> impl Iterator<Item = &mut Family> {
        let rest = [&mut self.fs_reads, &mut self.fs_writes, &mut self.start, &mut self.last_seen];
        self.scalars.iter_mut().chain(rest).chain(self.net.iter_mut())
    }

    fn sizes(&mut self) -> Vec<usize> {
        self.each().map(|f| f.body_len()).collect()
    }

    fn finish(self) -> impl Iterator<Item = Family> {
        let rest = [self.fs_reads, self.fs_writes, self.start, self.last_seen];
        self.scalars.into_iter().chain(rest).chain(self.net).filter(|f| !f.is_empty())
    }
}

/// Opens a container's files (a missing one stays `None`: a controller not mounted or a kernel
/// without that file). `None` when the cgroup vanished.
fn open(layout: &Layout, rel: &str) -> Option<Tracked> {
    let mut files: [Option<File>; SLOTS] = Default::default();
    let meta = std::fs::metadata(layout.walk_root()?.join(rel.trim_start_matches('/'))).ok()?;
    for (i, file) in files.iter_mut().enumerate() {
        let slot = ALL_SLOTS[i];
        if !ON_DEMAND.contains(&slot) {
            *file = path_of(layout, rel, slot).and_then(|p| File::open(p).ok());
        }
    }
    let start_time = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    Some(Tracked { files, start_time, net: None, spec: [None; 4], spec_read: None })
}

/// Files read only every `SPEC_REFRESH`: opened, read and closed then, rather than kept open
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

fn slot<'a>(t: &Tracked, s: Slot, buf: &'a mut Vec<u8>) -> Option<&'a str> {
    read(t.files[s as usize].as_ref(), buf)
}

fn int(t: &Tracked, s: Slot, buf: &mut Vec<u8>) -> Option<f64> {
    slot(t, s, buf).and_then(parse::single).map(|v| v as f64)
}

fn read_v2(t: &Tracked, buf: &mut Vec<u8>, io: &mut Vec<DeviceIo>) -> Values {
    let mut v: Values = [None; SCALARS.len()];
    if let Some(text) = slot(t, Slot::CpuStat, buf) {
        let [usage, user, system, periods, throttled, throttled_us] =
            parse::keyed(text, ["usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec"]);
        let secs = |x: Option<u64>| x.map(|x| x as f64 / 1e6);
        (v[ix::CPU], v[ix::USER], v[ix::SYSTEM]) = (secs(usage), secs(user), secs(system));
        (v[ix::PERIODS], v[ix::THROTTLED], v[ix::THROTTLED_SECS]) =
            (periods.map(|x| x as f64), throttled.map(|x| x as f64), secs(throttled_us));
    }
    v[ix::MEM] = int(t, Slot::MemUsage, buf);
    if let Some(text) = slot(t, Slot::MemStat, buf) {
        let [anon, file, inactive] = parse::keyed(text, ["anon", "file", "inactive_file"]);
        (v[ix::RSS], v[ix::CACHE]) = (anon.map(|x| x as f64), file.map(|x| x as f64));
        v[ix::WORKING_SET] = v[ix::MEM].map(|u| (u - inactive.unwrap_or(0) as f64).max(0.0));
    }
    if let Some(text) = slot(t, Slot::MemEvents, buf) {
        let [max, oom] = parse::keyed(text, ["max", "oom_kill"]);
        (v[ix::FAILCNT], v[ix::OOM]) = (max.map(|x| x as f64), oom.map(|x| x as f64));
    }
    v[ix::SWAP] = int(t, Slot::MemSwap, buf);
    v[ix::PIDS] = int(t, Slot::Pids, buf);
    match slot(t, Slot::Io, buf) {
        Some(text) => parse::io_stat(text, io),
        None => io.clear(),
    }
    v
}

fn read_v1(t: &Tracked, buf: &mut Vec<u8>, io: &mut Vec<DeviceIo>, cfs: bool) -> Values {
    let mut v: Values = [None; SCALARS.len()];
    v[ix::CPU] = int(t, Slot::CpuacctUsage, buf).map(|ns| ns / 1e9);
    if let Some(text) = slot(t, Slot::CpuacctStat, buf) {
        let [user, system] = parse::keyed(text, ["user", "system"]);
        let secs = |x: Option<u64>| x.map(|x| x as f64 / super::cpu::USER_HZ);
        (v[ix::USER], v[ix::SYSTEM]) = (secs(user), secs(system));
    }
    if let Some(text) = slot(t, Slot::CpuStat, buf).filter(|_| cfs) {
        let [periods, throttled, throttled_ns] = parse::keyed(text, ["nr_periods", "nr_throttled", "throttled_time"]);
        v[ix::PERIODS] = periods.map(|x| x as f64);
        v[ix::THROTTLED] = throttled.map(|x| x as f64);
        v[ix::THROTTLED_SECS] = throttled_ns.map(|x| x as f64 / 1e9);
    }
    v[ix::MEM] = int(t, Slot::MemUsage, buf);
    if let Some(text) = slot(t, Slot::MemStat, buf) {
        let [rss, cache, inactive, swap] = parse::keyed(text, ["total_rss", "total_cache", "total_inactive_file", "total_swap"]);
        (v[ix::RSS], v[ix::CACHE]) = (rss.map(|x| x as f64), cache.map(|x| x as f64));
        v[ix::WORKING_SET] = v[ix::MEM].map(|u| (u - inactive.unwrap_or(0) as f64).max(0.0));
        v[ix::SWAP] = swap.map(|x| x as f64);
    }
    if v[ix::SWAP].is_none() {
        // Without total_swap in memory.stat: memsw usage (memory + swap) minus memory usage.
        v[ix::SWAP] = int(t, Slot::MemSwap, buf).zip(v[ix::MEM]).map(|(sw, m)| (sw - m).max(0.0));
    }
    v[ix::FAILCNT] = int(t, Slot::MemFailcnt, buf);
    v[ix::OOM] = slot(t, Slot::OomControl, buf).and_then(|text| parse::keyed(text, ["oom_kill"])[0]).map(|x| x as f64);
    v[ix::PIDS] = int(t, Slot::Pids, buf);
    match slot(t, Slot::Io, buf) {
        Some(text) => parse::blkio_service_bytes(text, io),
        None => io.clear(),
    }
    v
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
