//! promtool's rule unit-test file format (`promtool test rules`): parsing the YAML, the series
//! descriptions in expanding notation, loading input series the way promtool's lazy loader does, and running
//! `promql_expr_test` cases with promtool's comparison and messages. Alert rule tests are parsed into structs
//! for the rule evaluator to run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::eval::{Engine, Value};
use crate::gomath;
use crate::labels::{Labels, METRIC_NAME};
use crate::storage::{stale_nan, MemStorage, Sample};

/// A problem with a test file itself (not a failing test).
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    #[error("reading {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{0}")]
    Yaml(String),
    #[error("{0}")]
    Duration(String),
    #[error("{0}")]
    Series(String),
}

/// A whole unit-test file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(default)]
    pub rule_files: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub evaluation_interval: Option<i64>,
    #[serde(default)]
    pub group_eval_order: Vec<String>,
    #[serde(default)]
    pub tests: Vec<TestGroup>,
}

/// One `tests:` entry: input series and the cases run against them.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestGroup {
    /// The spacing of input samples, in milliseconds.
    #[serde(default, deserialize_with = "de_duration")]
    pub interval: i64,
    #[serde(default)]
    pub input_series: Vec<InputSeries>,
    #[serde(default)]
    pub alert_rule_test: Vec<AlertTestCase>,
    #[serde(default)]
    pub promql_expr_test: Vec<PromqlTestCase>,
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub external_url: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    pub series: String,
    #[serde(default)]
    pub values: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AlertTestCase {
    #[serde(default, deserialize_with = "de_duration")]
    pub eval_time: i64,
    #[serde(default)]
    pub alertname: String,
    #[serde(default)]
    pub exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExpAlert {
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PromqlTestCase {
    pub expr: String,
    #[serde(default, deserialize_with = "de_duration")]
    pub eval_time: i64,
    #[serde(default)]
    pub exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExpSample {
    #[serde(default)]
    pub labels: String,
    #[serde(default)]
    pub value: f64,
}

fn yaml_scalar_string(v: serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = serde_yaml_ng::Value::deserialize(d)?;
    if v.is_null() {
        return Ok(0);
    }
    let s = yaml_scalar_string(v).ok_or_else(|| serde::de::Error::custom("duration must be a string"))?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    de_duration(d).map(Some)
}

/// Parses a Prometheus duration (`1y2w3d4h5m6s7ms`, or `0`) into milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    match s {
        "0" => return Ok(0),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let bad = || format!("not a valid duration string: {}", crate::aggregate::go_quote(s));
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let unit = if rest.starts_with("ms") {
            6
        } else {
            match UNITS.iter().position(|(u, _)| rest.starts_with(u)) {
                Some(i) => i,
                None => return Err(bad()),
            }
        };
        if unit < next_unit {
            return Err(bad());
        }
        next_unit = unit + 1;
        rest = &rest[UNITS[unit].0.len()..];
        total = n.checked_mul(UNITS[unit].1).and_then(|x| total.checked_add(x)).ok_or_else(|| "duration out of range".to_string())?;
    }
    Ok(total)
}

/// Formats milliseconds as Prometheus's `model.Duration.String()` does.
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut ms = ms;
    let mut r = String::new();
    let units: [(&str, i64, bool); 7] = [
        ("y", 365 * 24 * 3_600_000, true),
        ("w", 7 * 24 * 3_600_000, true),
        ("d", 24 * 3_600_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1_000, false),
        ("ms", 1, false),
    ];
    for (u, mult, exact) in units {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            r.push_str(&format!("{v}{u}"));
            ms -= v * mult;
        }
    }
    r
}

impl TestFile {
    pub fn from_yaml(s: &str) -> Result<TestFile, TestFileError> {
        serde_yaml_ng::from_str(s).map_err(|e| TestFileError::Yaml(e.to_string()))
    }

    pub fn load(path: &Path) -> Result<TestFile, TestFileError> {
        let s = std::fs::read_to_string(path).map_err(|err| TestFileError::Io { path: path.display().to_string(), err })?;
        Self::from_yaml(&s)
    }

    /// The evaluation interval in milliseconds (default 1m).
    pub fn eval_interval_ms(&self) -> i64 {
        match self.evaluation_interval {
            Some(v) if v > 0 => v,
            _ => 60_000,
        }
    }

