//! The daemons' own metrics: `fleetwatch_<daemon>_build_info` and the standard `process_*`
//! families (read from the real /proc/self).

use crate::expfmt::{Family, MetricType};
use std::path::Path;

/// The git revision fleetwatch was built from (see build.rs).
pub const REVISION: &str = match option_env!("FLEETWATCH_REVISION") {
    Some(r) => r,
    None => "unknown",
};

/// The kernel's USER_HZ: /proc/self/stat counts in 1/100 s on every Linux ABI.
const USER_HZ: f64 = 100.0;

/// `fleetwatch_<daemon>_build_info{revision, version} 1`.
pub fn build_info(daemon: &str, version: &str) -> Family {
    let mut f = Family::gauge(
        format!("fleetwatch_{daemon}_build_info"),
        format!("A metric with a constant '1' value labeled by version and revision from which fleetwatch-{daemon} was built."),
    );
    f.add(&[("revision", REVISION), ("version", version)], 1.0);
    f
}

/// All process families, reading /proc/self directly.
pub fn families() -> Vec<Family> {
    let mut out = Vec::new();
    process_metrics(&mut out, |p| std::fs::read_to_string(p));
    out
}

/// Fields of /proc/self/stat after the command name: (utime, stime, starttime, vsize, rss pages).
pub fn parse_self_stat(text: &str) -> Option<(f64, f64, f64, f64, f64)> {
    let after = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_ascii_whitespace().collect();
    // After ")": state is field 3 of the man page; utime is 14, so index 14 - 3 = 11.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((get(11)?, get(12)?, get(19)?, get(20)?, get(21)?))
}

/// The soft limit of a row of /proc/self/limits, `None` when unlimited.
pub fn parse_limit(text: &str, row: &str) -> Option<Option<f64>> {
    let line = text.lines().find(|l| l.starts_with(row))?;
    let soft = line[row.len()..].split_ascii_whitespace().next()?;
    Some(if soft == "unlimited" { None } else { Some(soft.parse().ok()?) })
}

/// The host's boot time, read once: it does not change while we run.
fn boot_time() -> Option<f64> {
    static BOOT: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
    })
}

fn gauge(out: &mut Vec<Family>, name: &'static str, help: &'static str, v: f64) {
    out.push(Family::single(name, help, MetricType::Gauge, v));
}

/// The standard `process_*` families of the calling process; `read` reads a /proc/self file
/// (the exporter passes one that keeps its files open).
pub fn process_metrics(out: &mut Vec<Family>, read: impl Fn(&Path) -> std::io::Result<String>) {
    let hz = USER_HZ;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    if let Some((utime, stime, start, vsize, rss)) = read(Path::new("/proc/self/stat")).ok().as_deref().and_then(parse_self_stat) {
        out.push(Family::single(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            MetricType::Counter,
            (utime + stime) / hz,
        ));
        gauge(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", vsize);
        gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.", rss * page);
        if let Some(btime) = boot_time() {
            gauge(out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.", btime + start / hz);
        }
    }
    if let Ok(limits) = read(Path::new("/proc/self/limits")).as_deref() {
        if let Some(max) = parse_limit(limits, "Max open files") {
            gauge(out, "process_max_fds", "Maximum number of open file descriptors.", max.unwrap_or(u64::MAX as f64));
        }
        if let Some(max) = parse_limit(limits, "Max address space") {
            gauge(
                out,
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
                max.unwrap_or(u64::MAX as f64),
            );
        }
    }
    if let Some(n) = open_fds() {
        gauge(out, "process_open_fds", "Number of open file descriptors.", n as f64);
    }
}

/// Open file descriptors: the size Linux (6.2 and later) gives `/proc/self/fd`, which costs one
/// `stat` however many descriptors there are (the containers collector keeps thousands open);
/// counted from the listing on older kernels, which report 0.
fn open_fds() -> Option<usize> {
    let size = std::fs::metadata("/proc/self/fd").ok()?.len() as usize;
    if size > 0 {
        return Some(size);
    }
    // The listing's own descriptor is not one of ours.
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_self_stat_with_odd_command_names() {
        let stat = "1234 (fleet (x) y) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 9876 12345678 900 18446744073709551615";
        assert_eq!(parse_self_stat(stat), Some((250.0, 50.0, 9876.0, 12345678.0, 900.0)));
        assert_eq!(parse_self_stat("garbage"), None);
    }

    #[test]
    fn parses_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\nMax address space         unlimited            unlimited            bytes\n";
        assert_eq!(parse_limit(limits, "Max open files"), Some(Some(20000.0)));
        assert_eq!(parse_limit(limits, "Max address space"), Some(None));
        assert_eq!(parse_limit(limits, "Max cores"), None);
    }

    #[test]
    fn reads_own_process() {
        let mut out = Vec::new();
        process_metrics(&mut out, |p| std::fs::read_to_string(p));
        let names: Vec<&str> = out.iter().map(|f| f.name()).collect();
        for want in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }
}
