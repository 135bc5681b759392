//! `check metrics`: parse an exposition strictly (duplicate series included) and lint it with the
//! rules `promtool check metrics` applies (help text, counter suffixes, base units, abbreviated
//! units, type names in metric names, camelCase, reserved labels and suffixes, colons).

use fleetwatch_common::expfmt::{Entry, FamilyType, Label, ScrapeFormat, ScrapeParser};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// A lint finding, printed as `metric text` like promtool.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub metric: String,
    pub text: String,
}

#[derive(Debug, Default)]
struct FamilyInfo {
    kind: Option<FamilyType>,
    help: bool,
    label_names: BTreeSet<String>,
}

/// Parses and lints; `Err` is a parse error (promtool's exit code 1).
pub fn check(body: &str, format: ScrapeFormat) -> Result<Vec<Problem>, String> {
    let families = collect(body, format)?;
    let mut problems = Vec::new();
    for (name, info) in &families {
        lint_family(name, info, &mut problems);
    }
    problems.sort();
    problems.dedup();
    Ok(problems)
}

fn collect(body: &str, format: ScrapeFormat) -> Result<BTreeMap<String, FamilyInfo>, String> {
    let mut parser = ScrapeParser::new(body, format);
    let mut labels: Vec<Label> = Vec::new();
    let mut families: BTreeMap<String, FamilyInfo> = BTreeMap::new();
    let mut seen = HashSet::new();
    while let Some(entry) = parser.next(&mut labels).map_err(|e| e.to_string())? {
        match entry {
            Entry::Type { name, kind } => families.entry(name.to_string()).or_default().kind = Some(kind),
            Entry::Help { name, .. } => families.entry(name.to_string()).or_default().help = true,
            Entry::Unit { .. } => {}
            Entry::Sample(s) => {
                let mut key: Vec<(&str, &str)> = labels.iter().map(|l| (l.name, l.value.as_ref())).collect();
                key.sort();
                let canonical = format!("{}{:?}", s.name, key);
                if !seen.insert(canonical) {
                    return Err(format!("line {}: duplicate series {}", parser.line(), s.series));
                }
                let family = family_of(&families, s.name);
                let info = families.entry(family).or_default();
                info.label_names.extend(labels.iter().map(|l| l.name.to_string()));
            }
        }
    }
    Ok(families)
}

/// The family a sample belongs to: its name, or the typed histogram/summary family it suffixes.
fn family_of(families: &BTreeMap<String, FamilyInfo>, sample: &str) -> String {
    for suffix in ["_bucket", "_count", "_sum", "_total", "_created", "_gcount", "_gsum", "_info"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if families.get(base).is_some_and(|f| f.kind.is_some_and(|k| k != FamilyType::Unknown && k != FamilyType::Gauge)) {
                return base.to_string();
            }
        }
    }
    sample.to_string()
}

/// Units as promtool's linter knows them: each unit with its base unit.
const UNITS: &[(&str, &str)] = &[
    ("amperes", "amperes"),
    ("bytes", "bytes"),
    ("celsius", "celsius"),
    ("grams", "grams"),
    ("joules", "joules"),
    ("kelvin", "kelvin"),
    ("meters", "meters"),
    ("metres", "metres"),
    ("seconds", "seconds"),
    ("volts", "volts"),
    ("minutes", "seconds"),
    ("hours", "seconds"),
    ("days", "seconds"),
    ("weeks", "seconds"),
    ("kelvins", "kelvin"),
    ("fahrenheit", "celsius"),
    ("rankine", "celsius"),
    ("inches", "meters"),
    ("yards", "meters"),
    ("miles", "meters"),
    ("bits", "bytes"),
    ("calories", "joules"),
    ("pounds", "grams"),
    ("ounces", "grams"),
];

const UNIT_PREFIXES: &[&str] = &[
    "pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi", "mega", "mibi", "giga", "gibi", "tera", "tebi",
    "peta", "pebi",
];

const ABBREVIATIONS: &[&str] = &["s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d"];

/// The first unit in the name's `_`-separated parts (possibly with an SI prefix), and its base.
fn metric_unit(name: &str) -> Option<(&str, &'static str)> {
    for part in name.split('_') {
        if let Some((_, base)) = UNITS.iter().find(|(u, _)| *u == part) {
            return Some((part, base));
        }
        for prefix in UNIT_PREFIXES {
            if let Some(rest) = part.strip_prefix(prefix) {
                if let Some((_, base)) = UNITS.iter().find(|(u, _)| *u == rest) {
                    return Some((part, base));
                }
            }
        }
    }
    None
}

