//! A parser for the text exposition format 0.0.4, strict where Prometheus is strict: valid names,
//! escapes in label values, HELP/TYPE at most once per family and TYPE before the samples,
//! no duplicate series. It groups samples into families the way the type lines say.

use super::{is_valid_label_name, is_valid_metric_name, MetricType};
use std::collections::{HashMap, HashSet};

/// A malformed exposition: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// One sample as written: its full name (with any `_bucket`/`_sum`/`_count` suffix).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A family with its metadata and samples, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFamily {
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    pub samples: Vec<ParsedSample>,
}

struct Builder {
    families: Vec<ParsedFamily>,
    index: HashMap<String, usize>,
    typed: HashSet<String>,
    series: HashSet<String>,
}

/// Parses a whole text-format exposition.
pub fn parse_text(input: &str) -> Result<Vec<ParsedFamily>, ParseError> {
    let mut b = Builder { families: Vec::new(), index: HashMap::new(), typed: HashSet::new(), series: HashSet::new() };
    for (i, raw) in input.lines().enumerate() {
        let line = raw.trim_start_matches([' ', '\t']);
        let err = |message: String| ParseError { line: i + 1, message };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            b.comment(comment).map_err(err)?;
        } else {
            let sample = parse_sample_line(line).map_err(err)?;
            b.add_sample(sample).map_err(err)?;
        }
    }
    Ok(b.families)
}

impl Builder {
    fn family_mut(&mut self, name: &str) -> &mut ParsedFamily {
        let idx = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.families.push(ParsedFamily { name: name.to_string(), help: None, kind: MetricType::Untyped, samples: Vec::new() });
                self.index.insert(name.to_string(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        &mut self.families[idx]
    }

    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let mut parts = comment.trim_start_matches([' ', '\t']).splitn(3, [' ', '\t']);
        let keyword = parts.next().unwrap_or("");
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(());
        }
        let name = parts.next().unwrap_or("");
        if !is_valid_metric_name(name) {
            return Err(format!("invalid metric name {name:?} in {keyword} line"));
        }
        let rest = parts.next().unwrap_or("").trim_start_matches([' ', '\t']);
        if keyword == "HELP" {
            let help = unescape_help(rest)?;
            let family = self.family_mut(name);
            if family.help.is_some() {
                return Err(format!("second HELP line for metric name {name:?}"));
            }
            family.help = Some(help);
            return Ok(());
        }
        let kind = MetricType::parse(rest.trim_end()).ok_or_else(|| format!("unknown metric type {:?}", rest.trim_end()))?;
        if !self.typed.insert(name.to_string()) {
            return Err(format!("second TYPE line for metric name {name:?}"));
        }
        let family = self.family_mut(name);
        if !family.samples.is_empty() {
            return Err(format!("TYPE line for {name:?} after its samples"));
        }
        family.kind = kind;
        Ok(())
    }

    fn owner_of(&self, sample_name: &str) -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample_name.strip_suffix(suffix) {
                if let Some(&i) = self.index.get(base) {
                    let kind = self.families[i].kind;
                    if kind == MetricType::Histogram || (kind == MetricType::Summary && suffix != "_bucket") {
                        return base.to_string();
                    }
                }
            }
        }
        sample_name.to_string()
    }

    fn add_sample(&mut self, sample: ParsedSample) -> Result<(), String> {
        let mut key = sample.name.clone();
        let mut sorted: Vec<_> = sample.labels.iter().collect();
        sorted.sort();
        for (k, v) in sorted {
            key.push('\u{0}');
            key.push_str(k);
            key.push('\u{0}');
            key.push_str(v);
        }
        if !self.series.insert(key) {
            return Err(format!("duplicate series {}", sample.name));
        }
        let owner = self.owner_of(&sample.name);
        self.family_mut(&owner).samples.push(sample);
        Ok(())
    }
}

fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Ok(out)
}

fn parse_sample_line(line: &str) -> Result<ParsedSample, String> {
    let name_len = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_len];
    if !is_valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_len..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value_text = fields.next().ok_or_else(|| format!("missing value for {name}"))?;
    let value = parse_float(value_text).ok_or_else(|| format!("invalid value {value_text:?}"))?;
    let timestamp_ms = match fields.next() {
        Some(t) => Some(t.parse::<i64>().map_err(|_| format!("invalid timestamp {t:?}"))?),
        None => None,
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected text {extra:?} after sample"));
    }
    Ok(ParsedSample { name: name.to_string(), labels, value, timestamp_ms })
}

