//! Aggregation operators (`sum`, `avg`, `topk`, `count_values`, ...) with `by`/`without` grouping,
//! computed in Prometheus 2.42's order of operations.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use crate::eval::{check_duplicates, Elem, EvalError, Evaluator, Val};
use crate::gomath;
use crate::labels::{hash_pair, is_valid_label_name, FastHasher, IdBuild, Labels, METRIC_NAME};
use crate::support::unwrap_parens;

/// Grouping labels of an aggregation.
struct Grouping {
    names: Vec<String>,
    without: bool,
}

impl Grouping {
    #[inline]
    fn includes(&self, name: &str) -> bool {
        if self.without {
            name != METRIC_NAME && !self.names.iter().any(|n| n == name)
        } else {
            self.names.iter().any(|n| n == name)
        }
    }

    fn hash(&self, l: &Labels) -> u64 {
        let mut h = FastHasher::default();
        for (n, v) in l.pairs() {
            if self.includes(n) {
                hash_pair(&mut h, n, v);
            }
        }
        h.finish()
    }

    fn same_group(&self, a: &Labels, b: &Labels) -> bool {
        let mut x = a.pairs().iter().filter(|(n, _)| self.includes(n));
        let mut y = b.pairs().iter().filter(|(n, _)| self.includes(n));
        loop {
            match (x.next(), y.next()) {
                (None, None) => return true,
                (Some(p), Some(q)) if p.0 == q.0 && p.1 == q.1 => {}
                _ => return false,
            }
        }
    }

    fn group_labels(&self, l: &Labels) -> Labels {
        if self.without {
            let mut b = l.builder();
            for n in &self.names {
                b.del(n);
            }
            b.del(METRIC_NAME);
            b.into_labels()
        } else if self.names.is_empty() {
            Labels::empty()
        } else {
            let mut b = l.builder();
            b.keep(&self.names);
            b.into_labels()
        }
    }
}

struct GroupKey<'a> {
    hash: u64,
    labels: &'a Labels,
    grouping: &'a Grouping,
}

impl Hash for GroupKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for GroupKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.grouping.same_group(self.labels, other.labels)
    }
}

impl Eq for GroupKey<'_> {}

struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: usize,
    heap: Vec<Elem>,
}

enum Param {
    None,
    Num(f64),
    Str(String),
}

pub(crate) fn eval_aggregate(ev: &mut Evaluator, a: &AggregateExpr, ts: i64) -> Result<Val, EvalError> {
    let op = a.op.id();
    let param = match &a.param {
        None => Param::None,
        Some(p) if op == token::T_COUNT_VALUES => match unwrap_parens(p) {
            Expr::StringLiteral(s) => Param::Str(s.val.clone()),
            _ => return Err(EvalError::Type("count_values needs a string literal parameter".into())),
        },
        Some(p) => Param::Num(ev.eval_scalar(p, ts)?),
    };
    let input = ev.eval_vector(&a.expr, ts)?;
    let out = aggregate(op, a.modifier.as_ref(), &param, input)?;
    check_duplicates(&out)?;
    Ok(Val::Vector(out))
}

/// Prometheus's bounds for a `topk`/`bottomk` parameter convertible to int64.
const MAX_INT64_F: f64 = 9223372036854774784.0;
const MIN_INT64_F: f64 = -9223372036854775808.0;

