//! The streaming (pull) parser for scrape bodies in the Prometheus text format 0.0.4 and the
//! OpenMetrics 1.0 text format: choosing the format from `Content-Type`, the grammar of both formats
//! and their structural rules (metadata placement and uniqueness, family grouping, `# EOF`).
//! Everything returned borrows from the body; the only allocations are unescaped strings and the
//! per-family bookkeeping, never one per sample once the caller's label buffer has grown.
//!
//! Decisions where the specs are open, or where Prometheus is more lenient than the spec:
//! - Numbers (both formats): a decimal float as Go's `strconv.ParseFloat` reads it, without the hex
//!   and `_` forms (Prometheus rejects those too); that is also the OpenMetrics `realnumber`. `Inf` and
//!   `Infinity` with an optional sign and `NaN` without one, case-insensitive. A finite literal that
//!   overflows float64 (`1e400`) is an error, as in Go; one that underflows reads as 0.
//! - Text: the last line must end with a line feed (spec "must"; Prometheus adds one), which also
//!   catches a body cut off mid-line. Timestamps are `[+-]digits` in int64 range (the spec says
//!   Go's `ParseInt`; Prometheus's lexer refuses the sign, though the spec's own example uses one).
//!   A trailing comma in a label set is allowed, commas between labels are required (Prometheus also
//!   takes blanks), and blanks may surround every token. The docstring of a HELP line starts after
//!   the blanks following the name; trailing blanks are dropped; only `\\` and `\n` are escapes in it.
//!   Quoted (UTF-8) metric and label names are not part of 0.0.4 and are rejected.
//! - OpenMetrics: the ABNF exactly, so single spaces only, no trailing comma in label sets, and a
//!   raw `"` or a lone trailing `\` in HELP text is an error. One line feed after `# EOF` is allowed
//!   (the ABNF has `[ LF ]`; the spec says expositions SHOULD end with `EOF\n`), anything more is an
//!   error. Timestamps are converted to milliseconds exactly from their decimal digits, truncating
//!   towards zero below 1 ms like Prometheus's `int64(ts * 1000)` but without its rounding errors.
//!   Empty HELP/UNIT lines are returned as they are (the spec says to treat them as absent) but still
//!   count as that family's HELP/UNIT line for the "at most once" and "before the samples" rules.
//!   A sample whose name does not fit the current family starts a new family of unknown type named
//!   like the sample (so `foo_total` after `# TYPE foo gauge` is a family of its own), except when it
//!   has the same name as the current family or a suffix of a family that is already over: errors.
//! - In both formats an unknown escape in a label value (`\a`) stands for itself, backslash included,
//!   as in Prometheus and the OpenMetrics escaping section; a `__name__` label is rejected.
//! - Not checked: duplicate series (the store does that), clashes between one family's suffixed
//!   sample names and another family's name, and the value-level rules of the data model (bucket
//!   order, the `+Inf` bucket, counter and info values), none of which Prometheus checks either.

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;

use super::MetricType;

/// The two text formats a scrape body can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeFormat {
    /// The Prometheus text format 0.0.4.
    Text,
    /// The OpenMetrics 1.0 text format.
    OpenMetrics,
}

impl ScrapeFormat {
    /// From a response Content-Type: `application/openmetrics-text` (any version/params) → OpenMetrics,
    /// anything else (text/plain, missing, unknown) → Text, as Prometheus 2.x does.
    pub fn from_content_type(content_type: Option<&str>) -> ScrapeFormat {
        let media = content_type.and_then(|ct| ct.split(';').next()).unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            ScrapeFormat::OpenMetrics
        } else {
            ScrapeFormat::Text
        }
    }
}

/// The type named by a TYPE line, covering the OpenMetrics-only types. The text format's `untyped`
/// is `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl FamilyType {
    /// The OpenMetrics name of the type.
    pub fn name(self) -> &'static str {
        match self {
            FamilyType::Counter => "counter",
            FamilyType::Gauge => "gauge",
            FamilyType::Histogram => "histogram",
            FamilyType::GaugeHistogram => "gaugehistogram",
            FamilyType::Summary => "summary",
            FamilyType::Info => "info",
            FamilyType::StateSet => "stateset",
            FamilyType::Unknown => "unknown",
        }
    }

    /// The closest classic type: info and stateset are gauges, a gauge histogram is a histogram (as
    /// the Python client renders them in the text format), unknown is untyped.
    pub fn metric_type(self) -> MetricType {
        match self {
            FamilyType::Counter => MetricType::Counter,
            FamilyType::Gauge | FamilyType::Info | FamilyType::StateSet => MetricType::Gauge,
            FamilyType::Histogram | FamilyType::GaugeHistogram => MetricType::Histogram,
            FamilyType::Summary => MetricType::Summary,
            FamilyType::Unknown => MetricType::Untyped,
        }
    }

    fn parse_text(s: &str) -> Option<FamilyType> {
        Some(match s {
            "counter" => FamilyType::Counter,
            "gauge" => FamilyType::Gauge,
            "histogram" => FamilyType::Histogram,
            "summary" => FamilyType::Summary,
            "untyped" => FamilyType::Unknown,
            _ => return None,
        })
    }

    fn parse_open_metrics(s: &str) -> Option<FamilyType> {
        Some(match s {
            "counter" => FamilyType::Counter,
            "gauge" => FamilyType::Gauge,
            "histogram" => FamilyType::Histogram,
            "gaugehistogram" => FamilyType::GaugeHistogram,
            "summary" => FamilyType::Summary,
            "info" => FamilyType::Info,
            "stateset" => FamilyType::StateSet,
            "unknown" => FamilyType::Unknown,
            _ => return None,
        })
    }

    /// The OpenMetrics sample name suffixes of a family of this type.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            FamilyType::Counter => &["_total", "_created"],
            FamilyType::Gauge | FamilyType::StateSet | FamilyType::Unknown => &[""],
            FamilyType::Histogram => &["_bucket", "_count", "_sum", "_created"],
            FamilyType::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
            FamilyType::Summary => &["", "_count", "_sum", "_created"],
            FamilyType::Info => &["_info"],
        }
    }

    /// The suffix that makes `sample` a sample name of the family `family` of this type.
    fn suffix_of(self, family: &str, sample: &str) -> Option<&'static str> {
        let suffix = sample.strip_prefix(family)?;
        self.suffixes().iter().copied().find(|s| *s == suffix)
    }

    fn with_article(self) -> String {
        let article = if matches!(self, FamilyType::Info | FamilyType::Unknown) { "an" } else { "a" };
        format!("{article} {}", self.name())
    }
}