/// Parses `a="b",c="d"}` and returns what follows the closing brace.
fn parse_labels<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let name = s[..eq].trim_end();
        if !is_valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if labels.iter().any(|(k, _)| k == name) {
            return Err(format!("duplicate label name {name:?}"));
        }
        s = s[eq + 1..].trim_start_matches([' ', '\t']);
        let body = s.strip_prefix('"').ok_or_else(|| format!("label value of {name:?} is not quoted"))?;
        let (value, after) = parse_quoted(body)?;
        labels.push((name.to_string(), value));
        s = after.trim_start_matches([' ', '\t']);
        if let Some(after_comma) = s.strip_prefix(',') {
            s = after_comma;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' after label value".to_string());
        }
    }
}

/// Reads an escaped label value up to its closing quote.
fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, other)) => return Err(format!("invalid escape sequence '\\{other}' in label value")),
                None => break,
            },
            '\n' => return Err("newline in label value".to_string()),
            c => out.push(c),
        }
    }
    Err("unterminated label value".to_string())
}

/// Parses a sample value as Go's ParseFloat does for the forms exporters write.
pub fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ if s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_families_with_metadata() {
        let text = "# HELP jobs_done_total Jobs done.\n# TYPE jobs_done_total counter\njobs_done_total{queue=\"a\"} 3\njobs_done_total{queue=\"b\",} 4 1700000000000\n\nplain 1.5\n";
        let fams = parse_text(text).unwrap();
        assert_eq!(fams.len(), 2);
        assert_eq!(fams[0].name, "jobs_done_total");
        assert_eq!(fams[0].help.as_deref(), Some("Jobs done."));
        assert_eq!(fams[0].kind, MetricType::Counter);
        assert_eq!(fams[0].samples[1].labels, vec![("queue".to_string(), "b".to_string())]);
        assert_eq!(fams[0].samples[1].timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(fams[1].kind, MetricType::Untyped);
        assert_eq!(fams[1].samples[0].value, 1.5);
    }

    #[test]
    fn groups_histogram_and_summary_samples() {
        let text = "# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3\nlat_count 2\n# TYPE rpc summary\nrpc{quantile=\"0.5\"} 1\nrpc_sum 1\nrpc_count 1\n";
        let fams = parse_text(text).unwrap();
        assert_eq!(fams.len(), 2);
        assert_eq!(fams[0].samples.len(), 4);
        assert_eq!(fams[1].samples.len(), 3);
    }

    #[test]
    fn unescapes_label_values_and_special_floats() {
        let fams = parse_text("m{a=\"x\\\"y\\\\z\\nw\"} NaN\nn +Inf\no -Inf\n").unwrap();
        assert_eq!(fams[0].samples[0].labels[0].1, "x\"y\\z\nw");
        assert!(fams[0].samples[0].value.is_nan());
        assert_eq!(fams[1].samples[0].value, f64::INFINITY);
        assert_eq!(fams[2].samples[0].value, f64::NEG_INFINITY);
    }

    #[test]
    fn rejects_malformed_input_with_line_numbers() {
        let cases = [
            ("ok 1\n0bad 1\n", 2, "invalid metric name"),
            ("m{a=b} 1\n", 1, "not quoted"),
            ("m{a=\"b\n", 1, "unterminated"),
            ("m{a=\"b\" 1\n", 1, "expected ','"),
            ("m{a=\"\\q\"} 1\n", 1, "invalid escape"),
            ("m{a=\"1\",a=\"2\"} 1\n", 1, "duplicate label"),
            ("m 1\nm 2\n", 2, "duplicate series"),
            ("m one\n", 1, "invalid value"),
            ("m 1 2 3\n", 1, "unexpected text"),
            ("# TYPE m counter\n# TYPE m gauge\n", 2, "second TYPE"),
            ("m 1\n# TYPE m gauge\n", 2, "after its samples"),
            ("# TYPE m flavour\n", 1, "unknown metric type"),
            ("m\n", 1, "missing value"),
            ("m{0a=\"1\"} 1\n", 1, "invalid label name"),
        ];
        for (text, line, needle) in cases {
            let err = parse_text(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }
}