fn aggregate(op: TokenId, modifier: Option<&LabelModifier>, param: &Param, input: Vec<Elem>) -> Result<Vec<Elem>, EvalError> {
    let (mut names, without) = match modifier {
        None => (Vec::new(), false),
        Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
        Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
    };
    let mut k: i64 = 0;
    let mut q = 0.0;
    if op == token::T_TOPK || op == token::T_BOTTOMK {
        let f = match param {
            Param::Num(f) => *f,
            _ => return Err(EvalError::Type("topk/bottomk need a scalar parameter".into())),
        };
        if !(MIN_INT64_F..=MAX_INT64_F).contains(&f) {
            return Err(EvalError::InvalidArgument(format!("Scalar value {} overflows int64", go_v(f))));
        }
        k = f as i64;
        if k < 1 {
            return Ok(Vec::new());
        }
    }
    if op == token::T_QUANTILE {
        if let Param::Num(f) = param {
            q = *f;
        }
    }
    // count_values adds the value label to each metric (and to `by` grouping).
    let mut count_values_metrics: Vec<Labels> = Vec::new();
    if op == token::T_COUNT_VALUES {
        let label = match param {
            Param::Str(s) => s.clone(),
            _ => return Err(EvalError::Type("count_values needs a string parameter".into())),
        };
        if !is_valid_label_name(&label) {
            return Err(EvalError::InvalidArgument(format!("invalid label name {}", go_quote(&label))));
        }
        if !without {
            names.push(label.clone());
        }
        count_values_metrics = input
            .iter()
            .map(|(l, v)| {
                let mut b = l.builder();
                b.set(label.as_str(), gomath::format_float(*v));
                b.into_labels()
            })
            .collect();
    }
    names.sort();
    let grouping = Grouping { names, without };
    let metric = |i: usize| -> &Labels {
        if op == token::T_COUNT_VALUES {
            &count_values_metrics[i]
        } else {
            &input[i].0
        }
    };

    let mut index: HashMap<GroupKey, usize, IdBuild> = HashMap::with_capacity_and_hasher(16, IdBuild::default());
    let mut groups: Vec<Group> = Vec::new();
    for (i, (orig, v)) in input.iter().enumerate() {
        let v = *v;
        let m = metric(i);
        let key = GroupKey { hash: grouping.hash(m), labels: m, grouping: &grouping };
        let gi = match index.get(&key) {
            Some(gi) => *gi,
            None => {
                let mut g = Group { labels: grouping.group_labels(m), value: v, mean: v, count: 1, heap: Vec::new() };
                match op {
                    token::T_STDVAR | token::T_STDDEV => g.value = 0.0,
                    token::T_TOPK | token::T_BOTTOMK | token::T_QUANTILE => g.heap.push((orig.clone(), v)),
                    token::T_GROUP => g.value = 1.0,
                    _ => {}
                }
                index.insert(key, groups.len());
                groups.push(g);
                continue;
            }
        };
        let g = &mut groups[gi];
        match op {
            token::T_SUM => g.value += v,
            token::T_AVG => {
                g.count += 1;
                if g.mean.is_infinite() {
                    if v.is_infinite() && (g.mean > 0.0) == (v > 0.0) {
                        continue;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        continue;
                    }
                }
                let c = g.count as f64;
                g.mean += v / c - g.mean / c;
            }
            token::T_GROUP => {}
            token::T_MAX => {
                if g.value < v || g.value.is_nan() {
                    g.value = v;
                }
            }
            token::T_MIN => {
                if g.value > v || g.value.is_nan() {
                    g.value = v;
                }
            }
            token::T_COUNT | token::T_COUNT_VALUES => g.count += 1,
            token::T_STDVAR | token::T_STDDEV => {
                g.count += 1;
                let delta = v - g.mean;
                g.mean += delta / g.count as f64;
                g.value += delta * (v - g.mean);
            }
            token::T_TOPK | token::T_BOTTOMK => {
                let reverse = op == token::T_BOTTOMK;
                let top = g.heap[0].1;
                let better = if reverse { top > v } else { top < v };
                if (g.heap.len() as i64) < k || better || top.is_nan() {
                    if g.heap.len() as i64 == k {
                        if k == 1 {
                            g.heap[0] = (orig.clone(), v);
                            continue;
                        }
                        heap_pop(&mut g.heap, reverse);
                    }
                    heap_push(&mut g.heap, (orig.clone(), v), reverse);
                }
            }
            token::T_QUANTILE => g.heap.push((orig.clone(), v)),
            _ => return Err(EvalError::Type(format!("unknown aggregation {op}"))),
        }
    }

    let mut out = Vec::with_capacity(groups.len());
    for mut g in groups {
        let value = match op {
            token::T_AVG => g.mean,
            token::T_COUNT | token::T_COUNT_VALUES => g.count as f64,
            token::T_STDVAR => g.value / g.count as f64,
            token::T_STDDEV => (g.value / g.count as f64).sqrt(),
            token::T_TOPK => {
                // Highest first, NaN last.
                g.heap.sort_by(|a, b| nan_last(a.1, b.1, |x, y| y.total_cmp(&x)));
                out.append(&mut g.heap);
                continue;
            }
            token::T_BOTTOMK => {
                g.heap.sort_by(|a, b| nan_last(a.1, b.1, |x, y| x.total_cmp(&y)));
                out.append(&mut g.heap);
                continue;
            }
            token::T_QUANTILE => {
                let mut vals: Vec<f64> = g.heap.iter().map(|e| e.1).collect();
                quantile(q, &mut vals)
            }
            _ => g.value,
        };
        out.push((g.labels, value));
    }
    Ok(out)
}

