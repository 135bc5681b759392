//! The evaluator: walks the AST at one timestamp (range queries and subqueries re-enter it at each of their
//! steps, within a context that mirrors Prometheus's range evaluations), reads selectors from the store, and
//! owns `Engine`, `Value` and `EvalError`.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector};

use crate::labels::{IdBuild, Labels};
use crate::storage::{is_stale_nan, Sample, Storage};
use crate::support::{at_ms, check_supported, duration_ms, offset_ms, selector_matchers, walk_selectors, Unsupported, Walk};
use crate::{aggregate, binary, functions};

/// Evaluation settings.
#[derive(Clone, Debug)]
pub struct Engine {
    /// How far back an instant selector looks for the latest sample (Prometheus's lookback delta).
    pub lookback_ms: i64,
    /// The step of subqueries written without one (`[1h:]`); Prometheus uses the global evaluation interval
    /// and promtool the test file's `evaluation_interval`.
    pub subquery_step_ms: i64,
    /// The most steps a range query may have, and the most subquery steps one query may evaluate in all
    /// (a guard against runaway queries).
    pub max_steps: i64,
}

impl Default for Engine {
    fn default() -> Self {
        Engine { lookback_ms: 300_000, subquery_step_ms: 60_000, max_steps: 1_000_000 }
    }
}

/// The result of an instant query at time t.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<(Labels, f64)>),
    /// For queries of a range selector or a subquery.
    Matrix(Vec<(Labels, Vec<Sample>)>),
}

/// An evaluation failure; messages are Prometheus's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("vector cannot contain metrics with the same labelset")]
    DuplicateLabelset,
    #[error(
        "found duplicate series for the match group {group} on the {side} hand-side of the operation: [{first}, {second}];many-to-many matching not allowed: matching labels must be unique on one side"
    )]
    ManyToMany { group: String, side: &'static str, first: String, second: String },
    #[error("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)")]
    ManyToOneNotExplicit,
    #[error("multiple matches for labels: grouping labels must ensure unique results")]
    GroupingNotUnique,
    /// A bad argument: an invalid regex or label name, a parameter out of range.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("invalid expression type \"{0}\" for range query, must be Scalar or instant Vector")]
    RangeQueryType(&'static str),
    #[error("too many steps: {0}")]
    TooManySteps(String),
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// An expression of the wrong type where the parser should have rejected it.
    #[error("unexpected value type: {0}")]
    Type(String),
}

/// One element of an instant vector.
pub(crate) type Elem = (Labels, f64);

/// An intermediate value.
#[derive(Clone)]
pub(crate) enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<Elem>),
    Matrix(Vec<(Labels, Vec<Sample>)>),
}

impl Val {
    fn kind(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Str(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
        }
    }
}

/// Series with their samples, shared.
type SeriesData = Rc<Vec<(Labels, Vec<Sample>)>>;

/// The range evaluation in progress, as Prometheus 2.42 tracks it: its first and last step, and how `@`
/// offsets were last adjusted for it (`setOffsetForAtModifier`: relative to `anchor`, minus the offsets of
/// the subqueries between the anchoring expression and the node). For ordinary queries this only reproduces
/// the intended `@` semantics; the bookkeeping exists for the cases where 2.42 slides `@` windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Ctx {
    pub(crate) start: i64,
    pub(crate) end: i64,
    anchor: i64,
    path_offset: i64,
    path_at: Option<i64>,
}

impl Ctx {
    fn new(start: i64, end: i64) -> Ctx {
        Ctx { start, end, anchor: start, path_offset: 0, path_at: None }
    }

    /// The offset Prometheus gives a node with `@ t` and its own offset `orig` in this evaluation.
    pub(crate) fn at_offset(&self, orig: i64, t: i64) -> i64 {
        let subq = match self.path_at {
            Some(ts) => self.path_offset.wrapping_add(self.anchor.wrapping_sub(ts)),
            None => self.path_offset,
        };
        orig.wrapping_add(self.anchor.wrapping_sub(t)).wrapping_sub(subq)
    }
}

/// A subquery's points for one consumer step, and the window `[mint, maxt]` the consumer reads.
pub(crate) struct SubqueryPoints {
    pub(crate) series: Vec<(Labels, Vec<Sample>)>,
    pub(crate) maxt: i64,
}

