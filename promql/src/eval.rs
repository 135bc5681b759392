//! The evaluator: walks the AST at one timestamp (subqueries and range queries re-enter it at each of
//! their steps), reads selectors from the store, and owns `Engine`, `Value` and `EvalError`.

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
    /// The most steps one subquery or range query may evaluate.
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

type SeriesData = Rc<Vec<(Labels, Vec<Sample>)>>;

pub(crate) struct Evaluator<'a> {
    storage: &'a dyn Storage,
    pub(crate) lookback: i64,
    sub_step: i64,
    max_steps: i64,
    pub(crate) q_start: i64,
    pub(crate) q_end: i64,
    /// Selectors evaluated at more than one time, with the range to read once for all of them.
    prefetch: HashMap<usize, (i64, i64)>,
    cache: HashMap<usize, SeriesData>,
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
        if (end_ms - start_ms) / step_ms >= self.max_steps {
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
            t += step_ms;
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
            max_steps: engine.max_steps,
            q_start,
            q_end,
            prefetch: HashMap::new(),
            cache: HashMap::new(),
            regexes: HashMap::new(),
        }
    }

    /// Finds the selectors evaluated at more than one time, so that each is read from the store once.
    fn plan(&mut self, expr: &Expr, lo: i64, hi: i64, multi: bool) {
        let w = Walk { lookback: self.lookback, q_start: self.q_start, q_end: self.q_end, ignore_at: false };
        let prefetch = &mut self.prefetch;
        walk_selectors(expr, (lo, hi), multi, w, &mut |vs, mint, maxt, multi| {
            if multi {
                prefetch.entry(node_key(vs)).and_modify(|r| *r = (r.0.min(mint), r.1.max(maxt))).or_insert((mint, maxt));
            }
        });
    }

    pub(crate) fn eval(&mut self, e: &Expr, ts: i64) -> Result<Val, EvalError> {
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, ts),
            Expr::Unary(u) => match self.eval(&u.expr, ts)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(v) => {
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
            Expr::Subquery(sq) => Ok(Val::Matrix(self.subquery(sq, ts)?)),
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

    /// The time a selector or subquery reads at: its `@` time or the evaluation time, minus its offset.
    pub(crate) fn ref_time(&self, at: Option<&AtModifier>, off: Option<&Offset>, ts: i64) -> i64 {
        let base = match at {
            Some(at) => at_ms(at, self.q_start, self.q_end),
            None => ts,
        };
        base - offset_ms(off)
    }

    /// The prefetched series of a selector evaluated at several times (read on first use).
    fn cached(&mut self, vs: &VectorSelector) -> Option<SeriesData> {
        let key = node_key(vs);
        let (mint, maxt) = *self.prefetch.get(&key)?;
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

    /// Calls `f(labels, t, v)` with each series' latest sample in `[reft - lookback, reft]`, unless that
    /// sample is a staleness marker.
    pub(crate) fn for_each_instant(&mut self, vs: &VectorSelector, reft: i64, f: &mut dyn FnMut(&Labels, i64, f64)) {
        self.for_each_latest(vs, reft - self.lookback, reft, f)
    }

    /// Calls `f(labels, t, v)` with each series' latest sample in `[lo, hi]`, unless it is a staleness marker.
    pub(crate) fn for_each_latest(&mut self, vs: &VectorSelector, lo: i64, hi: i64, f: &mut dyn FnMut(&Labels, i64, f64)) {
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
        let (mint, maxt) = (reft - range, reft);
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

    /// Evaluates a subquery's inner expression at each of its steps: the multiples of the step in
    /// `[reft - range, reft]`.
    pub(crate) fn subquery(&mut self, sq: &SubqueryExpr, ts: i64) -> Result<Vec<(Labels, Vec<Sample>)>, EvalError> {
        let range = duration_ms(&sq.range);
        let step = match &sq.step {
            Some(d) => duration_ms(d),
            None => self.sub_step,
        };
        if step <= 0 {
            return Err(EvalError::InvalidArgument("subquery step must be positive".into()));
        }
        let end = self.ref_time(sq.at.as_ref(), sq.offset.as_ref(), ts);
        let lower = end - range;
        let mut start = step * (lower / step);
        if start < lower {
            start += step;
        }
        if start <= end && (end - start) / step >= self.max_steps {
            return Err(EvalError::TooManySteps(format!("subquery of more than {} steps", self.max_steps)));
        }
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
            t += step;
        }
        Ok(out)
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