    /// `rule_files` with relative paths joined to `base_dir` (the test file's directory).
    pub fn resolved_rule_files(&self, base_dir: &Path) -> Vec<PathBuf> {
        self.rule_files.iter().map(|f| if Path::new(f).is_absolute() { PathBuf::from(f) } else { base_dir.join(f) }).collect()
    }

    /// An engine configured as promtool configures its own for this file.
    pub fn engine(&self) -> Engine {
        Engine { subquery_step_ms: self.eval_interval_ms(), ..Engine::default() }
    }
}

impl TestGroup {
    /// The latest `eval_time` among the group's alert and PromQL tests.
    pub fn max_eval_time(&self) -> i64 {
        let a = self.alert_rule_test.iter().map(|t| t.eval_time);
        let p = self.promql_expr_test.iter().map(|t| t.eval_time);
        a.chain(p).max().unwrap_or(0).max(0)
    }

    /// All input series expanded to samples (a series defined twice keeps its last definition).
    pub fn series(&self) -> Result<Vec<(Labels, Vec<Sample>)>, TestFileError> {
        let mut by_labels: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for s in &self.input_series {
            let (labels, values) = parse_series_desc(&format!("{} {}", s.series, s.values)).map_err(TestFileError::Series)?;
            let mut samples = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                if let Some(v) = v {
                    samples.push(Sample { t: (i as i64).saturating_mul(self.interval), v: *v });
                }
            }
            by_labels.insert(labels, samples);
        }
        Ok(by_labels.into_iter().collect())
    }

    /// The store as promtool's lazy loader leaves it for the PromQL tests: samples are loaded up to the last
    /// evaluation step (a multiple of `eval_interval_ms`) not after the group's latest `eval_time`.
    pub fn load_storage(&self, eval_interval_ms: i64) -> Result<MemStorage, TestFileError> {
        let mut st = MemStorage::new();
        let max = self.max_eval_time();
        let step = eval_interval_ms.max(1);
        let loaded_till = (max / step) * step;
        for (l, samples) in self.series()? {
            let kept: Vec<Sample> = samples.into_iter().filter(|s| s.t <= loaded_till).collect();
            if !kept.is_empty() {
                st.set_series(l, kept);
            }
        }
        Ok(st)
    }
}

/// Runs one `promql_expr_test` case; the error is promtool's message for a failure.
pub fn run_promql_expr_test(engine: &Engine, storage: &MemStorage, case: &PromqlTestCase) -> Result<(), String> {
    let time = format_duration(case.eval_time);
    let q = crate::aggregate::go_quote(&case.expr);
    let got = crate::parse(&case.expr)
        .map_err(|e| e.to_string())
        .and_then(|expr| engine.instant(storage, &expr, case.eval_time).map_err(|e| e.to_string()))
        .and_then(|v| match v {
            Value::Vector(v) => {
                Ok(v.into_iter().map(|(l, v)| (l.pairs().iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(), v)).collect())
            }
            Value::Scalar(v) => Ok(vec![(Vec::new(), v)]),
            _ => Err("rule result is not a vector or scalar".to_string()),
        });
    let mut got: Vec<(Vec<(String, String)>, f64)> = match got {
        Ok(g) => g,
        Err(e) => return Err(format!("    expr: {q}, time: {time}, err: {e}")),
    };
    let mut exp = Vec::with_capacity(case.exp_samples.len());
    for s in &case.exp_samples {
        match parse_metric(&s.labels) {
            Ok(l) => exp.push((l, s.value)),
            Err(e) => {
                return Err(format!("    expr: {q}, time: {time}, err: labels {}: {e}", crate::aggregate::go_quote(&s.labels)));
            }
        }
    }
    let cmp = |a: &(Vec<(String, String)>, f64), b: &(Vec<(String, String)>, f64)| a.0.cmp(&b.0);
    exp.sort_by(cmp);
    got.sort_by(cmp);
    let equal = exp.len() == got.len() && exp.iter().zip(got.iter()).all(|(e, g)| e.0 == g.0 && e.1 == g.1);
    if equal {
        return Ok(());
    }
    Err(format!("    expr: {q}, time: {time},\n        exp: {}\n        got: {}", samples_string(&exp), samples_string(&got)))
}