/// One label of a sample; the value is owned only when it had escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label<'a> {
    pub name: &'a str,
    pub value: Cow<'a, str>,
}

/// An OpenMetrics exemplar.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a> {
    /// The label set as written, braces included (`{trace_id="abc"}`); it has been validated.
    pub labels: &'a str,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// Metric name and label set exactly as written (e.g. `foo{a="b"}`), trimmed; a cache key.
    pub series: &'a str,
    pub name: &'a str,
    pub value: f64,
    /// Text: integer milliseconds; OpenMetrics: float seconds converted to milliseconds.
    pub timestamp_ms: Option<i64>,
    pub exemplar: Option<Exemplar<'a>>,
    /// The type of the family the sample belongs to (`Untyped` without a TYPE line); see
    /// [`FamilyType::metric_type`] and [`ScrapeParser::family_type`].
    pub kind: MetricType,
}

/// One item of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    Sample(Sample<'a>),
    Help { name: &'a str, text: Cow<'a, str> },
    Type { name: &'a str, kind: FamilyType },
    Unit { name: &'a str, unit: &'a str },
}

/// A malformed exposition: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScrapeParseError {
    pub line: usize,
    pub message: String,
}

/// Pulls entries out of a scrape body one at a time.
pub struct ScrapeParser<'a> {
    body: &'a str,
    format: ScrapeFormat,
    /// Byte offset of the next line.
    pos: usize,
    /// 1-based number of the line last read.
    line: usize,
    state: State,
    family_type: FamilyType,
    text: TextFamilies<'a>,
    open_metrics: OpenMetricsFamilies<'a>,
    /// Scratch space for the duplicate label name check.
    names: Vec<&'a str>,
    /// Scratch space for building suffixed metric names.
    key: String,
}

enum State {
    Running,
    Done,
    Failed(ScrapeParseError),
}

/// What the text format needs to remember across lines.
#[derive(Default)]
struct TextFamilies<'a> {
    /// Every metric name seen in a HELP line, a TYPE line or a sample.
    names: HashMap<&'a str, TextName>,
    /// The last sample name and the type of its family.
    last_name: &'a str,
    last_type: Option<FamilyType>,
}

impl TextFamilies<'_> {
    /// Room for the names a body of this size usually has (about one per 200 bytes), so the map
    /// is not regrown while parsing.
    fn sized_for(body: &str, format: ScrapeFormat) -> Self {
        let names = if format == ScrapeFormat::Text { body.len() / 200 } else { 0 };
        TextFamilies { names: HashMap::with_capacity_and_hasher(names, Default::default()), ..Default::default() }
    }
}

/// What the text format has seen of one metric name.
#[derive(Default)]
struct TextName {
    kind: Option<FamilyType>,
    has_help: bool,
    has_samples: bool,
}

/// What OpenMetrics needs to remember across lines.
#[derive(Default)]
struct OpenMetricsFamilies<'a> {
    current: Option<Family<'a>>,
    /// Families that are over and must not come back, with their types.
    finished: HashMap<&'a str, FamilyType>,
}

/// The OpenMetrics family being read.
struct Family<'a> {
    name: &'a str,
    kind: FamilyType,
    has_type: bool,
    has_help: bool,
    has_unit: bool,
    has_nonempty_unit: bool,
    has_samples: bool,
}

impl<'a> Family<'a> {
    fn named(name: &'a str) -> Family<'a> {
        Family {
            name,
            kind: FamilyType::Unknown,
            has_type: false,
            has_help: false,
            has_unit: false,
            has_nonempty_unit: false,
            has_samples: false,
        }
    }
}

#[derive(Clone, Copy)]
enum Meta {
    Help,
    Type,
    Unit,
}

impl Meta {
    fn keyword(self) -> &'static str {
        match self {
            Meta::Help => "HELP",
            Meta::Type => "TYPE",
            Meta::Unit => "UNIT",
        }
    }

    /// What follows the metric name on the line.
    fn value_name(self) -> &'static str {
        match self {
            Meta::Help => "help text",
            Meta::Type => "type",
            Meta::Unit => "unit",
        }
    }
}

impl<'a> ScrapeParser<'a> {
    pub fn new(body: &'a str, format: ScrapeFormat) -> Self {
        ScrapeParser {
            body,
            format,
            pos: 0,
            line: 0,
            state: State::Running,
            family_type: FamilyType::Unknown,
            text: TextFamilies::sized_for(body, format),
            open_metrics: OpenMetricsFamilies::default(),
            names: Vec::new(),
            key: String::new(),
        }
    }

    /// Next entry; `labels` is cleared and filled with the sample's labels (not including __name__) for Entry::Sample.
    /// Ok(None) at the end (for OpenMetrics only after a valid `# EOF`). After an error every call returns it again.
    pub fn next(&mut self, labels: &mut Vec<Label<'a>>) -> Result<Option<Entry<'a>>, ScrapeParseError> {
        labels.clear();
        match &self.state {
            State::Failed(err) => return Err(err.clone()),
            State::Done => return Ok(None),
            State::Running => {}
        }
        let result = match self.format {
            ScrapeFormat::Text => self.next_text(labels),
            ScrapeFormat::OpenMetrics => self.next_open_metrics(labels),
        };
        match result {
            Ok(None) => {
                self.state = State::Done;
                Ok(None)
            }
            Ok(entry) => Ok(entry),
            Err(message) => {
                labels.clear();
                let err = ScrapeParseError { line: self.line, message };
                self.state = State::Failed(err.clone());
                Err(err)
            }
        }
    }

    /// The 1-based number of the line the last entry or error came from (0 before the first call).
    pub fn line(&self) -> usize {
        self.line
    }

    /// The full type of the family of the last sample returned, OpenMetrics-only types included.
    pub fn family_type(&self) -> FamilyType {
        self.family_type
    }

    /// The next line without its line feed, and whether it had one; None at the end of the body.
    fn next_line(&mut self) -> Option<(&'a str, bool)> {
        let rest = self.body.get(self.pos..).filter(|r| !r.is_empty())?;
        self.line += 1;
        match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(end) => {
                self.pos += end + 1;
                Some((&rest[..end], true))
            }
            None => {
                self.pos = self.body.len();
                Some((rest, false))
            }
        }
    }

