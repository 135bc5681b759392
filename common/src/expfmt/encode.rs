//! Families of samples rendered straight into text as collectors add them, and the final encoding
//! in the negotiated format. Sample lines are identical in both formats; only the metadata lines
//! and the `# EOF` trailer differ, so each sample is formatted exactly once.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl MetricType {
    pub fn text_name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
        }
    }

    pub fn parse(s: &str) -> Option<MetricType> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" | "unknown" => MetricType::Untyped,
            _ => return None,
        })
    }
}

/// The wire format of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`
    Text,
    /// `application/openmetrics-text` with the version the scraper asked for (1.0.0 or 0.0.1).
    OpenMetrics { v1: bool },
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics { v1: true } => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::OpenMetrics { v1: false } => "application/openmetrics-text; version=0.0.1; charset=utf-8",
        }
    }
}

/// Picks the format from an `Accept` header: OpenMetrics when the scraper lists it with a quality
/// at least that of `text/plain` (Prometheus sends OpenMetrics first), the text format otherwise.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let mut best_om: Option<(f32, bool)> = None;
    let mut text_q: f32 = 0.0;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut q, mut version) = (1.0f32, None);
        for p in parts {
            if let Some(v) = p.strip_prefix("q=") {
                q = v.parse().unwrap_or(0.0);
            } else if let Some(v) = p.strip_prefix("version=") {
                version = Some(v.to_string());
            }
        }
        match media.as_str() {
            "application/openmetrics-text" => {
                let v1 = match version.as_deref() {
                    None | Some("1.0.0") => true,
                    Some("0.0.1") => false,
                    Some(_) => continue,
                };
                if q > 0.0 && best_om.is_none_or(|(bq, bv1)| q > bq || (q == bq && v1 && !bv1)) {
                    best_om = Some((q, v1));
                }
            }
            "text/plain" | "*/*" | "text/*" => text_q = text_q.max(q),
            _ => {}
        }
    }
    match best_om {
        Some((q, v1)) if q >= text_q => Format::OpenMetrics { v1 },
        _ => Format::Text,
    }
}

/// One metric family with its samples already rendered as exposition lines, or (`deferred`)
/// rendered only when the exposition is written.
#[derive(Debug, Clone)]
pub struct Family {
    name: Cow<'static, str>,
    help: Cow<'static, str>,
    kind: MetricType,
    body: String,
    samples: usize,
    deferred: Option<DeferredBody>,
}

/// Samples a collector hands over as figures and that are rendered while the response is
/// written (`Chunks`): a collector with thousands of series keeps no rendered copy of them.
pub trait Deferred: Send + Sync {
    /// Writes the family's sample lines (named `name`) from `*cursor` on (0 at first; the
    /// implementation advances it past what it wrote) into `out`, stopping once `out` holds at
    /// least `until` bytes. True when every sample is written.
    fn render(&self, name: &str, cursor: &mut usize, out: &mut String, until: usize) -> bool;
}

#[derive(Clone)]
struct DeferredBody(Arc<dyn Deferred>);

impl std::fmt::Debug for DeferredBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deferred")
    }
}

impl Family {
    /// A family; static names and help texts (the usual case) cost no allocation.
    pub fn new(name: impl Into<Cow<'static, str>>, help: impl Into<Cow<'static, str>>, kind: MetricType) -> Family {
        Family { name: name.into(), help: help.into(), kind, body: String::with_capacity(128), samples: 0, deferred: None }
    }

    /// A family of `samples` samples that `body` renders when the exposition is written.
    pub fn deferred(name: &'static str, help: &'static str, kind: MetricType, samples: usize, body: Arc<dyn Deferred>) -> Family {
        Family { name: name.into(), help: help.into(), kind, body: String::new(), samples, deferred: Some(DeferredBody(body)) }
    }

    pub fn counter(name: impl Into<Cow<'static, str>>, help: impl Into<Cow<'static, str>>) -> Family {
        Family::new(name, help, MetricType::Counter)
    }

    pub fn gauge(name: impl Into<Cow<'static, str>>, help: impl Into<Cow<'static, str>>) -> Family {
        Family::new(name, help, MetricType::Gauge)
    }

