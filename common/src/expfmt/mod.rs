//! The Prometheus exposition formats: metric families built by collectors, encoded as the classic
//! text format 0.0.4 or OpenMetrics 1.0, content negotiation from `Accept`, a parser for the text
//! format (used by the textfile collector), and a streaming parser for scrape bodies in either
//! format (used by the alerter).

mod encode;
mod parse;
mod scrape;

pub use encode::{encode, negotiate, push_escaped_label_value, push_rendered_sample, Chunks, Deferred, Family, Format, MetricType};
pub use parse::{parse_text, ParseError, ParsedFamily, ParsedSample};
pub use scrape::{Entry, Exemplar, FamilyType, Label, Sample, ScrapeFormat, ScrapeParseError, ScrapeParser};

/// True when `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// True when `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_')) && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