    // ---- Text format 0.0.4 ----

    fn next_text(&mut self, labels: &mut Vec<Label<'a>>) -> Result<Option<Entry<'a>>, String> {
        while let Some((line, terminated)) = self.next_line() {
            let entry = self.text_line(line, labels)?;
            if !terminated {
                return Err("the last line does not end with a line feed".into());
            }
            if entry.is_some() {
                return Ok(entry);
            }
        }
        Ok(None)
    }

    /// One line: None for blank lines and comments.
    fn text_line(&mut self, line: &'a str, labels: &mut Vec<Label<'a>>) -> Result<Option<Entry<'a>>, String> {
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() {
            return Ok(None);
        }
        if let Some(comment) = line.strip_prefix('#') {
            return self.text_comment(comment);
        }
        self.text_sample(line, labels).map(Some)
    }

    /// A `#` line: HELP and TYPE lines are entries, anything else is a comment.
    fn text_comment(&mut self, comment: &'a str) -> Result<Option<Entry<'a>>, String> {
        let mut c = Cursor::new(comment);
        if !c.skip_blanks() {
            return Ok(None);
        }
        let keyword = c.text_token();
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(None);
        }
        c.skip_blanks();
        let name = c.text_token();
        if name.is_empty() {
            return Err(format!("expected metric name after {keyword}"));
        }
        if !super::is_valid_metric_name(name) {
            return Err(format!("invalid metric name {} in {keyword} line", quote(name)));
        }
        c.skip_blanks();
        if keyword == "HELP" {
            return self.text_help(name, c.rest()).map(Some);
        }
        let kind_token = c.text_token();
        c.skip_blanks();
        if !c.at_end() {
            return Err(format!("unexpected text {} after the metric type", quote(c.rest())));
        }
        let kind = FamilyType::parse_text(kind_token).ok_or_else(|| {
            let what =
                if kind_token.is_empty() { "missing metric type".into() } else { format!("invalid metric type {}", quote(kind_token)) };
            format!("{what} for {name} (expected counter, gauge, histogram, summary or untyped)")
        })?;
        self.text_type(name, kind)?;
        Ok(Some(Entry::Type { name, kind }))
    }