pub(crate) struct Evaluator<'a> {
    storage: &'a dyn Storage,
    pub(crate) lookback: i64,
    sub_step: i64,
    /// Subquery steps this query may still evaluate (all subqueries together).
    steps_left: i64,
    pub(crate) q_start: i64,
    pub(crate) q_end: i64,
    /// Every selector's read range (Prometheus's per-selector storage query): reads are clipped to it.
    ranges: HashMap<usize, (i64, i64)>,
    /// Selectors read at more than one time: read from the store once, for their whole range.
    multi: HashSet<usize>,
    cache: HashMap<usize, SeriesData>,
    /// Subquery results by node and enclosing range evaluation (read by each of its steps).
    subquery_results: HashMap<(usize, Ctx), SeriesData>,
    /// Step-invariant expressions (fixed by `@`) that Prometheus evaluates once per range evaluation, at its
    /// first step (`PreprocessExpr`'s `StepInvariantExpr`s).
    wraps: HashSet<usize>,
    wrap_memo: HashMap<(usize, Ctx), Val>,
    /// For functions of range vectors and unary minus evaluated over several steps: the input series each
    /// output series came from (Prometheus checks the whole output matrix for duplicate label sets).
    origins: HashMap<(usize, Ctx), HashMap<Labels, Labels>>,
    pub(crate) ctx: Ctx,
    /// Compiled `label_replace` regexes by call node.
    pub(crate) regexes: HashMap<usize, Rc<regex::Regex>>,
}