fn samples_string(s: &[(Vec<(String, String)>, f64)]) -> String {
    if s.is_empty() {
        return "nil".into();
    }
    s.iter()
        .map(|(l, v)| {
            let mut out = String::from("{");
            for (i, (n, val)) in l.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(n);
                out.push('=');
                crate::labels::push_quoted(&mut out, val);
            }
            out.push_str("} ");
            out.push_str(&gomath::format_float_e(*v));
            out
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The outcome of running a file's PromQL tests.
#[derive(Debug, Default, Clone)]
pub struct FileReport {
    pub cases: usize,
    pub failures: Vec<String>,
}

/// Runs every `promql_expr_test` in a file (alert tests and rule files are not evaluated here).
pub fn run_file(path: &Path) -> Result<FileReport, TestFileError> {
    let tf = TestFile::load(path)?;
    let engine = tf.engine();
    let mut report = FileReport::default();
    for g in &tf.tests {
        let st = g.load_storage(tf.eval_interval_ms())?;
        for case in &g.promql_expr_test {
            report.cases += 1;
            if let Err(e) = run_promql_expr_test(&engine, &st, case) {
                let name = if g.name.is_empty() { String::new() } else { format!("    name: {},\n", g.name) };
                report.failures.push(format!("{name}{e}"));
            }
        }
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------------------------
// Lexing of metric descriptions and series values.

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.pos += 1;
        }
    }

    fn ident(&mut self, allow_colon: bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':') {
                self.pos += 1;
            } else {
                break;
            }
        }
        &self.s[start..self.pos]
    }

    fn err(&self, what: &str) -> String {
        format!("parse error at char {}: {what}", self.pos + 1)
    }

    /// A quoted string with Go escapes.
    fn string(&mut self) -> Result<String, String> {
        let q = self.bump().ok_or_else(|| self.err("expected string"))?;
        if !matches!(q, '"' | '\'' | '`') {
            return Err(self.err("expected string"));
        }
        let mut out = String::new();
        loop {
            let c = self.bump().ok_or_else(|| self.err("unterminated quoted string"))?;
            if c == q {
                return Ok(out);
            }
            if c == '\\' && q != '`' {
                let e = self.bump().ok_or_else(|| self.err("unterminated quoted string"))?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' | '"' | '\'' => out.push(e),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let start = self.pos;
                        for _ in 0..n {
                            self.bump();
                        }
                        let code =
                            u32::from_str_radix(&self.s[start..self.pos.min(self.s.len())], 16).map_err(|_| self.err("invalid escape"))?;
                        out.push(char::from_u32(code).ok_or_else(|| self.err("invalid escape"))?);
                    }
                    d if d.is_digit(8) => {
                        let start = self.pos - 1;
                        self.bump();
                        self.bump();
                        let code =
                            u32::from_str_radix(&self.s[start..self.pos.min(self.s.len())], 8).map_err(|_| self.err("invalid escape"))?;
                        out.push(char::from_u32(code).ok_or_else(|| self.err("invalid escape"))?);
                    }
                    _ => return Err(self.err("unknown escape sequence")),
                }
            } else {
                out.push(c);
            }
        }
    }
}

/// Parses a metric description `name{a="b", ...}` (either part optional) into pairs sorted by name, keeping
/// empty values as Prometheus's `ParseMetric` does.
pub fn parse_metric(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut c = Cursor { s, pos: 0 };
    let pairs = metric(&mut c)?;
    c.skip_ws();
    if c.peek().is_some() {
        return Err(c.err("unexpected input after metric"));
    }
    Ok(pairs)
}

