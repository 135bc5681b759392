//! fleetwatch-promql: a PromQL evaluation engine over an in-memory series store, matching Prometheus 2.42's
//! results (as Debian's `promtool` 2.42 computes them), and promtool's rule unit-test file format.
//!
//! Parsing is done by the `promql-parser` crate; [`parse`] adds [`check_supported`], which rejects every
//! construct the engine does not evaluate, and gives regex matchers Go's semantics. [`Engine::instant`] and
//! [`Engine::range`] evaluate against any [`Storage`]; [`MemStorage`] is a simple one for tests, and
//! [`selector_needs`]/[`selector_ranges`] tell a store what a query will read.
//!
//! ```ignore
//! let expr = fleetwatch_promql::parse("sum by (job) (rate(http_requests_total[5m]))")?;
//! let value = fleetwatch_promql::Engine::default().instant(&store, &expr, now_ms)?;
//! ```
//!
//! Prometheus 2.42's `@` handling inside range evaluations (subqueries, range queries) is reproduced,
//! quirks included: step-invariant expressions are evaluated once at the evaluation's first step, `@` range
//! arguments of `predict_linear`/`quantile_over_time` slide with the step, offsets are not re-adjusted for a
//! subquery starting where its parent does.
//!
//! Known differences from Prometheus 2.42:
//! - Float sums and means depend on the order of their terms, and `topk`/`bottomk` ties on it too; the
//!   engine works in the order the store calls back (label order for `MemStorage`), Prometheus in its own
//!   series order (ingestion order for recent data), so such results can differ in the last bits or in
//!   which tied series is kept, as they do between Prometheus servers.
//! - Parse errors are `promql-parser`'s messages, not Prometheus's; evaluation errors use Prometheus's.
//! - Regexes run on Rust's `regex` with Go's ASCII classes; RE2-only syntax the `regex` crate lacks is
//!   rejected when parsing. Native histograms do not exist here; there is no query timeout or sample limit,
//!   only `Engine::max_steps`.

mod aggregate;
mod binary;
mod eval;
mod functions;
pub mod gomath;
pub mod labels;
pub mod storage;
mod support;
pub mod testfile;

pub use eval::{Engine, EvalError, Value};
pub use labels::{Interner, Labels, LabelsBuilder, METRIC_NAME};
pub use promql_parser::label::{MatchOp, Matcher};
pub use promql_parser::parser::Expr;
pub use storage::{has_sample_in, is_stale_nan, matches, stale_nan, MemStorage, Sample, Storage, Until, STALE_NAN_BITS};
pub use support::{check_supported, selector_needs, selector_ranges, SelectorNeed, SelectorRange, Unsupported, SUPPORTED_FUNCTIONS};

/// A query that cannot be evaluated: a syntax error or an unsupported construct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("parse error: {0}")]
    Syntax(String),
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
}

/// Parses a PromQL query, checks that the engine supports every construct in it, and gives its regex
/// matchers Go's semantics (ASCII `\d`, `\w`, `\s`, `\b`, as Prometheus matches).
pub fn parse(query: &str) -> Result<Expr, ParseError> {
    let mut expr = promql_parser::parser::parse(query).map_err(ParseError::Syntax)?;
    check_supported(&expr)?;
    support::use_go_regexes(&mut expr);
    Ok(expr)
}