    /// A family with one unlabelled sample (`node_load1 0.5`).
    pub fn single(name: impl Into<Cow<'static, str>>, help: impl Into<Cow<'static, str>>, kind: MetricType, value: f64) -> Family {
        let mut f = Family::new(name, help, kind);
        f.add(&[], value);
        f
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn help(&self) -> &str {
        &self.help
    }

    pub fn kind(&self) -> MetricType {
        self.kind
    }

    pub fn sample_count(&self) -> usize {
        self.samples
    }

    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }

    /// Adds a sample named like the family.
    pub fn add(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.add_with_suffix("", labels, value)
    }

    /// Adds a sample whose name is the family name plus `suffix` (`_bucket`, `_sum`, `_count`).
    pub fn add_with_suffix(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.body.push_str(&self.name);
        self.body.push_str(suffix);
        if !labels.is_empty() {
            self.body.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.body.push(',');
                }
                self.body.push_str(k);
                self.body.push_str("=\"");
                push_escaped_label_value(&mut self.body, v);
                self.body.push('"');
            }
            self.body.push('}');
        }
        self.body.push(' ');
        push_value(&mut self.body, value);
        self.body.push('\n');
        self.samples += 1;
        self
    }

    /// Appends the samples of another family of the same name and type (a deferred one is
    /// rendered now).
    pub fn absorb(&mut self, other: Family) {
        if let Some(d) = self.deferred.take() {
            render_all(&d, &self.name, &mut self.body);
        }
        match &other.deferred {
            Some(d) => render_all(d, &self.name, &mut self.body),
            None => self.body.push_str(&other.body),
        }
        self.samples += other.samples;
    }

    /// Writes the rendered samples to `out` (all of them, deferred or not).
    fn write_body(&self, out: &mut String) {
        match &self.deferred {
            Some(d) => render_all(d, &self.name, out),
            None => out.push_str(&self.body),
        }
    }
}

fn render_all(d: &DeferredBody, name: &str, out: &mut String) {
    let mut cursor = 0;
    while !d.0.render(name, &mut cursor, out, usize::MAX) {}
}

/// Writes one sample line `name{labels,extra} value` whose labels are already rendered (the
/// escaped inside of the braces, never empty), with one more label `extra` after them.
pub fn push_rendered_sample(out: &mut String, name: &str, labels: &str, extra: Option<(&str, &str)>, value: f64) {
    out.push_str(name);
    out.push('{');
    out.push_str(labels);
    if let Some((k, v)) = extra {
        out.push(',');
        out.push_str(k);
        out.push_str("=\"");
        push_escaped_label_value(out, v);
        out.push('"');
    }
    out.push_str("} ");
    push_value(out, value);
    out.push('\n');
}