    fn text_help(&mut self, name: &'a str, text: &'a str) -> Result<Entry<'a>, String> {
        let seen = self.text.names.entry(name).or_default();
        if seen.has_help {
            return Err(format!("second HELP line for {name}"));
        }
        seen.has_help = true;
        let text = text.trim_end_matches([' ', '\t']);
        let text = if has_escape(text, false) { Cow::Owned(unescape(text, false)) } else { Cow::Borrowed(text) };
        Ok(Entry::Help { name, text })
    }

    fn text_type(&mut self, name: &'a str, kind: FamilyType) -> Result<(), String> {
        let suffixes: &[&str] = match kind {
            FamilyType::Histogram => &["_bucket", "_sum", "_count"],
            FamilyType::Summary => &["_sum", "_count"],
            _ => &[],
        };
        for suffix in suffixes {
            self.key.clear();
            self.key.push_str(name);
            self.key.push_str(suffix);
            if self.text.names.get(self.key.as_str()).is_some_and(|seen| seen.has_samples) {
                return Err(format!("TYPE line for {name} after its sample {}", self.key));
            }
        }
        let seen = self.text.names.entry(name).or_default();
        if seen.kind.is_some() {
            return Err(format!("second TYPE line for {name}"));
        }
        if seen.has_samples {
            return Err(format!("TYPE line for {name} after its sample {name}"));
        }
        seen.kind = Some(kind);
        self.text.last_type = None;
        Ok(())
    }

    fn text_sample(&mut self, line: &'a str, labels: &mut Vec<Label<'a>>) -> Result<Entry<'a>, String> {
        let mut c = Cursor::new(line);
        let name = c.metric_name()?;
        c.skip_blanks();
        let mut series = name;
        if c.eat(b'{') {
            sample_labels(&mut c, false, labels, &mut self.names)?;
            series = &line[..c.pos];
        }
        c.skip_blanks();
        let token = c.text_token();
        if token.is_empty() {
            return Err(format!("expected value after {series}, found {}", describe(c.rest())));
        }
        let value = parse_value(token)?;
        c.skip_blanks();
        let mut timestamp_ms = None;
        if !c.at_end() {
            timestamp_ms = Some(parse_text_timestamp(c.text_token())?);
            c.skip_blanks();
            if !c.at_end() {
                return Err(format!("unexpected text {} after the timestamp", quote(c.rest())));
            }
        }
        self.family_type = self.text_family_type(name);
        Ok(Entry::Sample(Sample { series, name, value, timestamp_ms, exemplar: None, kind: self.family_type.metric_type() }))
    }

    /// The type of the family a sample name belongs to; remembers the name for the TYPE order check.
    fn text_family_type(&mut self, name: &'a str) -> FamilyType {
        if let Some(kind) = self.text.last_type.filter(|_| self.text.last_name == name) {
            return kind;
        }
        let seen = self.text.names.entry(name).or_default();
        seen.has_samples = true;
        let kind = match seen.kind {
            Some(kind) => kind,
            None => self.text_suffix_type(name),
        };
        self.text.last_name = name;
        self.text.last_type = Some(kind);
        kind
    }

    /// The type of the histogram or summary whose `_bucket`, `_sum` or `_count` sample this is.
    fn text_suffix_type(&self, name: &str) -> FamilyType {
        for suffix in ["_bucket", "_sum", "_count"] {
            let Some(base) = name.strip_suffix(suffix) else { continue };
            match self.text.names.get(base).and_then(|seen| seen.kind) {
                Some(FamilyType::Histogram) => return FamilyType::Histogram,
                Some(FamilyType::Summary) if suffix != "_bucket" => return FamilyType::Summary,
                _ => {}
            }
        }
        FamilyType::Unknown
    }

    // ---- OpenMetrics 1.0 ----

    fn next_open_metrics(&mut self, labels: &mut Vec<Label<'a>>) -> Result<Option<Entry<'a>>, String> {
        let Some((line, _)) = self.next_line() else {
            self.line += 1;
            return Err("missing # EOF at the end of the exposition".into());
        };
        if line == "# EOF" {
            if self.pos < self.body.len() {
                self.line += 1;
                return Err("unexpected data after # EOF".into());
            }
            return Ok(None);
        }
        if line.is_empty() {
            return Err("empty line (OpenMetrics allows no blank lines)".into());
        }
        if line.starts_with('#') {
            return self.open_metrics_meta(line).map(Some);
        }
        self.open_metrics_sample(line, labels).map(Some)
    }

    fn open_metrics_meta(&mut self, line: &'a str) -> Result<Entry<'a>, String> {
        if let Some(rest) = line.strip_prefix("# EOF") {
            return Err(format!("unexpected text {} after # EOF", quote(rest)));
        }
        let meta = match line.get(..7) {
            Some("# HELP ") => Meta::Help,
            Some("# TYPE ") => Meta::Type,
            Some("# UNIT ") => Meta::Unit,
            _ => return Err(format!("invalid line {}: only # HELP, # TYPE, # UNIT and # EOF lines may start with #", quote(line))),
        };
        let mut c = Cursor::new(&line[7..]);
        let name = c.metric_name()?;
        if !c.eat(b' ') {
            return Err(match c.peek() {
                None => format!("expected a space and the {} after {name}", meta.value_name()),
                Some(_) => format!("invalid character in metric name at {}", quote(c.rest())),
            });
        }
        let value = c.rest();
        match meta {
            Meta::Help => self.open_metrics_help(name, value),
            Meta::Type => self.open_metrics_type(name, value),
            Meta::Unit => self.open_metrics_unit(name, value),
        }
    }

    fn open_metrics_help(&mut self, name: &'a str, text: &'a str) -> Result<Entry<'a>, String> {
        let escaped = check_escaped_string(text)?;
        self.family_for_meta(name, Meta::Help)?.has_help = true;
        let text = if escaped { Cow::Owned(unescape(text, true)) } else { Cow::Borrowed(text) };
        Ok(Entry::Help { name, text })
    }

    fn open_metrics_type(&mut self, name: &'a str, value: &'a str) -> Result<Entry<'a>, String> {
        let kind = FamilyType::parse_open_metrics(value).ok_or_else(|| {
            format!(
                "invalid metric type {} for {name} (expected counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown)",
                quote(value)
            )
        })?;
        let family = self.family_for_meta(name, Meta::Type)?;
        family.has_type = true;
        family.kind = kind;
        if family.has_nonempty_unit && matches!(kind, FamilyType::Info | FamilyType::StateSet) {
            return Err(format!("{} family {name} must not have a unit", kind.name()));
        }
        Ok(Entry::Type { name, kind })
    }

    fn open_metrics_unit(&mut self, name: &'a str, unit: &'a str) -> Result<Entry<'a>, String> {
        if let Some(bad) = unit.chars().find(|ch| !(ch.is_ascii_alphanumeric() || *ch == '_' || *ch == ':')) {
            return Err(format!("invalid character {bad:?} in unit {}", quote(unit)));
        }
        if !unit.is_empty() && !name.strip_suffix(unit).is_some_and(|base| base.len() > 1 && base.ends_with('_')) {
            return Err(format!("unit {unit} is not a suffix of the metric family name {name} (expected {name} to end in _{unit})"));
        }
        let family = self.family_for_meta(name, Meta::Unit)?;
        family.has_unit = true;
        family.has_nonempty_unit = !unit.is_empty();
        if family.has_nonempty_unit && matches!(family.kind, FamilyType::Info | FamilyType::StateSet) {
            return Err(format!("{} family {name} must not have a unit", family.kind.name()));
        }
        Ok(Entry::Unit { name, unit })
    }

    /// The family a metadata line belongs to, checking it is the first of its kind and comes before the samples.
    fn family_for_meta(&mut self, name: &'a str, meta: Meta) -> Result<&mut Family<'a>, String> {
        let family = match self.open_metrics.current.take() {
            Some(family) if family.name == name && !family.has_samples => self.open_metrics.current.insert(family),
            // Go's client writes a gauge `x` and a counter `x_total` as two consecutive families
            // both named `x`. Prometheus accepts that, so a second family of that name starts here
            // (a family coming back after a different one is still an error).
            Some(family) if family.name == name => self.open_metrics.current.insert(Family::named(name)),
            previous => self.start_family(previous, name)?,
        };
        let repeated = match meta {
            Meta::Help => family.has_help,
            Meta::Type => family.has_type,
            Meta::Unit => family.has_unit,
        };
        if repeated {
            return Err(format!("second # {} line for {name}", meta.keyword()));
        }
        Ok(family)
    }

    /// Ends `previous` and makes `name` the current family, which must not have been seen before.
    fn start_family(&mut self, previous: Option<Family<'a>>, name: &'a str) -> Result<&mut Family<'a>, String> {
        if let Some(previous) = previous {
            self.open_metrics.finished.insert(previous.name, previous.kind);
        }
        if self.open_metrics.finished.contains_key(name) {
            return Err(format!("metric family {name} appears again after another family (families must not be interleaved)"));
        }
        Ok(self.open_metrics.current.insert(Family::named(name)))
    }

    fn open_metrics_sample(&mut self, line: &'a str, labels: &mut Vec<Label<'a>>) -> Result<Entry<'a>, String> {
        let mut c = Cursor::new(line);
        let name = c.metric_name()?;
        if c.eat(b'{') {
            sample_labels(&mut c, true, labels, &mut self.names)?;
        }
        let series = &line[..c.pos];
        if !c.eat(b' ') {
            return Err(match c.peek() {
                None => format!("expected value after {series}"),
                Some(_) => format!("expected a single space after {series}, found {}", describe(c.rest())),
            });
        }
        let value = parse_value(c.after_space_token()?)?;
        let mut timestamp_ms = None;
        let mut exemplar = None;
        if c.eat(b' ') {
            if c.peek() != Some(b'#') {
                timestamp_ms = Some(parse_seconds_timestamp(c.after_space_token()?)?);
            }
            if timestamp_ms.is_none() || c.eat(b' ') {
                exemplar = Some(self.exemplar(&mut c)?);
            }
        }
        if !c.at_end() {
            return Err(format!(
                "unexpected text {} after the {}",
                quote(c.rest()),
                if timestamp_ms.is_some() { "timestamp" } else { "value" }
            ));
        }
        let (kind, suffix) = self.family_for_sample(name)?;
        if exemplar.is_some() {
            check_exemplar_allowed(kind, suffix)?;
        }
        self.family_type = kind;
        Ok(Entry::Sample(Sample { series, name, value, timestamp_ms, exemplar, kind: kind.metric_type() }))
    }

    /// The type of the family a sample belongs to and the sample name's suffix; a sample that does
    /// not fit the current family starts a new family of unknown type named like the sample.
    fn family_for_sample(&mut self, name: &'a str) -> Result<(FamilyType, &'static str), String> {
        if let Some(family) = self.open_metrics.current.as_mut() {
            if let Some(suffix) = family.kind.suffix_of(family.name, name) {
                family.has_samples = true;
                return Ok((family.kind, suffix));
            }
            if family.name == name {
                let expected = family.kind.suffixes().join(", ");
                return Err(format!(
                    "sample name {name} does not fit {} family {name} (expected a suffix of: {expected})",
                    family.kind.name()
                ));
            }
        }
        let previous = self.open_metrics.current.take();
        self.start_family(previous, name)?.has_samples = true;
        if let Some(family) = self.finished_family_of(name) {
            return Err(format!("sample {name} of metric family {family} after another family (families must not be interleaved)"));
        }
        Ok((FamilyType::Unknown, ""))
    }

    /// The finished family that a sample name with a type suffix belongs to, if any.
    fn finished_family_of(&self, name: &str) -> Option<&'a str> {
        const SUFFIXES: [&str; 8] = ["_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info"];
        SUFFIXES.iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            let (family, kind) = self.open_metrics.finished.get_key_value(base)?;
            kind.suffix_of(family, name).map(|_| *family)
        })
    }

    /// ` # {labels} value [timestamp]` after a sample, from the `#`.
    fn exemplar(&mut self, c: &mut Cursor<'a>) -> Result<Exemplar<'a>, String> {
        if !c.rest().starts_with("# ") {
            return Err(format!("expected an exemplar (\" # {{labels}} value\"), found {}", describe(c.rest())));
        }
        c.pos += 2;
        let start = c.pos;
        if !c.eat(b'{') {
            return Err(format!("expected exemplar labels in braces, found {}", describe(c.rest())));
        }
        self.names.clear();
        let mut chars = 0;
        label_set(c, true, |name, raw, _| {
            self.names.push(name);
            chars += name.len() + unescaped_chars(raw);
            Ok(())
        })?;
        if let Some(dup) = duplicate(&mut self.names) {
            return Err(format!("duplicate label name {dup} in exemplar"));
        }
        if chars > 128 {
            return Err(format!("exemplar labels are {chars} characters long, more than 128"));
        }
        let labels = &c.s[start..c.pos];
        if !c.eat(b' ') {
            return Err(format!("expected a space and the exemplar value after {labels}"));
        }
        let value = parse_value(c.after_space_token()?)?;
        let mut timestamp_ms = None;
        if c.eat(b' ') {
            timestamp_ms = Some(parse_seconds_timestamp(c.after_space_token()?)?);
        }
        Ok(Exemplar { labels, value, timestamp_ms })
    }
}

