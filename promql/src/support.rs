//! What the engine supports (`check_supported`), and what a query needs from the store (`selector_needs`,
//! `selector_ranges`), plus small AST helpers shared by the evaluator.

use std::time::{Duration, SystemTime};

use promql_parser::label::{MatchOp, Matcher, METRIC_NAME};
use promql_parser::parser::token;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

/// A construct the engine does not evaluate (rejected before evaluation, never evaluated wrongly).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    #[error("unsupported function: {0}()")]
    Function(String),
    #[error("unsupported aggregation: {0}")]
    Aggregation(String),
    #[error("unsupported binary operator: {0}")]
    Operator(String),
    #[error("unsupported fill modifier on binary operator {0}")]
    FillModifier(String),
    #[error("unsupported 'or' between label matchers in selector {0}")]
    OrMatchers(String),
    #[error("unsupported expression: {0}")]
    Expression(String),
}

/// The functions the engine evaluates.
pub const SUPPORTED_FUNCTIONS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "present_over_time",
    "absent",
    "absent_over_time",
    "abs",
    "ceil",
    "floor",
    "round",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sgn",
    "clamp",
    "clamp_min",
    "clamp_max",
    "time",
    "timestamp",
    "vector",
    "scalar",
    "sort",
    "sort_desc",
    "label_replace",
    "label_join",
    "histogram_quantile",
    "minute",
    "hour",
    "day_of_week",
    "day_of_month",
    "days_in_month",
    "month",
    "year",
];

/// Rejects every construct outside the supported set, naming it.
pub fn check_supported(expr: &Expr) -> Result<(), Unsupported> {
    match expr {
        Expr::Aggregate(a) => {
            let id = a.op.id();
            let ok = matches!(
                id,
                token::T_SUM
                    | token::T_AVG
                    | token::T_MIN
                    | token::T_MAX
                    | token::T_COUNT
                    | token::T_STDDEV
                    | token::T_STDVAR
                    | token::T_TOPK
                    | token::T_BOTTOMK
                    | token::T_QUANTILE
                    | token::T_COUNT_VALUES
                    | token::T_GROUP
            );
            if !ok {
                return Err(Unsupported::Aggregation(a.op.to_string()));
            }
            if let Some(p) = &a.param {
                check_supported(p)?;
            }
            check_supported(&a.expr)
        }
        Expr::Unary(u) => check_supported(&u.expr),
        Expr::Binary(b) => {
            let id = b.op.id();
            let ok = matches!(
                id,
                token::T_ADD
                    | token::T_SUB
                    | token::T_MUL
                    | token::T_DIV
                    | token::T_MOD
                    | token::T_POW
                    | token::T_EQLC
                    | token::T_NEQ
                    | token::T_GTR
                    | token::T_LSS
                    | token::T_GTE
                    | token::T_LTE
                    | token::T_LAND
                    | token::T_LOR
                    | token::T_LUNLESS
            );
            if !ok {
                return Err(Unsupported::Operator(b.op.to_string()));
            }
            if let Some(m) = &b.modifier {
                if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                    return Err(Unsupported::FillModifier(b.op.to_string()));
                }
            }
            check_supported(&b.lhs)?;
            check_supported(&b.rhs)
        }
        Expr::Paren(p) => check_supported(&p.expr),
        Expr::Subquery(s) => {
            if s.step == Some(Duration::ZERO) {
                return Err(Unsupported::Expression("subquery with a zero step".into()));
            }
            check_supported(&s.expr)
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => check_selector(vs),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs),
        Expr::Call(c) => {
            if !SUPPORTED_FUNCTIONS.contains(&c.func.name) {
                return Err(Unsupported::Function(c.func.name.to_string()));
            }
            for a in &c.args.args {
                check_supported(a)?;
            }
            Ok(())
        }
        Expr::Extension(e) => Err(Unsupported::Expression(format!("extension {}", e.expr.name()))),
    }
}

fn check_selector(vs: &VectorSelector) -> Result<(), Unsupported> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(Unsupported::OrMatchers(vs.to_string()));
    }
    Ok(())
}

