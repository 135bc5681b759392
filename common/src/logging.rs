//! Logging set-up for both daemons: `tracing` with `--log.level` and `--log.format=logfmt|json`.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("unknown log format {0:?} (expected logfmt or json)")]
    Format(String),
    #[error("invalid log level {0:?} (expected debug, info, warn or error)")]
    Level(String),
}

impl std::str::FromStr for LogFormat {
    type Err = LoggingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            other => Err(LoggingError::Format(other.to_string())),
        }
    }
}

/// Installs the global subscriber writing to stderr. Call once, at start-up.
pub fn init(format: LogFormat, level: &str) -> Result<(), LoggingError> {
    if !matches!(level, "debug" | "info" | "warn" | "error" | "trace") {
        return Err(LoggingError::Level(level.to_string()));
    }
    let filter = EnvFilter::new(level);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
    };
    Ok(())
}

/// Writes `ts=... level=... target=... msg="..." key=value` lines.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        w.write_str("ts=")?;
        SystemTime.format_time(&mut w)?;
        let meta = event.metadata();
        write!(w, " level={} target={}", meta.level().as_str().to_lowercase(), meta.target())?;
        let mut visitor = LogfmtVisitor { out: String::new() };
        event.record(&mut visitor);
        writeln!(w, "{}", visitor.out)
    }
}

struct LogfmtVisitor {
    out: String,
}

impl LogfmtVisitor {
    fn push(&mut self, key: &str, value: &str) {
        let key = if key == "message" { "msg" } else { key };
        self.out.push(' ');
        self.out.push_str(key);
        self.out.push('=');
        push_logfmt_value(&mut self.out, value);
    }
}

/// Quotes a value when it is empty or holds spaces, quotes, `=` or control characters.
fn push_logfmt_value(out: &mut String, value: &str) {
    let needs_quotes = value.is_empty() || value.chars().any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Visit for LogfmtVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field.name(), &format!("{value:?}"));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field.name(), &value.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_only_when_needed() {
        let mut s = String::new();
        push_logfmt_value(&mut s, "plain");
        s.push(' ');
        push_logfmt_value(&mut s, "has space \"q\"");
        s.push(' ');
        push_logfmt_value(&mut s, "");
        assert_eq!(s, r#"plain "has space \"q\"" """#);
    }

    #[test]
    fn rejects_unknown_format_and_level() {
        assert!("xml".parse::<LogFormat>().is_err());
        assert!(init(LogFormat::Logfmt, "loud").is_err());
    }
}
