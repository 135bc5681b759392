//! `meminfo`: every /proc/meminfo field as `node_memory_<Field>[_bytes]`, named exactly as
//! node_exporter names them (`Active(anon)` becomes `Active_anon`; kB values become bytes).

use super::{num, parse_error, CollectError, Collector, Context, OpenFiles};
use fleetwatch_common::expfmt::{Family, MetricType};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Parses /proc/meminfo into (metric suffix, value) pairs in file order.
/// One /proc/meminfo line: the key as written (`Active(anon):`), whether it is in kB, and the
/// value in the metric's unit (bytes for kB fields).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field<'a> {
    pub raw_key: &'a str,
    pub kb: bool,
    pub value: f64,
}

/// Parses /proc/meminfo without allocating per field.
pub fn parse(text: &str) -> Result<Vec<Field<'_>>, String> {
    let mut out = Vec::with_capacity(64);
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let Some(raw_key) = parts.next() else { continue };
        let value = num(parts.next().ok_or_else(|| format!("no value in line {line:?}"))?)?;
        match parts.next() {
            Some("kB") => out.push(Field { raw_key, kb: true, value: value * 1024.0 }),
            Some(unit) => return Err(format!("unknown unit {unit:?} in line {line:?}")),
            None => out.push(Field { raw_key, kb: false, value }),
        }
    }
    Ok(out)
}

/// node_exporter's name for a field: `Active(anon):` in kB becomes `Active_anon_bytes`.
pub fn metric_suffix(raw_key: &str, kb: bool) -> String {
    let key = raw_key.strip_suffix(':').unwrap_or(raw_key).replace('(', "_").replace(')', "");
    if kb {
        format!("{key}_bytes")
    } else {
        key
    }
}

/// The family name and help for a field, built once per key for the life of the process.
/// The keys are the kernel's fixed set of /proc/meminfo fields, so this stays small.
fn family_names(field: &Field) -> (&'static str, &'static str) {
    static NAMES: Mutex<BTreeMap<String, (&'static str, &'static str)>> = Mutex::new(BTreeMap::new());
    let mut names = match NAMES.lock() {
        Ok(n) => n,
        Err(p) => p.into_inner(),
    };
    // A key's unit never changes, so the raw key alone identifies the family.
    if let Some(n) = names.get(field.raw_key) {
        return *n;
    }
    let suffix = metric_suffix(field.raw_key, field.kb);
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let n = (leak(format!("node_memory_{suffix}")), leak(format!("Memory information field {suffix}.")));
    names.insert(field.raw_key.to_string(), n);
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
        let text = self.files.read(&self.path)?;
        let fields = parse(&text).map_err(|e| parse_error(&self.path, e))?;
        for field in &fields {
            let (name, help) = family_names(field);
            out.push(Family::single(name, help, MetricType::Gauge, field.value));
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
        let got: Vec<(String, f64)> = parse(text).unwrap().iter().map(|f| (metric_suffix(f.raw_key, f.kb), f.value)).collect();
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