/// What a query needs from the store: one entry per selector in the expression.
#[derive(Debug, Clone)]
pub struct SelectorNeed {
    /// The selector's matchers, including a `__name__` matcher when a name was given.
    pub matchers: Vec<Matcher>,
    /// How far back from the evaluation time samples are needed (range + offset + enclosing subquery ranges
    /// and offsets, plus the lookback delta for instant selectors).
    pub lookback_ms: i64,
    /// How far after the evaluation time samples are needed (non-zero only with negative offsets).
    pub lookahead_ms: i64,
    /// True when an `@` modifier pins the window to an absolute time (then use `selector_ranges` for the
    /// concrete query; `lookback_ms`/`lookahead_ms` are computed as if `@` were the evaluation time).
    pub pinned: bool,
}

/// The store reads a query needs, relative to its evaluation time (see `SelectorNeed`).
pub fn selector_needs(expr: &Expr, lookback_ms: i64) -> Vec<SelectorNeed> {
    let mut out = Vec::new();
    let w = Walk { lookback: lookback_ms, q_start: 0, q_end: 0, ignore_at: true };
    walk_selectors(expr, (0, 0), false, w, &mut |vs, mint, maxt, _| {
        out.push(SelectorNeed { matchers: selector_matchers(vs), lookback_ms: -mint, lookahead_ms: maxt.max(0), pinned: false });
    });
    // Mark selectors under an @ modifier (their own or an enclosing subquery's).
    let mut pinned = Vec::new();
    collect_pinned(expr, false, &mut pinned);
    for (n, p) in out.iter_mut().zip(pinned) {
        n.pinned = p;
    }
    out
}