fn check_exemplar_allowed(kind: FamilyType, suffix: &str) -> Result<(), String> {
    match (kind, suffix) {
        (FamilyType::Counter, "_total") | (FamilyType::Histogram | FamilyType::GaugeHistogram, "_bucket") => Ok(()),
        (FamilyType::Counter | FamilyType::Histogram | FamilyType::GaugeHistogram, _) => Err(format!(
            "exemplar on {} {suffix} sample (only counter _total and histogram _bucket samples may have exemplars)",
            kind.with_article()
        )),
        _ => Err(format!(
            "exemplar on {} sample (only counter _total and histogram _bucket samples may have exemplars)",
            kind.with_article()
        )),
    }
}

/// The labels of a sample after its `{`, into `labels`; rejects `__name__` and repeated names.
fn sample_labels<'a>(c: &mut Cursor<'a>, strict: bool, labels: &mut Vec<Label<'a>>, names: &mut Vec<&'a str>) -> Result<(), String> {
    label_set(c, strict, |name, raw, escaped| {
        if name == "__name__" {
            return Err("label __name__ is not allowed (the metric name goes before the braces)".into());
        }
        let value = if escaped { Cow::Owned(unescape(raw, true)) } else { Cow::Borrowed(raw) };
        labels.push(Label { name, value });
        Ok(())
    })?;
    names.clear();
    names.extend(labels.iter().map(|label| label.name));
    match duplicate(names) {
        Some(dup) => Err(format!("duplicate label name {dup}")),
        None => Ok(()),
    }
}

