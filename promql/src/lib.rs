//! fleetwatch-promql: a PromQL evaluation engine over an in-memory series store, matching Prometheus 2.42's
//! results, and promtool's rule unit-test file format.
//!
//! Parsing is done by the `promql-parser` crate; [`parse`] adds [`check_supported`], which rejects every
//! construct the engine does not evaluate. [`Engine::instant`] and [`Engine::range`] evaluate against any
//! [`Storage`]; [`MemStorage`] is a simple one for tests.

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
pub use labels::{Labels, LabelsBuilder, METRIC_NAME};
pub use promql_parser::label::{MatchOp, Matcher};
pub use promql_parser::parser::Expr;
pub use storage::{has_sample_in, is_stale_nan, matches, stale_nan, MemStorage, Sample, Storage, STALE_NAN_BITS};
pub use support::{check_supported, selector_needs, selector_ranges, SelectorNeed, SelectorRange, Unsupported, SUPPORTED_FUNCTIONS};

/// A query that cannot be evaluated: a syntax error or an unsupported construct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("parse error: {0}")]
    Syntax(String),
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
}

/// Parses a PromQL query and checks that the engine supports every construct in it.
pub fn parse(query: &str) -> Result<Expr, ParseError> {
    let expr = promql_parser::parser::parse(query).map_err(ParseError::Syntax)?;
    check_supported(&expr)?;
    Ok(expr)
}
