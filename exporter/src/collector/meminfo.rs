//! `meminfo`: every /proc/meminfo field as `node_memory_<Field>[_bytes]`, named exactly as
//! node_exporter names them (`Active(anon)` becomes `Active_anon`; kB values become bytes).

use super::{num, parse_error, CollectError, Collector, Context, OpenFiles};
use fleetwatch_common::expfmt::{Family, MetricType};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Parses /proc/meminfo into (metric suffix, value) pairs in file order.
pub fn parse(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let Some(key) = parts.next() else { continue };
        let value = num(parts.next().ok_or_else(|| format!("no value in line {line:?}"))?)?;
        let key = key.strip_suffix(':').unwrap_or(key).replace('(', "_").replace(')', "");
        match parts.next() {
            Some("kB") => out.push((format!("{key}_bytes"), value * 1024.0)),
            Some(unit) => return Err(format!("unknown unit {unit:?} in line {line:?}")),
            None => out.push((key, value)),
        }
    }
    Ok(out)
}

/// The family name and help for a meminfo key, built once per key for the life of the process.
/// The keys are the kernel's fixed set of /proc/meminfo fields, so this stays small.
fn family_names(key: &str) -> (&'static str, &'static str) {
    static NAMES: Mutex<BTreeMap<String, (&'static str, &'static str)>> = Mutex::new(BTreeMap::new());
    let mut names = match NAMES.lock() {
        Ok(n) => n,
        Err(p) => p.into_inner(),
    };
    if let Some(n) = names.get(key) {
        return *n;
    }
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let n = (leak(format!("node_memory_{key}")), leak(format!("Memory information field {key}.")));
    names.insert(key.to_string(), n);
    n
}

pub struct Meminfo {
    path: PathBuf,
    files: OpenFiles,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    Ok(Box::new(Meminfo { path: ctx.paths.proc("meminfo"), files: OpenFiles::default() }))
}

impl Collector for Meminfo {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let fields = parse(&self.files.read(&self.path)?).map_err(|e| parse_error(&self.path, e))?;
        for (key, value) in fields {
            let (name, help) = family_names(&key);
            out.push(Family::single(name, help, MetricType::Gauge, value));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fields_like_node_exporter() {
        let text = "MemTotal:       24683936 kB\nActive(anon):      12 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n";
        let got = parse(text).unwrap();
        assert_eq!(
            got,
            vec![
                ("MemTotal_bytes".to_string(), 24683936.0 * 1024.0),
                ("Active_anon_bytes".to_string(), 12288.0),
                ("HugePages_Total".to_string(), 0.0),
                ("Hugepagesize_bytes".to_string(), 2048.0 * 1024.0),
            ]
        );
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(parse("MemTotal:\n").is_err());
        assert!(parse("MemTotal: 1 MB\n").is_err());
        assert!(parse("MemTotal: lots kB\n").is_err());
    }
}