fn metric(c: &mut Cursor) -> Result<Vec<(String, String)>, String> {
    c.skip_ws();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let name = match c.peek() {
        Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' => Some(c.ident(true).to_string()),
        _ => None,
    };
    c.skip_ws();
    if c.peek() == Some('{') {
        c.bump();
        loop {
            c.skip_ws();
            if c.peek() == Some('}') {
                c.bump();
                break;
            }
            let n = c.ident(false).to_string();
            if n.is_empty() || n.as_bytes()[0].is_ascii_digit() {
                return Err(c.err("expected label name"));
            }
            c.skip_ws();
            if c.bump() != Some('=') {
                return Err(c.err("expected \"=\""));
            }
            c.skip_ws();
            let v = c.string()?;
            pairs.push((n, v));
            c.skip_ws();
            match c.bump() {
                Some(',') => {}
                Some('}') => break,
                _ => return Err(c.err("expected \",\" or \"}\"")),
            }
        }
    }
    if let Some(n) = name {
        pairs.retain(|(k, _)| k != METRIC_NAME);
        pairs.push((METRIC_NAME.to_string(), n));
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(pairs)
}

/// Parses a series description `metric values...` in promtool's expanding notation; `None` marks an omitted
/// sample (`_`).
pub fn parse_series_desc(line: &str) -> Result<(Labels, Vec<Option<f64>>), String> {
    let mut c = Cursor { s: line, pos: 0 };
    let pairs = metric(&mut c)?;
    let labels = Labels::from_pairs(pairs);
    let mut values = Vec::new();
    let rest = &line[c.pos..];
    for item in rest.split_whitespace() {
        expand_item(item, &mut values).map_err(|e| format!("invalid series values {item:?}: {e}"))?;
    }
    Ok((labels, values))
}

/// The most samples one series description may expand to.
const MAX_SERIES_VALUES: u64 = 10_000_000;

fn check_repeat(n: u64, out: &[Option<f64>]) -> Result<usize, String> {
    if n.saturating_add(out.len() as u64) >= MAX_SERIES_VALUES {
        return Err(format!("more than {MAX_SERIES_VALUES} values"));
    }
    Ok(n as usize)
}

fn expand_item(item: &str, out: &mut Vec<Option<f64>>) -> Result<(), String> {
    if item == "_" {
        out.push(None);
        return Ok(());
    }
    if let Some(n) = item.strip_prefix("_x") {
        let n: u64 = n.parse().map_err(|_| "invalid repetition".to_string())?;
        let n = check_repeat(n, out)?;
        out.extend(std::iter::repeat_n(None, n));
        return Ok(());
    }
    // An identifier runs over all alphanumerics, so "stalex2" or "Infx3" are single (invalid) words, as in
    // the PromQL lexer; words start at the item's start or after a sign.
    let bytes = item.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i].is_ascii_alphabetic() && (i == 0 || bytes[i - 1] == b'+' || bytes[i - 1] == b'-') {
            let rest = &item[i..];
            let word_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            let word = &rest[..word_len];
            if !(word == "stale" || word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("nan")) {
                return Err(format!("unexpected identifier {word:?} in series values, expected number or \"stale\""));
            }
        }
    }
    // value [signed_number] [x uint]
    let (head, times) = match split_times(item) {
        Some((h, t)) => (h, Some(t.parse::<u64>().map_err(|_| "invalid repetition".to_string())?)),
        None => (item, None),
    };
    let (first, delta) = split_value_delta(head)?;
    let mut v = parse_series_value(first)?;
    match (delta, times) {
        (None, None) => out.push(Some(v)),
        (None, Some(n)) => {
            let n = check_repeat(n, out)?;
            out.extend(std::iter::repeat_n(Some(v), n + 1));
        }
        (Some(d), Some(n)) => {
            let d = parse_signed_number(d)?;
            for _ in 0..=check_repeat(n, out)? {
                out.push(Some(v));
                v += d;
            }
        }
        (Some(_), None) => return Err("expected \"x\" after increment".into()),
    }
    Ok(())
}

/// Splits `headxN` at the repetition marker: an `x` followed only by digits, after a value.
fn split_times(item: &str) -> Option<(&str, &str)> {
    let i = item.rfind('x')?;
    let (h, t) = (&item[..i], &item[i + 1..]);
    if h.is_empty() || t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((h, t))
}

/// Splits `value` from a following signed increment (`1+2`, `-1-2`, `1e-3+1`).
fn split_value_delta(s: &str) -> Result<(&str, Option<&str>), String> {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    while i < b.len() {
        let c = b[i];
        if (c == b'+' || c == b'-') && !(i > 0 && (b[i - 1] == b'e' || b[i - 1] == b'E') && b[..i].iter().any(|x| x.is_ascii_digit())) {
            return Ok((&s[..i], Some(&s[i..])));
        }
        i += 1;
    }
    Ok((s, None))
}