fn node_key<T>(n: &T) -> usize {
    n as *const T as usize
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Evaluates `expr` at `t_ms`.
    pub fn instant(&self, storage: &dyn Storage, expr: &Expr, t_ms: i64) -> Result<Value, EvalError> {
        check_supported(expr)?;
        let mut ev = Evaluator::new(self, storage, t_ms, t_ms);
        ev.plan(expr, t_ms, t_ms, false);
        Ok(match ev.eval(expr, t_ms)? {
            Val::Scalar(v) => Value::Scalar(v),
            Val::Str(s) => Value::String(s),
            Val::Vector(v) => Value::Vector(v),
            Val::Matrix(m) => Value::Matrix(m),
        })
    }

    /// Evaluates `expr` at every step from `start_ms` to `end_ms`; series come sorted by labels.
    pub fn range(
        &self,
        storage: &dyn Storage,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<(Labels, Vec<Sample>)>, EvalError> {
        check_supported(expr)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            ValueType::Matrix => return Err(EvalError::RangeQueryType("range vector")),
            ValueType::String => return Err(EvalError::RangeQueryType("string")),
        }
        if step_ms <= 0 {
            return Err(EvalError::InvalidArgument("zero or negative query resolution step widths are not accepted".into()));
        }
        if end_ms < start_ms {
            return Err(EvalError::InvalidArgument("end timestamp must not be before start time".into()));
        }
        if end_ms.saturating_sub(start_ms) / step_ms >= self.max_steps {
            return Err(EvalError::TooManySteps(format!("range query of more than {} steps", self.max_steps)));
        }
        let mut ev = Evaluator::new(self, storage, start_ms, end_ms);
        ev.plan(expr, start_ms, end_ms, start_ms != end_ms);
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut out: Vec<(Labels, Vec<Sample>)> = Vec::new();
        let mut t = start_ms;
        while t <= end_ms {
            let elems = match ev.eval(expr, t)? {
                Val::Scalar(v) => vec![(Labels::empty(), v)],
                Val::Vector(v) => v,
                other => return Err(EvalError::Type(other.kind().to_string())),
            };
            for (l, v) in elems {
                let i = *index.entry(l.clone()).or_insert_with(|| {
                    out.push((l, Vec::new()));
                    out.len() - 1
                });
                out[i].1.push(Sample { t, v });
            }
            match t.checked_add(step_ms) {
                Some(next) => t = next,
                None => break,
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

impl<'a> Evaluator<'a> {
    fn new(engine: &Engine, storage: &'a dyn Storage, q_start: i64, q_end: i64) -> Self {
        Evaluator {
            storage,
            lookback: engine.lookback_ms,
            sub_step: engine.subquery_step_ms,
            steps_left: engine.max_steps,
            q_start,
            q_end,
            ranges: HashMap::new(),
            multi: HashSet::new(),
            cache: HashMap::new(),
            subquery_results: HashMap::new(),
            wraps: HashSet::new(),
            wrap_memo: HashMap::new(),
            origins: HashMap::new(),
            ctx: Ctx::new(q_start, q_end),
            regexes: HashMap::new(),
        }
    }

    /// Works out each selector's read range and which selectors and subqueries are evaluated at more than
    /// one time, and marks the step-invariant expressions.
    fn plan(&mut self, expr: &Expr, lo: i64, hi: i64, multi: bool) {
        let w = Walk { lookback: self.lookback, q_start: self.q_start, q_end: self.q_end, ignore_at: false };
        let (ranges, multis) = (&mut self.ranges, &mut self.multi);
        walk_selectors(expr, (lo, hi), multi, w, &mut |vs, mint, maxt, multi| {
            ranges.entry(node_key(vs)).and_modify(|r| *r = (r.0.min(mint), r.1.max(maxt))).or_insert((mint, maxt));
            if multi {
                multis.insert(node_key(vs));
            }
        });
        if mark_step_invariant(expr, &mut self.wraps) {
            self.wraps.insert(node_key(expr));
        }
    }

    pub(crate) fn eval(&mut self, e: &Expr, ts: i64) -> Result<Val, EvalError> {
        if self.ctx.start != self.ctx.end && self.wraps.contains(&node_key(e)) {
            return self.eval_step_invariant(e);
        }
        self.eval_node(e, ts)
    }

    /// A step-invariant expression: evaluated once per range evaluation, at its first step.
    fn eval_step_invariant(&mut self, e: &Expr) -> Result<Val, EvalError> {
        let key = (node_key(e), self.ctx);
        if let Some(v) = self.wrap_memo.get(&key) {
            return Ok(v.clone());
        }
        let saved = self.ctx;
        self.ctx.end = self.ctx.start;
        let r = self.eval_node(e, saved.start);
        self.ctx = saved;
        let v = r?;
        self.wrap_memo.insert(key, v.clone());
        Ok(v)
    }

    fn eval_node(&mut self, e: &Expr, ts: i64) -> Result<Val, EvalError> {
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, ts),
            Expr::Unary(u) => match self.eval(&u.expr, ts)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(v) => {
                    if self.tracks_origins() {
                        let pairs: Vec<(Labels, Labels)> = v.iter().map(|(l, _)| (l.without_name(), l.clone())).collect();
                        self.check_origins(node_key(u), &pairs)?;
                    }
                    let out: Vec<Elem> = v.into_iter().map(|(l, x)| (l.without_name(), -x)).collect();
                    check_duplicates(&out)?;
                    Ok(Val::Vector(out))
                }
                other => Err(EvalError::Type(format!("unary minus on {}", other.kind()))),
            },
            Expr::VectorSelector(vs) => {
                let reft = self.ref_time(vs.at.as_ref(), vs.offset.as_ref(), ts);
                let mut out = Vec::new();
                self.for_each_instant(vs, reft, &mut |l, _, v| out.push((l.clone(), v)));
                Ok(Val::Vector(out))
            }
            Expr::MatrixSelector(ms) => Ok(Val::Matrix(self.matrix_selector(ms, ts))),
            Expr::Subquery(sq) => Ok(Val::Matrix(self.subquery(sq, ts)?.series)),
            Expr::Aggregate(a) => aggregate::eval_aggregate(self, a, ts),
            Expr::Binary(b) => binary::eval_binary(self, b, ts),
            Expr::Call(c) => functions::eval_call(self, c, ts),
            Expr::Extension(x) => Err(Unsupported::Expression(format!("extension {}", x.expr.name())).into()),
        }
    }

    pub(crate) fn eval_scalar(&mut self, e: &Expr, ts: i64) -> Result<f64, EvalError> {
        match self.eval(e, ts)? {
            Val::Scalar(v) => Ok(v),
            other => Err(EvalError::Type(format!("expected scalar, got {}", other.kind()))),
        }
    }

    pub(crate) fn eval_vector(&mut self, e: &Expr, ts: i64) -> Result<Vec<Elem>, EvalError> {
        match self.eval(e, ts)? {
            Val::Vector(v) => Ok(v),
            other => Err(EvalError::Type(format!("expected instant vector, got {}", other.kind()))),
        }
    }

    /// Whether output series must be checked across steps (a range evaluation of more than one step).
    pub(crate) fn tracks_origins(&self) -> bool {
        self.ctx.start != self.ctx.end
    }

    /// Records `(output labels, input labels)` pairs of a node and fails when one output label set comes
    /// from two input series over the steps of the current range evaluation.
    pub(crate) fn check_origins(&mut self, node: usize, pairs: &[(Labels, Labels)]) -> Result<(), EvalError> {
        let seen = self.origins.entry((node, self.ctx)).or_default();
        for (out, src) in pairs {
            match seen.get(out) {
                Some(prev) if prev != src => return Err(EvalError::DuplicateLabelset),
                Some(_) => {}
                None => {
                    seen.insert(out.clone(), src.clone());
                }
            }
        }
        Ok(())
    }

    /// The time a selector reads at in step `ts`: `ts` minus its offset, where an `@` modifier's offset is
    /// adjusted as Prometheus adjusts it (normally giving the `@` time minus the offset).
    pub(crate) fn ref_time(&self, at: Option<&AtModifier>, off: Option<&Offset>, ts: i64) -> i64 {
        let orig = offset_ms(off);
        match at {
            Some(at) => ts.wrapping_sub(self.ctx.at_offset(orig, at_ms(at, self.q_start, self.q_end))),
            None => ts.saturating_sub(orig),
        }
    }

    /// The prefetched series of a selector evaluated at several times (read on first use).
    fn cached(&mut self, vs: &VectorSelector) -> Option<SeriesData> {
        let key = node_key(vs);
        if !self.multi.contains(&key) {
            return None;
        }
        let (mint, maxt) = *self.ranges.get(&key)?;
        if let Some(d) = self.cache.get(&key) {
            return Some(d.clone());
        }
        let ms = selector_matchers(vs);
        let mut data = Vec::new();
        self.storage.select(&ms, mint, maxt, &mut |l, s| {
            let lo = s.partition_point(|x| x.t < mint);
            let hi = s.partition_point(|x| x.t <= maxt);
            if lo < hi {
                data.push((l.clone(), s[lo..hi].to_vec()));
            }
        });
        let d = Rc::new(data);
        self.cache.insert(key, d.clone());
        Some(d)
    }

    /// A read window clipped to the selector's planned range: Prometheus queries the store once per selector
    /// and sees nothing outside that range.
    fn clip(&self, vs: &VectorSelector, lo: i64, hi: i64) -> (i64, i64) {
        match self.ranges.get(&node_key(vs)) {
            Some(&(mint, maxt)) => (lo.max(mint), hi.min(maxt)),
            None => (lo, hi),
        }
    }

    /// Calls `f(labels, t, v)` with each series' latest sample in `[reft - lookback, reft]`, unless that
    /// sample is a staleness marker.
    pub(crate) fn for_each_instant(&mut self, vs: &VectorSelector, reft: i64, f: &mut dyn FnMut(&Labels, i64, f64)) {
        self.for_each_latest(vs, reft.saturating_sub(self.lookback), reft, f)
    }

    /// Calls `f(labels, t, v)` with each series' latest sample in `[lo, hi]`, unless it is a staleness marker.
    pub(crate) fn for_each_latest(&mut self, vs: &VectorSelector, lo: i64, hi: i64, f: &mut dyn FnMut(&Labels, i64, f64)) {
        let (lo, hi) = self.clip(vs, lo, hi);
        if lo > hi {
            return;
        }
        let pick = |s: &[Sample]| -> Option<Sample> {
            let i = s.partition_point(|x| x.t <= hi);
            if i == 0 {
                return None;
            }
            let x = s[i - 1];
            if x.t < lo || is_stale_nan(x.v) {
                None
            } else {
                Some(x)
            }
        };
        if let Some(data) = self.cached(vs) {
            for (l, s) in data.iter() {
                if let Some(x) = pick(s) {
                    f(l, x.t, x.v);
                }
            }
        } else {
            let ms = selector_matchers(vs);
            self.storage.select(&ms, lo, hi, &mut |l, s| {
                if let Some(x) = pick(s) {
                    f(l, x.t, x.v);
                }
            });
        }
    }

    /// Calls `f(labels, samples)` with each series' samples in `[reft - range, reft]` without staleness
    /// markers, for series that have any.
    pub(crate) fn for_each_range(&mut self, vs: &VectorSelector, range: i64, reft: i64, f: &mut dyn FnMut(&Labels, &[Sample])) {
        self.for_each_range_window(vs, reft.saturating_sub(range), reft, f)
    }

    /// Calls `f(labels, samples)` with each series' samples in `[mint, maxt]` without staleness markers.
    pub(crate) fn for_each_range_window(&mut self, vs: &VectorSelector, mint: i64, maxt: i64, f: &mut dyn FnMut(&Labels, &[Sample])) {
        let (mint, maxt) = self.clip(vs, mint, maxt);
        if mint > maxt {
            return;
        }
        let mut handle = |l: &Labels, s: &[Sample]| {
            let lo = s.partition_point(|x| x.t < mint);
            let hi = s.partition_point(|x| x.t <= maxt);
            let w = &s[lo..hi.max(lo)];
            if w.is_empty() {
                return;
            }
            if w.iter().any(|x| is_stale_nan(x.v)) {
                let v: Vec<Sample> = w.iter().copied().filter(|x| !is_stale_nan(x.v)).collect();
                if !v.is_empty() {
                    f(l, &v);
                }
            } else {
                f(l, w);
            }
        };
        if let Some(data) = self.cached(vs) {
            for (l, s) in data.iter() {
                handle(l, s);
            }
        } else {
            let ms = selector_matchers(vs);
            self.storage.select(&ms, mint, maxt, &mut handle);
        }
    }

    fn matrix_selector(&mut self, ms: &MatrixSelector, ts: i64) -> Vec<(Labels, Vec<Sample>)> {
        let reft = self.ref_time(ms.vs.at.as_ref(), ms.vs.offset.as_ref(), ts);
        let mut out = Vec::new();
        self.for_each_range(&ms.vs, duration_ms(&ms.range), reft, &mut |l, s| out.push((l.clone(), s.to_vec())));
        out
    }

    /// A subquery read at step `ts`: the points in the window `[maxt - range, maxt]` (`maxt` being `ts`
    /// minus its offset, or its `@` time minus its offset) of its inner expression evaluated, as Prometheus
    /// does, once per enclosing range evaluation over all the steps that evaluation needs.
    pub(crate) fn subquery(&mut self, sq: &SubqueryExpr, ts: i64) -> Result<SubqueryPoints, EvalError> {
        let range = duration_ms(&sq.range);
        let orig = offset_ms(sq.offset.as_ref());
        let ctx = self.ctx;
        let at = sq.at.as_ref().map(|a| at_ms(a, self.q_start, self.q_end));
        // The offset Prometheus reads the subquery's result with (its consumer's windows).
        let read_off = match at {
            Some(t) => orig.wrapping_add(ctx.start.wrapping_sub(t)),
            None => orig,
        };
        let maxt = ts.wrapping_sub(read_off);
        let mint = maxt.saturating_sub(range);
        let key = (node_key(sq), ctx);
        let all = match self.subquery_results.get(&key) {
            Some(r) => r.clone(),
            None => {
                let r = Rc::new(self.eval_subquery(sq, at, orig, range)?);
                self.subquery_results.insert(key, r.clone());
                r
            }
        };
        let mut series = Vec::with_capacity(all.len());
        for (l, pts) in all.iter() {
            let lo = pts.partition_point(|p| p.t < mint);
            let hi = pts.partition_point(|p| p.t <= maxt);
            if lo < hi {
                series.push((l.clone(), pts[lo..hi].to_vec()));
            }
        }
        Ok(SubqueryPoints { series, maxt })
    }

    /// Evaluates a subquery's inner expression at every step of its range evaluation within the current one.
    fn eval_subquery(
        &mut self,
        sq: &SubqueryExpr,
        at: Option<i64>,
        orig: i64,
        range: i64,
    ) -> Result<Vec<(Labels, Vec<Sample>)>, EvalError> {
        let step = match &sq.step {
            Some(d) => duration_ms(d),
            None => self.sub_step,
        };
        if step <= 0 {
            return Err(EvalError::InvalidArgument("subquery step must be positive".into()));
        }
        let ctx = self.ctx;
        // The offset Prometheus evaluates the subquery with.
        let node_off = match at {
            Some(t) => ctx.at_offset(orig, t),
            None => orig,
        };
        let start = align_up(ctx.start.wrapping_sub(node_off).saturating_sub(range), step);
        let end = ctx.end.wrapping_sub(node_off);
        if start <= end && (end - start) / step >= self.steps_left {
            return Err(EvalError::TooManySteps("subqueries of more steps than the engine's max_steps".into()));
        }
        if start <= end {
            self.steps_left -= (end - start) / step + 1;
        }
        // Offsets inside are re-adjusted for the subquery's first step unless it starts where the
        // enclosing evaluation does.
        let inner = if start != ctx.start {
            Ctx::new(start, end)
        } else {
            let (path_offset, path_at) = match at {
                Some(t) => (orig, Some(t)),
                None => (ctx.path_offset.wrapping_add(orig), ctx.path_at),
            };
            Ctx { start, end, anchor: ctx.anchor, path_offset, path_at }
        };
        let saved = std::mem::replace(&mut self.ctx, inner);
        let result = self.subquery_steps(sq, start, end, step);
        self.ctx = saved;
        result
    }

    fn subquery_steps(&mut self, sq: &SubqueryExpr, start: i64, end: i64, step: i64) -> Result<Vec<(Labels, Vec<Sample>)>, EvalError> {
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut out: Vec<(Labels, Vec<Sample>)> = Vec::new();
        let mut t = start;
        while t <= end {
            let elems = match self.eval(&sq.expr, t)? {
                Val::Vector(v) => v,
                Val::Scalar(v) => vec![(Labels::empty(), v)],
                other => return Err(EvalError::Type(format!("subquery over {}", other.kind()))),
            };
            for (l, v) in elems {
                let i = match index.get(&l) {
                    Some(i) => *i,
                    None => {
                        index.insert(l.clone(), out.len());
                        out.push((l, Vec::new()));
                        out.len() - 1
                    }
                };
                out[i].1.push(Sample { t, v });
            }
            match t.checked_add(step) {
                Some(next) => t = next,
                None => break,
            }
        }
        Ok(out)
    }
}

/// The first multiple of `step` at or after `t`.
fn align_up(t: i64, step: i64) -> i64 {
    let a = step * (t / step);
    if a < t {
        a.saturating_add(step)
    } else {
        a
    }
}

/// Functions Prometheus never treats as step-invariant.
const AT_UNSAFE_FUNCTIONS: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
];

