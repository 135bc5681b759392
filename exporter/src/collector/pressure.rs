//! `pressure`: pressure stall information from /proc/pressure (`node_pressure_*`), as
//! node_exporter's pressure collector: the `total=` stall times in seconds.

use super::{parse_error, CollectError, Collector, Context, OpenFiles};
use fleetwatch_common::expfmt::{Family, MetricType};
use std::path::PathBuf;

/// The `some` and `full` totals of one resource file, in seconds.
#[derive(Debug, Default, PartialEq)]
pub struct Pressure {
    pub some: Option<f64>,
    pub full: Option<f64>,
}

pub fn parse(text: &str) -> Result<Pressure, String> {
    let mut p = Pressure::default();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let kind = f.next().unwrap_or("");
        let total = f.find_map(|kv| kv.strip_prefix("total=")).ok_or_else(|| format!("no total in line {line:?}"))?;
        let micros: u64 = total.parse().map_err(|_| format!("invalid total {total:?}"))?;
        let seconds = Some(micros as f64 / 1e6);
        match kind {
            "some" => p.some = seconds,
            "full" => p.full = seconds,
            other => return Err(format!("unknown line kind {other:?}")),
        }
    }
    Ok(p)
}

pub struct PressureCollector {
    dir: PathBuf,
    files: OpenFiles,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    Ok(Box::new(PressureCollector { dir: ctx.paths.proc("pressure"), files: OpenFiles::default() }))
}

/// A family name and its help text.
type Named = (&'static str, &'static str);

/// (resource file, `some` metric name, its help, the `full` family if node_exporter exports one)
const FAMILIES: [(&str, &str, &str, Option<Named>); 3] = [
    ("cpu", "node_pressure_cpu_waiting_seconds_total", "Total time in seconds that processes have waited for CPU time", None),
    (
        "io",
        "node_pressure_io_waiting_seconds_total",
        "Total time in seconds that processes have waited due to IO congestion",
        Some(("node_pressure_io_stalled_seconds_total", "Total time in seconds no process could make progress due to IO congestion")),
    ),
    (
        "memory",
        "node_pressure_memory_waiting_seconds_total",
        "Total time in seconds that processes have waited for memory",
        Some((
            "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion",
        )),
    ),
];

impl Collector for PressureCollector {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        for (resource, some_name, some_help, full) in FAMILIES {
            let path = self.dir.join(resource);
            let text = match self.files.read_io(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(CollectError::NoData(format!("{} does not exist (kernel without PSI)", path.display())));
                }
                Err(source) => return Err(CollectError::Io { path, source }),
            };
            let p = parse(&text).map_err(|e| parse_error(&path, e))?;
            if let Some(v) = p.some {
                out.push(Family::single(some_name, some_help, MetricType::Counter, v));
            }
            if let (Some((name, help)), Some(v)) = (full, p.full) {
                out.push(Family::single(name, help, MetricType::Counter, v));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_some_and_full() {
        let p =
            parse("some avg10=0.30 avg60=2.41 avg300=1.47 total=7266840\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\n").unwrap();
        assert_eq!(p, Pressure { some: Some(7.26684), full: Some(1.5) });
        assert!(parse("some avg10=0.30\n").is_err());
        assert!(parse("half total=1\n").is_err());
    }
}
