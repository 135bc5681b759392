//! `cpu`: per-CPU time by mode from /proc/stat, as node_exporter's cpu collector
//! (`node_cpu_seconds_total`, `node_cpu_guest_seconds_total`).

use super::{num, parse_error, CollectError, Collector, Context, OpenFiles};
use fleetwatch_common::expfmt::Family;
use std::path::PathBuf;

/// The kernel's USER_HZ: /proc/stat counts in 1/100 s on every Linux ABI.
pub const USER_HZ: f64 = 100.0;

const MODES: [&str; 8] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];

/// One `cpuN` line: the eight modes, then guest and guest_nice, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuTimes {
    pub cpu: String,
    pub modes: [f64; 8],
    pub guest: f64,
    pub guest_nice: f64,
}

/// Parses the per-CPU lines of /proc/stat (the aggregate `cpu` line is skipped).
pub fn parse(text: &str) -> Result<Vec<CpuTimes>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(label) = fields.next() else { continue };
        let Some(id) = label.strip_prefix("cpu") else {
            continue;
        };
        if id.is_empty() {
            continue;
        }
        let values: Vec<f64> = fields.map(num).collect::<Result<_, _>>()?;
        if values.len() < 4 {
            return Err(format!("too few fields for {label}"));
        }
        let get = |i: usize| values.get(i).copied().unwrap_or(0.0) / USER_HZ;
        let mut modes = [0.0; 8];
        for (i, m) in modes.iter_mut().enumerate() {
            *m = get(i);
        }
        out.push(CpuTimes { cpu: id.to_string(), modes, guest: get(8), guest_nice: get(9) });
    }
    Ok(out)
}

pub struct Cpu {
    path: PathBuf,
    files: OpenFiles,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    Ok(Box::new(Cpu { path: ctx.paths.proc("stat"), files: OpenFiles::default() }))
}

impl Collector for Cpu {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let cpus = parse(&self.files.read(&self.path)?).map_err(|e| parse_error(&self.path, e))?;
        let mut seconds = Family::counter("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.");
        let mut guest = Family::counter("node_cpu_guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.");
        for c in &cpus {
            for (mode, value) in MODES.iter().zip(c.modes) {
                seconds.add(&[("cpu", &c.cpu), ("mode", mode)], value);
            }
            guest.add(&[("cpu", &c.cpu), ("mode", "nice")], c.guest_nice);
            guest.add(&[("cpu", &c.cpu), ("mode", "user")], c.guest);
        }
        out.push(seconds);
        out.push(guest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_per_cpu_lines() {
        let text = "cpu  10 20 30 40 50 60 70 80 90 100\ncpu0 100 2 300 4000 5 6 7 8 9 10\ncpu1 1 0 0 0\nintr 5 1 2\n";
        let cpus = parse(text).unwrap();
        assert_eq!(cpus.len(), 2);
        assert_eq!(cpus[0].cpu, "0");
        assert_eq!(cpus[0].modes, [1.0, 0.02, 3.0, 40.0, 0.05, 0.06, 0.07, 0.08]);
        assert_eq!(cpus[0].guest, 0.09);
        assert_eq!(cpus[0].guest_nice, 0.1);
        assert_eq!(cpus[1].modes[0], 0.01);
        assert_eq!(cpus[1].guest, 0.0);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("cpu0 1 x 3 4\n").is_err());
        assert!(parse("cpu0 1 2\n").is_err());
    }
}