fn lint_family(name: &str, info: &FamilyInfo, out: &mut Vec<Problem>) {
    let mut add = |text: String| out.push(Problem { metric: name.to_string(), text });
    let kind = info.kind.unwrap_or(FamilyType::Unknown);
    let untyped = kind == FamilyType::Unknown;
    if !info.help {
        add("no help text".into());
    }
    let counter = kind == FamilyType::Counter;
    if counter && !name.ends_with("_total") {
        add("counter metrics should have \"_total\" suffix".into());
    }
    if !untyped && !counter && name.ends_with("_total") {
        add("non-counter metrics should not have \"_total\" suffix".into());
    }
    if !untyped {
        reserved_names(name, kind, info, &mut add);
    }
    let lower = name.to_lowercase();
    for typename in ["counter", "gauge", "histogram", "summary", "gauge_histogram"] {
        if lower.contains(&format!("_{typename}_")) || lower.ends_with(&format!("_{typename}")) {
            add(format!("metric name should not include type '{typename}'"));
        }
    }
    if let Some((unit, base)) = metric_unit(name) {
        if unit != base {
            add(format!("use base unit \"{base}\" instead of \"{unit}\""));
        }
    }
    if ABBREVIATIONS.iter().any(|a| lower.contains(&format!("_{a}_")) || lower.ends_with(&format!("_{a}"))) {
        add("metric names should not contain abbreviated units".into());
    }
    if name.contains(':') {
        add("metric names should not contain ':'".into());
    }
    if is_camel_case(name) {
        add("metric names should be written in 'snake_case' not 'camelCase'".into());
    }
    if info.label_names.iter().any(|l| is_camel_case(l)) {
        add("label names should be written in 'snake_case' not 'camelCase'".into());
    }
}

/// `_bucket`/`_count`/`_sum` suffixes and `le`/`quantile` labels on families of other types.
fn reserved_names(name: &str, kind: FamilyType, info: &FamilyInfo, add: &mut impl FnMut(String)) {
    let histogram = kind.metric_type() == fleetwatch_common::expfmt::MetricType::Histogram;
    let summary = kind == FamilyType::Summary;
    if !histogram && name.ends_with("_bucket") {
        add("non-histogram metrics should not have \"_bucket\" suffix".into());
    }
    for suffix in ["_count", "_sum"] {
        if !histogram && !summary && name.ends_with(suffix) {
            add(format!("non-histogram and non-summary metrics should not have \"{suffix}\" suffix"));
        }
    }
    if !histogram && info.label_names.contains("le") {
        add("non-histogram metrics should not have \"le\" label".into());
    }
    if !summary && info.label_names.contains("quantile") {
        add("non-summary metrics should not have \"quantile\" label".into());
    }
}

/// A lower-case letter directly followed by an upper-case one, as promtool's check does.
fn is_camel_case(s: &str) -> bool {
    s.as_bytes().windows(2).any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(body: &str) -> Vec<String> {
        check(body, ScrapeFormat::Text).unwrap().into_iter().map(|p| format!("{} {}", p.metric, p.text)).collect()
    }

    #[test]
    fn clean_input_has_no_problems() {
        assert!(texts("# HELP a_total A.\n# TYPE a_total counter\na_total 1\n").is_empty());
    }

    #[test]
    fn common_problems() {
        let t = texts("# TYPE requests counter\nrequests 1\n# HELP latency_milliseconds L.\n# TYPE latency_milliseconds gauge\nlatency_milliseconds 1\n");
        assert!(t.contains(&"requests no help text".to_string()), "{t:?}");
        assert!(t.contains(&"requests counter metrics should have \"_total\" suffix".to_string()), "{t:?}");
        assert!(t.contains(&"latency_milliseconds use base unit \"seconds\" instead of \"milliseconds\"".to_string()), "{t:?}");
        let t = texts("# HELP memFree M.\n# TYPE memFree gauge\nmemFree{someLabel=\"x\"} 1\n");
        assert!(t.iter().any(|p| p.contains("'snake_case' not 'camelCase'") && p.starts_with("memFree metric")), "{t:?}");
        assert!(t.iter().any(|p| p.contains("label names should be written")), "{t:?}");
    }

    #[test]
    fn histogram_samples_belong_to_their_family() {
        let body = "# HELP h_seconds H.\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 1\nh_seconds_count 1\n";
        assert!(texts(body).is_empty(), "{:?}", texts(body));
    }

    #[test]
    fn duplicates_and_syntax_errors_are_errors() {
        assert!(check("a 1\na 2\n", ScrapeFormat::Text).unwrap_err().contains("duplicate"));
        assert!(check("a{b=\"1\",c=\"2\"} 1\na{c=\"2\",b=\"1\"} 2\n", ScrapeFormat::Text).is_err());
        assert!(check("a{ 1\n", ScrapeFormat::Text).is_err());
    }
}
