//! Pure parsers of the cgroup v1 and v2 files (and /proc/<pid>/net/dev) the containers collector
//! reads. They work on borrowed text and allocate nothing, so they run every scrape for every
//! container at little cost.

/// The values of `keys` in a flat keyed file (`key value` per line: cpu.stat, memory.stat,
/// memory.events, cpuacct.stat, memory.oom_control). A key that is missing or not a number is
/// `None`. Works on bytes (memory.stat has 40 to 70 lines, read for every container): a line is
/// compared with a key only when the key's length is followed by the space.
pub fn keyed<const N: usize>(text: &str, keys: [&str; N]) -> [Option<u64>; N] {
    let mut out = [None; N];
    let mut seen = [false; N];
    for line in text.as_bytes().split(|b| *b == b'\n') {
        let Some(i) = keys.iter().position(|k| line.get(k.len()) == Some(&b' ') && line.starts_with(k.as_bytes())) else { continue };
        out[i] = std::str::from_utf8(&line[keys[i].len() + 1..]).ok().and_then(|v| v.trim().parse().ok());
        seen[i] = true;
        if seen.iter().all(|s| *s) {
            break;
        }
    }
    out
}

/// A file holding one unsigned number (memory.current, pids.current, cpuacct.usage ...).
pub fn single(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Values at or above this are "no limit" in cgroup v1 (the kernel's PAGE_COUNTER_MAX, page
/// rounded, differs by architecture; all of them are above 2^62).
const V1_UNLIMITED: u64 = 1 << 62;

/// A memory limit: `max` (v2) or a huge v1 value is `Some(0)`, which the metric reports as 0
/// ("unlimited") as cAdvisor does for a missing limit.
pub fn memory_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return Some(0);
    }
    let v: u64 = t.parse().ok()?;
    Some(if v >= V1_UNLIMITED { 0 } else { v })
}

/// cgroup v2 `cpu.max` (`max 100000` or `50000 100000`): (quota µs, period µs); no quota is `None`.
pub fn cpu_max(text: &str) -> (Option<u64>, Option<u64>) {
    let mut f = text.split_ascii_whitespace();
    let quota = f.next().and_then(|q| q.parse().ok());
    let period = f.next().and_then(|p| p.parse().ok());
    (quota, period)
}

/// cgroup v1 `cpu.cfs_quota_us`: -1 (no quota) is `None`.
pub fn v1_quota(text: &str) -> Option<u64> {
    text.trim().parse::<i64>().ok().filter(|q| *q > 0).map(|q| q as u64)
}

/// cgroup v2 `cpu.weight` (1..10000) as v1 `cpu.shares` (2..262144), the conversion runc and
/// cAdvisor use, so `container_spec_cpu_shares` reads the same on both.
pub fn weight_to_shares(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    2 + (weight.saturating_sub(1) * 262_142) / 9_999
}

/// Bytes read and written on one block device (major, minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceIo {
    pub major: u32,
    pub minor: u32,
    pub read: u64,
    pub write: u64,
}