fn parse_series_value(s: &str) -> Result<f64, String> {
    if s == "stale" {
        return Ok(stale_nan());
    }
    parse_signed_number(s)
}

fn parse_signed_number(s: &str) -> Result<f64, String> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let v = parse_number(body)?;
    Ok(if neg { -v } else { v })
}

/// A number as the PromQL lexer reads it in series values (Go's `ParseInt(s, 0, 64)`, then `ParseFloat`).
fn parse_number(s: &str) -> Result<f64, String> {
    let lower = s.to_ascii_lowercase();
    if lower == "inf" {
        return Ok(f64::INFINITY);
    }
    if lower == "nan" {
        return Ok(gomath::nan());
    }
    let b = s.as_bytes();
    let valid = !b.is_empty()
        && (b[0].is_ascii_digit() || (b[0] == b'.' && b.len() > 1 && b[1].is_ascii_digit()))
        && b.iter().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !valid {
        return Err(format!("unexpected {s:?} in series values, expected number or \"stale\""));
    }
    if b.iter().all(|c| c.is_ascii_digit()) {
        let parsed = if b.len() > 1 && b[0] == b'0' { i64::from_str_radix(&s[1..], 8).ok() } else { s.parse::<i64>().ok() };
        if let Some(i) = parsed {
            return Ok(i as f64);
        }
    }
    gomath::parse_float(s).ok_or_else(|| format!("invalid number {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::is_stale_nan;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap(), 300_000);
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("1d").unwrap(), 86_400_000);
        assert_eq!(parse_duration("100ms").unwrap(), 100);
        assert!(parse_duration("5m1h").is_err());
        assert!(parse_duration("5").is_err());
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(90 * 86_400_000), "90d");
        assert_eq!(format_duration(14 * 86_400_000), "2w");
    }

    #[test]
    fn series_expansion() {
        let (l, v) = parse_series_desc("up{job=\"a\"} 1+1x3 _ 5 _x2 stale -1-2x1 3x2 Inf -Inf").unwrap();
        assert_eq!(l.to_prom_string(), "{__name__=\"up\", job=\"a\"}");
        let got: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
        assert_eq!(&got[..9], &["Some(1.0)", "Some(2.0)", "Some(3.0)", "Some(4.0)", "None", "Some(5.0)", "None", "None", "Some(NaN)"]);
        assert!(is_stale_nan(v[8].unwrap()));
        assert_eq!(&v[9..], &[Some(-1.0), Some(-3.0), Some(3.0), Some(3.0), Some(3.0), Some(f64::INFINITY), Some(f64::NEG_INFINITY)]);
        let (_, v) = parse_series_desc("x 0.1+0.1x2 1e3 1e-3+1x1 010").unwrap();
        assert_eq!(v, vec![Some(0.1), Some(0.2), Some(0.30000000000000004), Some(1000.0), Some(0.001), Some(1.001), Some(8.0)]);
        assert!(parse_series_desc("x 1 foo").is_err());
        assert!(parse_series_desc("x stalex2").is_err());
        assert!(parse_series_desc("x Infx2").is_err());
        assert!(parse_series_desc("x -Infx2").is_err());
        assert_eq!(parse_series_desc("x -Inf 1e2x1").unwrap().1, vec![Some(f64::NEG_INFINITY), Some(100.0), Some(100.0)]);
    }

    #[test]
    fn metrics() {
        assert_eq!(parse_metric("").unwrap(), vec![]);
        assert_eq!(parse_metric("{}").unwrap(), vec![]);
        assert_eq!(
            parse_metric("up{b='x', a=\"y\\n\"}").unwrap(),
            vec![("__name__".into(), "up".into()), ("a".into(), "y\n".into()), ("b".into(), "x".into())]
        );
        assert!(parse_metric("up{a=b}").is_err());
    }

    #[test]
    fn lazy_loading_cuts_at_last_eval_step() {
        let tf = TestFile::from_yaml(
            "tests:\n- interval: 1m\n  input_series:\n  - series: x\n    values: 0+1x10\n  promql_expr_test:\n  - expr: x\n    eval_time: 150s\n",
        )
        .unwrap();
        let st = tf.tests[0].load_storage(tf.eval_interval_ms()).unwrap();
        let (_, s) = st.iter().next().unwrap();
        assert_eq!(s.last().unwrap().t, 120_000);
    }
}