/// A label set after its `{` up to and including the `}`, calling `each(name, raw value, had escapes)`.
/// `strict` is the OpenMetrics grammar: no blanks, no trailing comma.
fn label_set<'a>(
    c: &mut Cursor<'a>,
    strict: bool,
    mut each: impl FnMut(&'a str, &'a str, bool) -> Result<(), String>,
) -> Result<(), String> {
    let blanks = |c: &mut Cursor<'a>| {
        if !strict {
            c.skip_blanks();
        }
    };
    blanks(c);
    if c.eat(b'}') {
        return Ok(());
    }
    loop {
        let name = c.label_name()?;
        blanks(c);
        if !c.eat(b'=') {
            return Err(format!("expected '=' after label name {name}, found {}", describe(c.rest())));
        }
        blanks(c);
        if !c.eat(b'"') {
            return Err(format!("expected label value in quotes after {name}=, found {}", describe(c.rest())));
        }
        let (raw, escaped) = c.quoted()?;
        each(name, raw, escaped)?;
        blanks(c);
        if c.eat(b'}') {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err(format!("expected ',' or '}}' after the value of label {name}, found {}", describe(c.rest())));
        }
        blanks(c);
        if c.peek() == Some(b'}') {
            if strict {
                return Err("trailing comma in label set (not allowed in OpenMetrics)".into());
            }
            c.pos += 1;
            return Ok(());
        }
    }
}

/// A repeated name in `names` (which it may reorder).
fn duplicate<'a>(names: &mut [&'a str]) -> Option<&'a str> {
    if names.len() <= 16 {
        return names.iter().enumerate().find(|(i, name)| names[..*i].contains(name)).map(|(_, name)| *name);
    }
    names.sort_unstable();
    names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

const METRIC_CHAR: u8 = 1;
const LABEL_CHAR: u8 = 2;

/// For each byte: whether it may be in a metric name (`[a-zA-Z0-9_:]`) and in a label name (`[a-zA-Z0-9_]`).
static NAME_CHARS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' {
            table[b] = METRIC_CHAR | LABEL_CHAR;
        } else if c == b':' {
            table[b] = METRIC_CHAR;
        }
        b += 1;
    }
    table
};

/// A position in one line.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.pos += usize::from(found);
        found
    }

    /// Skips an optional `+` or `-`; true for `-`.
    fn sign(&mut self) -> bool {
        let negative = self.peek() == Some(b'-');
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.pos += 1;
        }
        negative
    }

    /// Skips blanks and tabs; true when there were any.
    fn skip_blanks(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// The longest run of bytes matching `keep`, which must reject every non-ASCII byte or none.
    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let len = self.s.as_bytes()[start..].iter().take_while(|b| keep(**b)).count();
        self.pos += len;
        &self.s[start..self.pos]
    }

    /// A text format token: up to the next blank, tab or the end.
    fn text_token(&mut self) -> &'a str {
        self.take_while(|b| b != b' ' && b != b'\t')
    }

    /// An OpenMetrics token: up to the next space or the end.
    fn open_metrics_token(&mut self) -> &'a str {
        self.take_while(|b| b != b' ')
    }

    /// An OpenMetrics token after a single space: one more space or the end of the line is an error.
    fn after_space_token(&mut self) -> Result<&'a str, String> {
        let token = self.open_metrics_token();
        if token.is_empty() {
            return Err(format!("expected a value after a single space, found {}", describe(self.rest())));
        }
        Ok(token)
    }

    fn metric_name(&mut self) -> Result<&'a str, String> {
        let name = self.take_while(|b| NAME_CHARS[usize::from(b)] & METRIC_CHAR != 0);
        match name.as_bytes().first() {
            None => Err(format!("expected metric name, found {}", describe(self.rest()))),
            Some(b) if b.is_ascii_digit() => Err(format!("invalid metric name {} (starts with a digit)", quote(name))),
            Some(_) => Ok(name),
        }
    }

    fn label_name(&mut self) -> Result<&'a str, String> {
        let name = self.take_while(|b| NAME_CHARS[usize::from(b)] & LABEL_CHAR != 0);
        match name.as_bytes().first() {
            None => Err(format!("expected label name, found {}", describe(self.rest()))),
            Some(b) if b.is_ascii_digit() => Err(format!("invalid label name {} (starts with a digit)", quote(name))),
            Some(_) => Ok(name),
        }
    }

    /// The raw text of a quoted string after its opening quote, and whether it has escapes that
    /// change it; leaves the cursor after the closing quote.
    fn quoted(&mut self) -> Result<(&'a str, bool), String> {
        let bytes = self.s.as_bytes();
        let start = self.pos;
        let mut i = start;
        let mut escaped = false;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    self.pos = i + 1;
                    return Ok((&self.s[start..i], escaped));
                }
                b'\\' => {
                    escaped |= matches!(bytes.get(i + 1), Some(b'n' | b'"' | b'\\'));
                    i += 2;
                }
                _ => i += 1,
            }
        }
        Err(format!("label value {} has no closing quote", quote(&self.s[start - 1..])))
    }
}

/// True when `text` has an escape that `unescape` would change (`\"` counts only when `quote`).
fn has_escape(text: &str, quote: bool) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'n' | b'\\') => return true,
            Some(b'"') if quote => return true,
            _ => i += 2,
        }
    }
    false
}

/// Replaces `\\`, `\n` and (when `quote`) `\"`; any other backslash stands for itself.
fn unescape(raw: &str, quote: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let replacement = match after.as_bytes().first() {
            Some(b'n') => '\n',
            Some(b'\\') => '\\',
            Some(b'"') if quote => '"',
            _ => {
                out.push('\\');
                rest = after;
                continue;
            }
        };
        out.push(replacement);
        rest = &after[1..];
    }
    out.push_str(rest);
    out
}

/// The number of characters of a quoted string's value once unescaped.
fn unescaped_chars(raw: &str) -> usize {
    let bytes = raw.as_bytes();
    let (mut i, mut escapes) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'\\' && matches!(bytes.get(i + 1), Some(b'n' | b'"' | b'\\')) {
            escapes += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    raw.chars().count() - escapes
}

/// Checks an OpenMetrics `escaped-string` outside quotes (HELP text); true when it has escapes.
fn check_escaped_string(text: &str) -> Result<bool, String> {
    let bytes = text.as_bytes();
    let (mut i, mut escaped) = (0, false);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Err("unescaped double quote in help text (write \\\")".into()),
            b'\\' if i + 1 == bytes.len() => return Err("help text ends with a lone backslash".into()),
            b'\\' => {
                escaped |= matches!(bytes[i + 1], b'n' | b'"' | b'\\');
                i += 2;
            }
            _ => i += 1,
        }
    }
    Ok(escaped)
}