fn major_minor(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn entry(out: &mut Vec<DeviceIo>, major: u32, minor: u32) -> &mut DeviceIo {
    let i = match out.iter().position(|d| d.major == major && d.minor == minor) {
        Some(i) => i,
        None => {
            out.push(DeviceIo { major, minor, ..DeviceIo::default() });
            out.len() - 1
        }
    };
    &mut out[i]
}

/// cgroup v2 `io.stat` (`8:0 rbytes=1 wbytes=2 rios=3 ...` per device) into `out` (cleared).
pub fn io_stat(text: &str, out: &mut Vec<DeviceIo>) {
    out.clear();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some((major, minor)) = f.next().and_then(major_minor) else { continue };
        let d = entry(out, major, minor);
        for kv in f {
            match kv.split_once('=') {
                Some(("rbytes", v)) => d.read = v.parse().unwrap_or(0),
                Some(("wbytes", v)) => d.write = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
}

/// cgroup v1 `blkio.throttle.io_service_bytes` (`8:0 Read 123` lines and a `Total`) into `out`.
pub fn blkio_service_bytes(text: &str, out: &mut Vec<DeviceIo>) {
    out.clear();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else { continue };
        let (Some((major, minor)), Ok(v)) = (major_minor(dev), v.parse::<u64>()) else { continue };
        match op {
            "Read" => entry(out, major, minor).read = v,
            "Write" => entry(out, major, minor).write = v,
            _ => {}
        }
    }
}

/// The first PID in `cgroup.procs`.
pub fn first_pid(text: &str) -> Option<u32> {
    text.lines().find_map(|l| l.trim().parse().ok())
}

/// One interface of /proc/<pid>/net/dev: (name, receive bytes, receive packets, transmit bytes,
/// transmit packets), loopback skipped (cAdvisor skips it too).
pub fn net_dev<'a>(text: &'a str, mut f: impl FnMut(&'a str, u64, u64, u64, u64)) {
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let mut v = [0u64; 10];
        let mut fields = rest.split_ascii_whitespace();
        let complete = v.iter_mut().all(|slot| fields.next().and_then(|s| s.parse().ok()).map(|n| *slot = n).is_some());
        if complete {
            f(name, v[0], v[1], v[8], v[9]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_reads_v2_cpu_stat_and_ignores_others() {
        let text = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 1500\n";
        assert_eq!(keyed(text, ["usage_usec", "system_usec", "nr_bursts"]), [Some(2_500_000), Some(500_000), None]);
    }

    #[test]
    fn keyed_reads_v1_memory_stat() {
        let text = "cache 4096\nrss 8192\ntotal_cache 40960\ntotal_rss 81920\ntotal_inactive_file 1024\n";
        assert_eq!(keyed(text, ["total_rss", "total_cache", "total_inactive_file"]), [Some(81920), Some(40960), Some(1024)]);
        assert_eq!(keyed("user 12\nsystem 3\n", ["user", "system"]), [Some(12), Some(3)]);
        assert_eq!(keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", ["oom_kill"]), [Some(2)]);
    }

    #[test]
    fn limits_and_quotas() {
        assert_eq!(memory_limit("max\n"), Some(0));
        assert_eq!(memory_limit("67108864\n"), Some(67_108_864));
        assert_eq!(memory_limit("9223372036854771712\n"), Some(0), "v1 unlimited");
        assert_eq!(memory_limit("junk"), None);
        assert_eq!(cpu_max("max 100000\n"), (None, Some(100_000)));
        assert_eq!(cpu_max("50000 100000\n"), (Some(50_000), Some(100_000)));
        assert_eq!(v1_quota("-1\n"), None);
        assert_eq!(v1_quota("50000\n"), Some(50_000));
        assert_eq!(single(" 42\n"), Some(42));
        assert_eq!(single(""), None);
    }

    #[test]
    fn weight_maps_onto_shares() {
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(100), 2597);
        assert_eq!(weight_to_shares(10_000), 262_144);
    }

    #[test]
    fn io_stat_v2_per_device() {
        let mut out = Vec::new();
        io_stat("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=0 rios=1 wios=0\n", &mut out);
        assert_eq!(
            out,
            vec![DeviceIo { major: 8, minor: 0, read: 4096, write: 8192 }, DeviceIo { major: 253, minor: 1, read: 1, write: 0 }]
        );
    }

    #[test]
    fn blkio_v1_groups_rows_by_device() {
        let mut out = vec![DeviceIo::default()];
        let text = "8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Async 0\n8:0 Total 300\n8:16 Read 5\nTotal 305\n";
        blkio_service_bytes(text, &mut out);
        assert_eq!(out, vec![DeviceIo { major: 8, minor: 0, read: 100, write: 200 }, DeviceIo { major: 8, minor: 16, read: 5, write: 0 }]);
    }

    #[test]
    fn first_pid_and_net_dev() {
        assert_eq!(first_pid("\n4242\n4243\n"), Some(4242));
        assert_eq!(first_pid(""), None);
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets ...\n    lo: 9 9 0 0 0 0 0 0 9 9 0 0 0 0 0 0\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n  bad: 1 2\n";
        let mut seen = Vec::new();
        net_dev(text, |n, rb, rp, tb, tp| seen.push((n.to_string(), rb, rp, tb, tp)));
        assert_eq!(seen, vec![("eth0".to_string(), 1000, 10, 2000, 20)]);
    }
}
