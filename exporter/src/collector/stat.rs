//! `stat`: kernel counters from /proc/stat (boot time, context switches, forks, interrupts,
//! running and blocked processes), as node_exporter's stat collector.

use super::{num, parse_error, CollectError, Collector, Context, OpenFiles};
use fleetwatch_common::expfmt::{Family, MetricType};
use std::path::PathBuf;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct KernelStat {
    pub boot_time: f64,
    pub context_switches: f64,
    pub forks: f64,
    pub interrupts: f64,
    pub procs_running: f64,
    pub procs_blocked: f64,
}

pub fn parse(text: &str) -> Result<KernelStat, String> {
    let mut s = KernelStat::default();
    let mut seen = 0;
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (f.next(), f.next()) else {
            continue;
        };
        let slot = match key {
            "btime" => &mut s.boot_time,
            "ctxt" => &mut s.context_switches,
            "processes" => &mut s.forks,
            "intr" => &mut s.interrupts,
            "procs_running" => &mut s.procs_running,
            "procs_blocked" => &mut s.procs_blocked,
            _ => continue,
        };
        *slot = num(value)?;
        seen += 1;
    }
    if seen < 6 {
        return Err("missing fields (btime, ctxt, processes, intr, procs_running, procs_blocked)".to_string());
    }
    Ok(s)
}

pub struct Stat {
    path: PathBuf,
    files: OpenFiles,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    Ok(Box::new(Stat { path: ctx.paths.proc("stat"), files: OpenFiles::default() }))
}

impl Collector for Stat {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let s = parse(&self.files.read(&self.path)?).map_err(|e| parse_error(&self.path, e))?;
        let families = [
            ("node_boot_time_seconds", "Node boot time, in unixtime.", MetricType::Gauge, s.boot_time),
            ("node_procs_running", "Number of processes in runnable state.", MetricType::Gauge, s.procs_running),
            ("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", MetricType::Gauge, s.procs_blocked),
            ("node_context_switches_total", "Total number of context switches.", MetricType::Counter, s.context_switches),
            ("node_forks_total", "Total number of forks.", MetricType::Counter, s.forks),
            ("node_intr_total", "Total number of interrupts serviced.", MetricType::Counter, s.interrupts),
        ];
        out.extend(families.into_iter().map(|(name, help, kind, v)| Family::single(name, help, kind, v)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_counters() {
        let text =
            "cpu 1 2 3 4\nintr 12345 1 2 3\nctxt 999\nbtime 1700000000\nprocesses 42\nprocs_running 3\nprocs_blocked 1\nsoftirq 5 1\n";
        let s = parse(text).unwrap();
        assert_eq!(
            s,
            KernelStat {
                boot_time: 1.7e9,
                context_switches: 999.0,
                forks: 42.0,
                interrupts: 12345.0,
                procs_running: 3.0,
                procs_blocked: 1.0
            }
        );
    }

    #[test]
    fn missing_fields_are_an_error() {
        assert!(parse("ctxt 1\n").is_err());
        assert!(parse("btime x\nctxt 1\nprocesses 1\nintr 1\nprocs_running 1\nprocs_blocked 1\n").is_err());
    }
}