/// Prometheus 2.42's `PreprocessExpr`: whether `e` is step-invariant (fixed by `@` modifiers), recording
/// the maximal step-invariant expressions under it that Prometheus evaluates once per range evaluation.
/// (An aggregation's parameter is not looked at, a call's range arguments are read per step anyway.)
fn mark_step_invariant(e: &Expr, wraps: &mut HashSet<usize>) -> bool {
    match e {
        Expr::VectorSelector(vs) => vs.at.is_some(),
        Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
        Expr::Subquery(s) => {
            if mark_step_invariant(&s.expr, wraps) {
                wraps.insert(node_key(&*s.expr));
            }
            s.at.is_some()
        }
        Expr::Aggregate(a) => mark_step_invariant(&a.expr, wraps),
        Expr::Binary(b) => {
            let l = mark_step_invariant(&b.lhs, wraps);
            let r = mark_step_invariant(&b.rhs, wraps);
            if l && r {
                return true;
            }
            if l {
                wraps.insert(node_key(&*b.lhs));
            }
            if r {
                wraps.insert(node_key(&*b.rhs));
            }
            false
        }
        Expr::Call(c) => {
            let inv: Vec<bool> = c.args.args.iter().map(|a| mark_step_invariant(a, wraps)).collect();
            if !AT_UNSAFE_FUNCTIONS.contains(&c.func.name) && inv.iter().all(|x| *x) {
                return true;
            }
            for (a, i) in c.args.args.iter().zip(inv) {
                if i {
                    wraps.insert(node_key(&**a));
                }
            }
            false
        }
        Expr::Paren(p) => mark_step_invariant(&p.expr, wraps),
        Expr::Unary(u) => mark_step_invariant(&u.expr, wraps),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::Extension(_) => false,
    }
}

/// Prometheus's check after every function, aggregation and operator: no two elements with equal labels.
pub(crate) fn check_duplicates(v: &[Elem]) -> Result<(), EvalError> {
    match v.len() {
        0 | 1 => Ok(()),
        2 => {
            if v[0].0 == v[1].0 {
                Err(EvalError::DuplicateLabelset)
            } else {
                Ok(())
            }
        }
        n => {
            let mut seen: HashSet<&Labels, IdBuild> = HashSet::with_capacity_and_hasher(n, IdBuild::default());
            for (l, _) in v {
                if !seen.insert(l) {
                    return Err(EvalError::DuplicateLabelset);
                }
            }
            Ok(())
        }
    }
}
