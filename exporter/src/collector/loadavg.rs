//! `loadavg`: the 1, 5 and 15 minute load averages from /proc/loadavg (`node_load1/5/15`).

use super::{parse_error, CollectError, Collector, Context, OpenFiles};
use fleetwatch_common::expfmt::{Family, MetricType};
use std::path::PathBuf;

pub fn parse(text: &str) -> Result<[f64; 3], String> {
    let mut f = text.split_ascii_whitespace();
    let mut out = [0.0; 3];
    for slot in &mut out {
        let field = f.next().ok_or("too few fields")?;
        *slot = field.parse().map_err(|_| format!("invalid load {field:?}"))?;
    }
    Ok(out)
}

pub struct Loadavg {
    path: PathBuf,
    files: OpenFiles,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    Ok(Box::new(Loadavg { path: ctx.paths.proc("loadavg"), files: OpenFiles::default() }))
}

impl Collector for Loadavg {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let loads = parse(&self.files.read(&self.path)?).map_err(|e| parse_error(&self.path, e))?;
        for ((name, help), v) in
            [("node_load1", "1m load average."), ("node_load5", "5m load average."), ("node_load15", "15m load average.")]
                .into_iter()
                .zip(loads)
        {
            out.push(Family::single(name, help, MetricType::Gauge, v));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_three_loads() {
        assert_eq!(parse("0.25 1.50 2.00 3/400 12345\n").unwrap(), [0.25, 1.5, 2.0]);
        assert!(parse("0.25 1.50\n").is_err());
        assert!(parse("a b c\n").is_err());
    }
}