fn nan_last(a: f64, b: f64, cmp: impl Fn(f64, f64) -> std::cmp::Ordering) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => cmp(a, b),
    }
}

/// The heap order of Prometheus's `vectorByValueHeap` (or its reverse): NaN is always "less".
fn heap_less(h: &[Elem], i: usize, j: usize, reverse: bool) -> bool {
    let (a, b) = (h[i].1, h[j].1);
    if a.is_nan() {
        return true;
    }
    if reverse {
        a > b
    } else {
        a < b
    }
}

fn heap_up(h: &mut [Elem], mut j: usize, reverse: bool) {
    loop {
        let i = ((j as i64 - 1) / 2) as usize;
        if i == j || !heap_less(h, j, i, reverse) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

fn heap_down(h: &mut [Elem], i0: usize, n: usize, reverse: bool) {
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        let j2 = j1 + 1;
        if j2 < n && heap_less(h, j2, j1, reverse) {
            j = j2;
        }
        if !heap_less(h, j, i, reverse) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
}

fn heap_push(h: &mut Vec<Elem>, e: Elem, reverse: bool) {
    h.push(e);
    let n = h.len() - 1;
    heap_up(h, n, reverse);
}

fn heap_pop(h: &mut Vec<Elem>, reverse: bool) {
    let n = h.len() - 1;
    h.swap(0, n);
    heap_down(h, 0, n, reverse);
    h.pop();
}

/// Prometheus's `quantile`: linear interpolation between the closest ranks; NaN sorts first.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return gomath::nan();
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = gomath::max(0.0, rank.floor());
    let upper = gomath::min(n - 1.0, lower + 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Go's `%v` for a float.
pub(crate) fn go_v(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if f != 0.0 && (f.abs() >= 1e21 || f.abs() < 1e-4) {
        let s = gomath::format_float_e(f).to_lowercase();
        s.replace(".0e", "e")
    } else {
        format!("{f}")
    }
}

/// Go's `%q` for a string.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::new();
    crate::labels::push_quoted(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(0.5, &mut [1.0, 3.0, 2.0]), 2.0);
        assert_eq!(quantile(0.25, &mut [0.0, 10.0]), 2.5);
        assert!(quantile(0.5, &mut []).is_nan());
        assert_eq!(quantile(-1.0, &mut [1.0]), f64::NEG_INFINITY);
        assert_eq!(quantile(2.0, &mut [1.0]), f64::INFINITY);
    }

    #[test]
    fn topk_heap_keeps_largest() {
        let mk = |v: f64| (Labels::from_pairs([("v", format!("{v}"))]), v);
        let input: Vec<Elem> = [3.0, 1.0, 4.0, 1.5, 9.0, 2.0].into_iter().map(mk).collect();
        let out = aggregate(token::T_TOPK, None, &Param::Num(3.0), input.clone()).unwrap();
        assert_eq!(out.iter().map(|e| e.1).collect::<Vec<_>>(), vec![9.0, 4.0, 3.0]);
        let out = aggregate(token::T_BOTTOMK, None, &Param::Num(2.0), input).unwrap();
        assert_eq!(out.iter().map(|e| e.1).collect::<Vec<_>>(), vec![1.0, 1.5]);
    }
}