/// A sample or exemplar value; see the module doc for the accepted forms.
fn parse_value(token: &str) -> Result<f64, String> {
    if token.is_empty() {
        return Err("expected a value, found nothing".into());
    }
    parse_number(token).ok_or_else(|| format!("invalid value {}", quote(token)))
}

fn parse_number(s: &str) -> Option<f64> {
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if negative { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    if s.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    if !is_real_number(s) {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `[sign] digits [. digits] [e [sign] digits]` with at least one mantissa digit (`1.` and `.5` are fine).
fn is_real_number(s: &str) -> bool {
    real_number_parts(s).is_some()
}

/// The parts of a real number: sign, integer digits, fraction digits, exponent (saturated).
fn real_number_parts(s: &str) -> Option<(bool, &str, &str, i64)> {
    let mut c = Cursor::new(s);
    let negative = c.sign();
    let int = c.take_while(|b| b.is_ascii_digit());
    let frac = if c.eat(b'.') { c.take_while(|b| b.is_ascii_digit()) } else { "" };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut exponent = 0i64;
    if c.eat(b'e') || c.eat(b'E') {
        let exp_negative = c.sign();
        let digits = c.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return None;
        }
        exponent = digits.bytes().fold(0i64, |acc, d| (acc * 10 + i64::from(d - b'0')).min(1 << 40));
        if exp_negative {
            exponent = -exponent;
        }
    }
    c.at_end().then_some((negative, int, frac, exponent))
}

/// A text format timestamp: integer milliseconds, optionally signed.
fn parse_text_timestamp(token: &str) -> Result<i64, String> {
    let digits = token.strip_prefix(['-', '+']).unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid timestamp {} (expected integer milliseconds)", quote(token)));
    }
    token.parse::<i64>().map_err(|_| format!("timestamp {} is out of range", quote(token)))
}

/// An OpenMetrics timestamp (a real number of seconds) in milliseconds, truncated towards zero.
fn parse_seconds_timestamp(token: &str) -> Result<i64, String> {
    let Some((negative, int, frac, exponent)) = real_number_parts(token) else {
        return Err(format!("invalid timestamp {} (expected seconds as a real number)", quote(token)));
    };
    let ms = decimal_to_millis(int, frac, exponent).ok_or_else(|| format!("timestamp {} is out of range", quote(token)))?;
    Ok(if negative { -ms } else { ms })
}

/// `int.frac × 10^exponent × 1000` truncated to an integer, from the decimal digits, so exactly.
fn decimal_to_millis(int: &str, frac: &str, exponent: i64) -> Option<i64> {
    let digits = int.bytes().chain(frac.bytes());
    let total = int.len() + frac.len();
    // The number of leading digits that form the integer part of the milliseconds.
    let point = int.len() as i64 + exponent + 3;
    let mut ms: i64 = 0;
    for d in digits.take(point.clamp(0, total as i64) as usize) {
        ms = ms.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    let mut zeros = point - total as i64;
    while zeros > 0 && ms != 0 {
        ms = ms.checked_mul(10)?;
        zeros -= 1;
    }
    Some(ms)
}

/// `s` in quotes for an error message, shortened.
fn quote(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((end, _)) => format!("{:?}…", &s[..end]),
        None => format!("{s:?}"),
    }
}

/// What the rest of a line starts with, for error messages.
fn describe(rest: &str) -> String {
    if rest.is_empty() {
        "the end of the line".into()
    } else {
        quote(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry of `body` in owned form, or the first error.
    fn parse(body: &str, format: ScrapeFormat) -> Result<Vec<String>, ScrapeParseError> {
        let mut parser = ScrapeParser::new(body, format);
        let mut labels = Vec::new();
        let mut out = Vec::new();
        while let Some(entry) = parser.next(&mut labels)? {
            out.push(match entry {
                Entry::Sample(s) => format!("{s:?} {labels:?}"),
                other => format!("{other:?}"),
            });
        }
        Ok(out)
    }

    fn text_err(body: &str) -> String {
        parse(body, ScrapeFormat::Text).expect_err(body).to_string()
    }

    fn om_err(body: &str) -> String {
        parse(body, ScrapeFormat::OpenMetrics).expect_err(body).to_string()
    }

    #[test]
    fn content_type_picks_the_format() {
        let om = ScrapeFormat::OpenMetrics;
        assert_eq!(ScrapeFormat::from_content_type(Some("application/openmetrics-text; version=1.0.0; charset=utf-8")), om);
        assert_eq!(ScrapeFormat::from_content_type(Some("application/openmetrics-text")), om);
        assert_eq!(ScrapeFormat::from_content_type(Some(" Application/OpenMetrics-Text ;version=0.0.1")), om);
        assert_eq!(ScrapeFormat::from_content_type(Some("text/plain; version=0.0.4")), ScrapeFormat::Text);
        assert_eq!(ScrapeFormat::from_content_type(Some("application/json")), ScrapeFormat::Text);
        assert_eq!(ScrapeFormat::from_content_type(Some("")), ScrapeFormat::Text);
        assert_eq!(ScrapeFormat::from_content_type(None), ScrapeFormat::Text);
    }

    #[test]
    fn numbers_follow_go_parse_float() {
        let cases: &[(&str, f64)] = &[
            ("1", 1.0),
            ("-1.5", -1.5),
            ("+2", 2.0),
            ("1.", 1.0),
            (".5", 0.5),
            ("-.5e1", -5.0),
            ("1e3", 1000.0),
            ("1E-3", 0.001),
            ("1.e2", 100.0),
            ("0042", 42.0),
            ("1e-400", 0.0),
            ("+Inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("Inf", f64::INFINITY),
            ("INFINITY", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
        ];
        for (s, want) in cases {
            assert_eq!(parse_number(s), Some(*want), "{s}");
        }
        for s in ["NaN", "nan", "NAN"] {
            assert!(parse_number(s).is_some_and(f64::is_nan), "{s}");
        }
        for s in [
            "", "+", "-", ".", "e1", "1e", "1e+", "+NaN", "-nan", "0x10", "0x1p-2", "1_000", "1e400", "-1e400", "inff", "in", "1..2",
            "1.2.3", "--1", "1 ", " 1", "١",
        ] {
            assert_eq!(parse_number(s).map(f64::to_bits), None, "{s:?}");
        }
    }

    #[test]
    fn text_timestamps_are_signed_integers() {
        assert_eq!(parse_text_timestamp("1395066363000"), Ok(1395066363000));
        assert_eq!(parse_text_timestamp("-3982045"), Ok(-3982045));
        assert_eq!(parse_text_timestamp("+5"), Ok(5));
        assert_eq!(parse_text_timestamp("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_text_timestamp("-9223372036854775808"), Ok(i64::MIN));
        assert!(parse_text_timestamp("9223372036854775808").unwrap_err().contains("out of range"));
        for bad in ["", "-", "1.5", "1e3", "0x10", "1_0", "+-1", "NaN"] {
            assert!(parse_text_timestamp(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn seconds_convert_to_exact_milliseconds() {
        let cases: &[(&str, i64)] = &[
            ("1520879607.789", 1520879607789),
            ("1520879607", 1520879607000),
            ("1520879607.7899", 1520879607789),
            ("0.0019", 1),
            ("0.0001", 0),
            ("-0.0019", -1),
            ("-1.5", -1500),
            ("1.5e3", 1500000),
            ("1e-3", 1),
            ("15e-4", 1),
            ("0.001e3", 1000),
            ("1604676851.123456789", 1604676851123),
            ("0e999999999999", 0),
            ("000123", 123000),
            (".5", 500),
            ("5.", 5000),
            ("9223372036854775.807", i64::MAX),
            ("-9223372036854775.807", -i64::MAX),
            ("1e-99999999999999999999", 0),
        ];
        for (s, want) in cases {
            assert_eq!(parse_seconds_timestamp(s), Ok(*want), "{s}");
        }
        assert!(parse_seconds_timestamp("9223372036854775.808").unwrap_err().contains("out of range"));
        assert!(parse_seconds_timestamp("1e300").unwrap_err().contains("out of range"));
        for bad in ["", "NaN", "+Inf", "1e", "abc", "1.2.3"] {
            assert!(parse_seconds_timestamp(bad).unwrap_err().contains("invalid timestamp"), "{bad:?}");
        }
    }

    #[test]
    fn unescaping() {
        assert_eq!(unescape(r#"a\\b\nc\"d\qe"#, true), "a\\b\nc\"d\\qe");
        assert_eq!(unescape(r#"a\"b\\\n"#, false), "a\\\"b\\\n");
        assert_eq!(unescape(r"end\", true), "end\\");
        assert!(!has_escape(r"C:\q", true));
        assert!(has_escape(r"a\nb", false));
        assert!(!has_escape(r#"a\"b"#, false));
        assert!(has_escape(r#"a\"b"#, true));
        assert_eq!(unescaped_chars(r#"ab\n\"\\\qé"#), 8);
    }

    #[test]
    fn duplicate_names_small_and_large() {
        let mut small = vec!["a", "b", "a"];
        assert_eq!(duplicate(&mut small), Some("a"));
        let mut many: Vec<String> = (0..40).map(|i| format!("l{i}")).collect();
        let mut refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(duplicate(&mut refs), None);
        many.push("l7".into());
        let mut refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(duplicate(&mut refs), Some("l7"));
    }

    #[test]
    fn family_suffixes() {
        assert_eq!(FamilyType::Counter.suffix_of("foo", "foo_total"), Some("_total"));
        assert_eq!(FamilyType::Counter.suffix_of("foo", "foo"), None);
        assert_eq!(FamilyType::Summary.suffix_of("foo", "foo"), Some(""));
        assert_eq!(FamilyType::GaugeHistogram.suffix_of("foo", "foo_gsum"), Some("_gsum"));
        assert_eq!(FamilyType::GaugeHistogram.suffix_of("foo", "foo_sum"), None);
        assert_eq!(FamilyType::Info.suffix_of("foo", "foo_info"), Some("_info"));
        assert_eq!(FamilyType::Gauge.suffix_of("foo", "foobar"), None);
        assert_eq!(FamilyType::GaugeHistogram.metric_type(), MetricType::Histogram);
        assert_eq!(FamilyType::StateSet.metric_type(), MetricType::Gauge);
        assert_eq!(FamilyType::Unknown.metric_type(), MetricType::Untyped);
    }

    #[test]
    fn text_line_errors_name_the_problem() {
        assert_eq!(text_err("foo{a=b} 1\n"), "line 1: expected label value in quotes after a=, found \"b} 1\"");
        assert_eq!(text_err("foo 1"), "line 1: the last line does not end with a line feed");
        assert_eq!(text_err("\nfoo\n"), "line 2: expected value after foo, found the end of the line");
        assert_eq!(text_err("# TYPE foo counter\n# TYPE foo gauge\n"), "line 2: second TYPE line for foo");
    }

    #[test]
    fn open_metrics_line_errors_name_the_problem() {
        assert_eq!(om_err("foo 1\n"), "line 2: missing # EOF at the end of the exposition");
        assert_eq!(om_err(""), "line 1: missing # EOF at the end of the exposition");
        assert_eq!(
            om_err("# TYPE foo gauge\nfoo 1 # {a=\"b\"} 1\n# EOF\n"),
            "line 2: exemplar on a gauge sample (only counter _total and histogram _bucket samples may have exemplars)"
        );
    }

    #[test]
    fn errors_are_sticky() {
        let mut parser = ScrapeParser::new("foo 1\nbad line\nbar 2\n", ScrapeFormat::Text);
        let mut labels = Vec::new();
        assert!(matches!(parser.next(&mut labels), Ok(Some(Entry::Sample(_)))));
        let err = parser.next(&mut labels).unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(parser.next(&mut labels).unwrap_err(), err);
        assert_eq!(parser.line(), 2);
    }
}