/// Escapes `\`, `"` and newline in a label value.
pub fn push_escaped_label_value(out: &mut String, v: &str) {
    if !v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes a sample value: integers exactly, other finite values in shortest round-trip form,
/// and `NaN`, `+Inf`, `-Inf` as both formats spell them.
pub fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        if v == 0.0 && v.is_sign_negative() {
            out.push_str("-0");
        } else {
            out.push_str(itoa::Buffer::new().format(v as i64));
        }
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

fn push_help(out: &mut String, help: &str, escape_quotes: bool) {
    if !help.bytes().any(|b| matches!(b, b'\\' | b'\n' | b'"')) {
        out.push_str(help);
        return;
    }
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if escape_quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Encodes families (already sorted and de-duplicated by the caller) in `format`.
pub fn encode(families: &[Family], format: Format) -> String {
    let size: usize = families.iter().map(|f| f.body.len() + f.help.len() + 2 * f.name.len() + 32).sum();
    let mut out = String::with_capacity(size + 8);
    for f in families.iter().filter(|f| !f.is_empty()) {
        match format {
            Format::Text => write_text_meta(&mut out, f),
            Format::OpenMetrics { .. } => write_openmetrics_meta(&mut out, f),
        }
        f.write_body(&mut out);
    }
    if let Format::OpenMetrics { .. } = format {
        out.push_str("# EOF\n");
    }
    out
}

/// About how many bytes each buffer of `Chunks` holds.
const CHUNK: usize = 16 * 1024;

/// The encoding of families (sorted and de-duplicated by the caller) in `format` as buffers of
/// about 16 KiB, produced one at a time: deferred families are rendered into them as they are
/// asked for, and a large rendered body goes out as it is, without a copy.
pub struct Chunks {
    families: std::vec::IntoIter<Family>,
    format: Format,
    /// The family being written and the cursor in its deferred samples.
    current: Option<(Family, usize)>,
    /// A large rendered body to send after the buffer in hand.
    pending: Option<bytes::Bytes>,
    done: bool,
}

impl Chunks {
    pub fn new(families: Vec<Family>, format: Format) -> Chunks {
        Chunks { families: families.into_iter(), format, current: None, pending: None, done: false }
    }
}

impl Iterator for Chunks {
    type Item = bytes::Bytes;

    fn next(&mut self) -> Option<bytes::Bytes> {
        if let Some(b) = self.pending.take() {
            return Some(b);
        }
        if self.done {
            return None;
        }
        let mut out = String::with_capacity(CHUNK + CHUNK / 4);
        while out.len() < CHUNK {
            if self.current.is_none() {
                let Some(f) = self.families.find(|f| !f.is_empty()) else {
                    if let Format::OpenMetrics { .. } = self.format {
                        out.push_str("# EOF\n");
                    }
                    self.done = true;
                    break;
                };
                match self.format {
                    Format::Text => write_text_meta(&mut out, &f),
                    Format::OpenMetrics { .. } => write_openmetrics_meta(&mut out, &f),
                }
                self.current = Some((f, 0));
            }
            let Some((f, cursor)) = self.current.as_mut() else { break };
            match &f.deferred {
                Some(d) => {
                    if d.0.render(&f.name, cursor, &mut out, CHUNK) {
                        self.current = None;
                    }
                }
                None if f.body.len() >= CHUNK / 4 => {
                    self.pending = self.current.take().map(|(f, _)| bytes::Bytes::from(f.body));
                    break;
                }
                None => {
                    out.push_str(&f.body);
                    self.current = None;
                }
            }
        }
        Some(bytes::Bytes::from(out))
    }
}

fn write_text_meta(out: &mut String, f: &Family) {
    out.push_str("# HELP ");
    out.push_str(&f.name);
    out.push(' ');
    push_help(out, &f.help, false);
    out.push_str("\n# TYPE ");
    out.push_str(&f.name);
    out.push(' ');
    out.push_str(f.kind.text_name());
    out.push('\n');
}

/// OpenMetrics names a counter family without its `_total` suffix. A counter whose samples lack
/// that suffix is exposed as `unknown`, so that series names never change with the format.
fn write_openmetrics_meta(out: &mut String, f: &Family) {
    let (name, kind) = match f.kind {
        MetricType::Counter => match f.name.strip_suffix("_total") {
            Some(base) => (base, "counter"),
            None => (f.name.as_ref(), "unknown"),
        },
        MetricType::Untyped => (f.name.as_ref(), "unknown"),
        other => (f.name.as_ref(), other.text_name()),
    };
    let _ = writeln!(out, "# TYPE {name} {kind}");
    if !f.help.is_empty() {
        let _ = write!(out, "# HELP {name} ");
        push_help(out, &f.help, true);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn negotiates_like_prometheus_expects() {
        assert_eq!(negotiate(Some(PROMETHEUS_ACCEPT)), Format::OpenMetrics { v1: true });
        assert_eq!(negotiate(Some("application/openmetrics-text;version=0.0.1")), Format::OpenMetrics { v1: false });
        assert_eq!(negotiate(Some("text/plain;version=0.0.4")), Format::Text);
        assert_eq!(negotiate(Some("*/*")), Format::Text);
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(negotiate(Some("text/plain,application/openmetrics-text;q=0.5")), Format::Text);
        assert_eq!(negotiate(Some("application/openmetrics-text;version=9.9.9")), Format::Text);
    }

    #[test]
    fn renders_values_exactly() {
        let cases = [
            (0.0, "0"),
            (42.0, "42"),
            (-3.0, "-3"),
            (0.5, "0.5"),
            (1.7952648567528045e9, "1795264856.7528045"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (2.70553174016e20, "2.70553174016e20"),
        ];
        for (v, want) in cases {
            let mut s = String::new();
            push_value(&mut s, v);
            assert_eq!(s, want, "value {v}");
        }
    }

    #[test]
    fn text_format_family() {
        let mut f = Family::counter("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.");
        f.add(&[("cpu", "0"), ("mode", "idle")], 12.5);
        let mut g = Family::gauge("weird", "a \\ help\nline");
        g.add(&[("v", "a\"b\\c\nd")], 1.0);
        let out = encode(&[f, g], Format::Text);
        assert_eq!(
            out,
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n\
             # TYPE node_cpu_seconds_total counter\n\
             node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5\n\
             # HELP weird a \\\\ help\\nline\n\
             # TYPE weird gauge\n\
             weird{v=\"a\\\"b\\\\c\\nd\"} 1\n"
        );
    }

    #[test]
    fn rendered_labels_match_the_label_list() {
        let mut a = Family::gauge("g", "h");
        a.add(&[("id", "/x"), ("name", "n\"q"), ("cpu", "total")], 1.5);
        a.add(&[("id", "/x"), ("name", "n\"q")], 2.0);
        let mut labels = String::from("id=\"/x\",name=\"");
        push_escaped_label_value(&mut labels, "n\"q");
        labels.push('"');
        let mut body = String::new();
        push_rendered_sample(&mut body, "g", &labels, Some(("cpu", "total")), 1.5);
        push_rendered_sample(&mut body, "g", &labels, None, 2.0);
        assert_eq!(encode(&[a], Format::Text), format!("# HELP g h\n# TYPE g gauge\n{body}"));
    }

    #[test]
    fn openmetrics_family_names_and_eof() {
        let mut c = Family::counter("node_forks_total", "Total number of forks.");
        c.add(&[], 7.0);
        let mut odd = Family::counter("legacy_requests", "no suffix");
        odd.add(&[], 1.0);
        let empty = Family::gauge("never", "no samples");
        let out = encode(&[c, odd, empty], Format::OpenMetrics { v1: true });
        assert_eq!(
            out,
            "# TYPE node_forks counter\n# HELP node_forks Total number of forks.\nnode_forks_total 7\n\
             # TYPE legacy_requests unknown\n# HELP legacy_requests no suffix\nlegacy_requests 1\n# EOF\n"
        );
    }

    /// `n` samples `name{i="<k>"} <k>`, rendered on demand.
    struct Counting(usize);

    impl Deferred for Counting {
        fn render(&self, name: &str, cursor: &mut usize, out: &mut String, until: usize) -> bool {
            while *cursor < self.0 {
                if out.len() >= until {
                    return false;
                }
                push_rendered_sample(out, name, &format!("i=\"{cursor}\""), None, *cursor as f64);
                *cursor += 1;
            }
            true
        }
    }

    fn mixed_families() -> Vec<Family> {
        let mut small = Family::gauge("a_small", "A small one.");
        small.add(&[("k", "v")], 1.0);
        let mut big = Family::counter("b_big_total", "A large rendered body.");
        for i in 0..2000 {
            big.add(&[("i", &i.to_string())], i as f64);
        }
        let deferred = Family::deferred("c_deferred", "Rendered while written.", MetricType::Gauge, 5000, Arc::new(Counting(5000)));
        let empty = Family::deferred("d_empty", "No samples.", MetricType::Gauge, 0, Arc::new(Counting(0)));
        vec![small, big, deferred, empty, Family::single("e_last", "Last.", MetricType::Gauge, 2.5)]
    }

    #[test]
    fn chunks_are_the_encoding_in_pieces() {
        for format in [Format::Text, Format::OpenMetrics { v1: true }] {
            let whole = encode(&mixed_families(), format);
            let pieces: Vec<bytes::Bytes> = Chunks::new(mixed_families(), format).collect();
            assert!(pieces.len() > 5, "{} pieces", pieces.len());
            // Only the large rendered body goes out whole, above the chunk size.
            assert_eq!(pieces.iter().filter(|p| p.len() >= CHUNK + CHUNK / 4).count(), 1);
            let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(String::from_utf8(joined).unwrap(), whole);
            assert!(whole.contains("c_deferred{i=\"4999\"} 4999\n") && !whole.contains("d_empty"));
        }
    }

    #[test]
    fn absorbing_renders_deferred_samples() {
        let mut a = Family::deferred("x", "h", MetricType::Gauge, 2, Arc::new(Counting(2)));
        let mut b = Family::gauge("x", "h");
        b.add(&[("i", "9")], 9.0);
        a.absorb(b);
        a.absorb(Family::deferred("x", "h", MetricType::Gauge, 1, Arc::new(Counting(1))));
        assert_eq!(a.sample_count(), 4);
        assert_eq!(encode(&[a], Format::Text), "# HELP x h\n# TYPE x gauge\nx{i=\"0\"} 0\nx{i=\"1\"} 1\nx{i=\"9\"} 9\nx{i=\"0\"} 0\n");
    }
}