fn collect_pinned(e: &Expr, under: bool, out: &mut Vec<bool>) {
    match e {
        Expr::VectorSelector(vs) => out.push(under || vs.at.is_some()),
        Expr::MatrixSelector(ms) => out.push(under || ms.vs.at.is_some()),
        Expr::Subquery(s) => collect_pinned(&s.expr, under || s.at.is_some(), out),
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                collect_pinned(p, under, out);
            }
            collect_pinned(&a.expr, under, out);
        }
        Expr::Unary(u) => collect_pinned(&u.expr, under, out),
        Expr::Binary(b) => {
            collect_pinned(&b.lhs, under, out);
            collect_pinned(&b.rhs, under, out);
        }
        Expr::Paren(p) => collect_pinned(&p.expr, under, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_pinned(a, under, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// One selector's absolute read for a concrete query.
#[derive(Debug, Clone)]
pub struct SelectorRange {
    pub matchers: Vec<Matcher>,
    pub mint: i64,
    pub maxt: i64,
}

/// The absolute time ranges each selector reads for a query over `[start_ms, end_ms]` (equal for an
/// instant query).
pub fn selector_ranges(expr: &Expr, start_ms: i64, end_ms: i64, lookback_ms: i64) -> Vec<SelectorRange> {
    let mut out = Vec::new();
    let w = Walk { lookback: lookback_ms, q_start: start_ms, q_end: end_ms, ignore_at: false };
    walk_selectors(expr, (start_ms, end_ms), false, w, &mut |vs, mint, maxt, _| {
        out.push(SelectorRange { matchers: selector_matchers(vs), mint, maxt })
    });
    out
}

/// Parameters of a selector walk.
#[derive(Clone, Copy)]
pub(crate) struct Walk {
    pub lookback: i64,
    pub q_start: i64,
    pub q_end: i64,
    /// Treat `@` as the evaluation time (for relative needs).
    pub ignore_at: bool,
}

/// Visits every selector with the time range `[mint, maxt]` it reads when its enclosing expression is
/// evaluated at times in `window`; `multi` tells whether it is evaluated at more than one time (inside a
/// subquery or a range query).
pub(crate) fn walk_selectors(e: &Expr, window: (i64, i64), multi: bool, w: Walk, f: &mut dyn FnMut(&VectorSelector, i64, i64, bool)) {
    let (lo, hi) = window;
    match e {
        Expr::VectorSelector(vs) => {
            let (rlo, rhi) = ref_window(vs.at.as_ref(), vs.offset.as_ref(), lo, hi, w);
            f(vs, rlo.saturating_sub(w.lookback), rhi, multi);
        }
        Expr::MatrixSelector(ms) => {
            let (rlo, rhi) = ref_window(ms.vs.at.as_ref(), ms.vs.offset.as_ref(), lo, hi, w);
            f(&ms.vs, rlo.saturating_sub(duration_ms(&ms.range)), rhi, multi);
        }
        Expr::Subquery(s) => {
            let off = offset_ms(s.offset.as_ref());
            let range = duration_ms(&s.range);
            let (elo, ehi) = match &s.at {
                Some(at) if !w.ignore_at => {
                    let t = at_ms(at, w.q_start, w.q_end);
                    (t.saturating_sub(off), t.saturating_sub(off))
                }
                _ => (lo.saturating_sub(off), hi.saturating_sub(off)),
            };
            walk_selectors(&s.expr, (elo.saturating_sub(range), ehi), true, w, f);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk_selectors(p, window, multi, w, f);
            }
            walk_selectors(&a.expr, window, multi, w, f);
        }
        Expr::Unary(u) => walk_selectors(&u.expr, window, multi, w, f),
        Expr::Binary(b) => {
            walk_selectors(&b.lhs, window, multi, w, f);
            walk_selectors(&b.rhs, window, multi, w, f);
        }
        Expr::Paren(p) => walk_selectors(&p.expr, window, multi, w, f),
        Expr::Call(c) => {
            for a in &c.args.args {
                walk_selectors(a, window, multi, w, f);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The reference times (evaluation or `@` time, minus the offset) a selector reads at, for evaluation times
/// in `[lo, hi]`.
fn ref_window(at: Option<&AtModifier>, off: Option<&Offset>, lo: i64, hi: i64, w: Walk) -> (i64, i64) {
    let off = offset_ms(off);
    match at {
        Some(at) if !w.ignore_at => {
            let t = at_ms(at, w.q_start, w.q_end).saturating_sub(off);
            (t, t)
        }
        _ => (lo.saturating_sub(off), hi.saturating_sub(off)),
    }
}

/// The selector's matchers including the `__name__` matcher for a given name.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Vec<Matcher> {
    let mut ms = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(n) = &vs.name {
        ms.push(Matcher::new(MatchOp::Equal, METRIC_NAME, n));
    }
    ms.extend(vs.matchers.matchers.iter().cloned());
    ms
}

pub(crate) fn duration_ms(d: &Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

pub(crate) fn offset_ms(o: Option<&Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

pub(crate) fn at_ms(at: &AtModifier, q_start: i64, q_end: i64) -> i64 {
    match at {
        AtModifier::Start => q_start,
        AtModifier::End => q_end,
        AtModifier::At(t) => system_time_ms(t),
    }
}

pub(crate) fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}

/// Strips any number of parentheses.
pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Recompiles the selectors' regex matchers with Go's semantics (ASCII `\d`, `\w`, `\s`, `\b`), as
/// Prometheus matches them; a pattern the translation cannot compile keeps the parser's regex.
pub(crate) fn use_go_regexes(e: &mut Expr) {
    fn fix(ms: &mut [Matcher]) {
        for m in ms {
            let compiled = match &m.op {
                MatchOp::Re(_) | MatchOp::NotRe(_) => crate::functions::compile_anchored(&m.value),
                _ => None,
            };
            if let Some(r) = compiled {
                m.op = match m.op {
                    MatchOp::Re(_) => MatchOp::Re(r),
                    _ => MatchOp::NotRe(r),
                };
            }
        }
    }
    match e {
        Expr::VectorSelector(vs) => fix(&mut vs.matchers.matchers),
        Expr::MatrixSelector(ms) => fix(&mut ms.vs.matchers.matchers),
        Expr::Subquery(s) => use_go_regexes(&mut s.expr),
        Expr::Aggregate(a) => {
            if let Some(p) = &mut a.param {
                use_go_regexes(p);
            }
            use_go_regexes(&mut a.expr);
        }
        Expr::Unary(u) => use_go_regexes(&mut u.expr),
        Expr::Binary(b) => {
            use_go_regexes(&mut b.lhs);
            use_go_regexes(&mut b.rhs);
        }
        Expr::Paren(p) => use_go_regexes(&mut p.expr),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| use_go_regexes(a)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}
