//! PromQL functions: range-vector functions (rate family, `*_over_time`, ...) evaluated per series straight
//! from the store's buffers, and instant-vector/scalar functions, all following Prometheus 2.42's arithmetic.

use std::rc::Rc;

use promql_parser::parser::{Call, Expr};
use regex::Regex;

use crate::aggregate::quantile;
use crate::eval::{check_duplicates, Elem, EvalError, Evaluator, Val};
use crate::gomath;
use crate::labels::{is_valid_label_name, Labels, LabelsBuilder, METRIC_NAME};
use crate::storage::{is_stale_nan, Sample};
use crate::support::{at_ms, duration_ms, offset_ms, selector_matchers, unwrap_parens};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RangeFn {
    Rate,
    Irate,
    Increase,
    Delta,
    Idelta,
    Deriv,
    PredictLinear,
    Resets,
    Changes,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    SumOverTime,
    CountOverTime,
    QuantileOverTime,
    StddevOverTime,
    StdvarOverTime,
    LastOverTime,
    PresentOverTime,
    AbsentOverTime,
}

impl RangeFn {
    fn from_name(n: &str) -> Option<RangeFn> {
        Some(match n {
            "rate" => RangeFn::Rate,
            "irate" => RangeFn::Irate,
            "increase" => RangeFn::Increase,
            "delta" => RangeFn::Delta,
            "idelta" => RangeFn::Idelta,
            "deriv" => RangeFn::Deriv,
            "predict_linear" => RangeFn::PredictLinear,
            "resets" => RangeFn::Resets,
            "changes" => RangeFn::Changes,
            "avg_over_time" => RangeFn::AvgOverTime,
            "min_over_time" => RangeFn::MinOverTime,
            "max_over_time" => RangeFn::MaxOverTime,
            "sum_over_time" => RangeFn::SumOverTime,
            "count_over_time" => RangeFn::CountOverTime,
            "quantile_over_time" => RangeFn::QuantileOverTime,
            "stddev_over_time" => RangeFn::StddevOverTime,
            "stdvar_over_time" => RangeFn::StdvarOverTime,
            "last_over_time" => RangeFn::LastOverTime,
            "present_over_time" => RangeFn::PresentOverTime,
            "absent_over_time" => RangeFn::AbsentOverTime,
            _ => return None,
        })
    }
}

/// What a range function needs besides the samples.
struct RangeCtx {
    range_start: i64,
    range_end: i64,
    /// The selector's range in seconds, computed as Go's `Duration.Seconds()`.
    range_secs: f64,
    /// The evaluation time.
    ts: i64,
    /// The scalar parameter (`predict_linear`'s duration, `quantile_over_time`'s quantile).
    param: f64,
}

pub(crate) fn eval_call(ev: &mut Evaluator, c: &Call, ts: i64) -> Result<Val, EvalError> {
    let name = c.func.name;
    let args = &c.args.args;
    if let Some(f) = RangeFn::from_name(name) {
        return eval_range_call(ev, f, c, ts);
    }
    match name {
        "time" => return Ok(Val::Scalar(ts as f64 / 1000.0)),
        "timestamp" => return timestamp(ev, c, ts),
        "label_replace" => return label_replace(ev, c, ts),
        "label_join" => return label_join(ev, c, ts),
        _ => {}
    }
    // Evaluate the (non-string) arguments in order.
    let mut vals = Vec::with_capacity(args.len());
    for a in args {
        vals.push(ev.eval(a, ts)?);
    }
    let out: Vec<Elem> = match name {
        "vector" => vec![(Labels::empty(), scalar_arg(&vals, 0)?)],
        "scalar" => {
            let v = vector_arg(&mut vals, 0)?;
            return Ok(Val::Scalar(if v.len() == 1 { v[0].1 } else { gomath::nan() }));
        }
        "abs" => simple(vector_arg(&mut vals, 0)?, f64::abs),
        "ceil" => simple(vector_arg(&mut vals, 0)?, f64::ceil),
        "floor" => simple(vector_arg(&mut vals, 0)?, f64::floor),
        "exp" => simple(vector_arg(&mut vals, 0)?, gomath::exp),
        "sqrt" => simple(vector_arg(&mut vals, 0)?, f64::sqrt),
        "ln" => simple(vector_arg(&mut vals, 0)?, gomath::log),
        "log2" => simple(vector_arg(&mut vals, 0)?, gomath::log2),
        "log10" => simple(vector_arg(&mut vals, 0)?, gomath::log10),
        "sgn" => simple(vector_arg(&mut vals, 0)?, |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        }),
        "round" => {
            let to_nearest = if vals.len() >= 2 { scalar_arg(&vals, 1)? } else { 1.0 };
            let inv = 1.0 / to_nearest;
            simple(vector_arg(&mut vals, 0)?, |v| (v * inv + 0.5).floor() / inv)
        }
        "clamp" => {
            let (lo, hi) = (scalar_arg(&vals, 1)?, scalar_arg(&vals, 2)?);
            if hi < lo {
                Vec::new()
            } else {
                simple(vector_arg(&mut vals, 0)?, |v| gomath::max(lo, gomath::min(hi, v)))
            }
        }
        "clamp_max" => {
            let hi = scalar_arg(&vals, 1)?;
            simple(vector_arg(&mut vals, 0)?, |v| gomath::min(hi, v))
        }
        "clamp_min" => {
            let lo = scalar_arg(&vals, 1)?;
            simple(vector_arg(&mut vals, 0)?, |v| gomath::max(lo, v))
        }
        "sort" => {
            let mut v = vector_arg(&mut vals, 0)?;
            v.sort_by(|a, b| nan_last(a.1, b.1, false));
            v
        }
        "sort_desc" => {
            let mut v = vector_arg(&mut vals, 0)?;
            v.sort_by(|a, b| nan_last(a.1, b.1, true));
            v
        }
        "absent" => {
            if vector_arg(&mut vals, 0)?.is_empty() {
                vec![(absent_labels(args.first().map(|a| &**a)), 1.0)]
            } else {
                Vec::new()
            }
        }
        "histogram_quantile" => {
            let q = scalar_arg(&vals, 0)?;
            histogram_quantile(q, vector_arg(&mut vals, 1)?)
        }
        "minute" | "hour" | "day_of_week" | "day_of_month" | "days_in_month" | "month" | "year" => {
            let f = date_fn(name);
            if vals.is_empty() {
                vec![(Labels::empty(), f(ts / 1000))]
            } else {
                vector_arg(&mut vals, 0)?.into_iter().map(|(l, v)| (l.without_name(), f(gomath::to_i64(v)))).collect()
            }
        }
        other => return Err(crate::support::Unsupported::Function(other.to_string()).into()),
    };
    check_duplicates(&out)?;
    Ok(Val::Vector(out))
}

fn scalar_arg(vals: &[Val], i: usize) -> Result<f64, EvalError> {
    match vals.get(i) {
        Some(Val::Scalar(v)) => Ok(*v),
        _ => Err(EvalError::Type(format!("argument {} is not a scalar", i + 1))),
    }
}

fn vector_arg(vals: &mut [Val], i: usize) -> Result<Vec<Elem>, EvalError> {
    match vals.get_mut(i) {
        Some(Val::Vector(v)) => Ok(std::mem::take(v)),
        _ => Err(EvalError::Type(format!("argument {} is not an instant vector", i + 1))),
    }
}

fn string_arg(c: &Call, i: usize) -> Result<&str, EvalError> {
    match c.args.args.get(i).map(|a| unwrap_parens(a)) {
        Some(Expr::StringLiteral(s)) => Ok(&s.val),
        _ => Err(EvalError::Type(format!("argument {} of {}() is not a string literal", i + 1, c.func.name))),
    }
}

fn simple(v: Vec<Elem>, f: impl Fn(f64) -> f64) -> Vec<Elem> {
    v.into_iter().map(|(l, x)| (l.without_name(), f(x))).collect()
}

/// Ascending (or descending) order with NaN last, as Prometheus's `sort`/`sort_desc`.
fn nan_last(a: f64, b: f64, desc: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if desc => b.total_cmp(&a),
        _ => a.total_cmp(&b),
    }
}

/// The labels `absent()`/`absent_over_time()` report: the selector's equality matchers (a label matched more
/// than once, or by another operator, is left out).
fn absent_labels(arg: Option<&Expr>) -> Labels {
    let vs = match arg.map(unwrap_parens) {
        Some(Expr::VectorSelector(vs)) => vs,
        Some(Expr::MatrixSelector(ms)) => &ms.vs,
        _ => return Labels::empty(),
    };
    let ms = selector_matchers(vs);
    let mut b = LabelsBuilder::new();
    let mut has: Vec<&str> = Vec::new();
    for m in &ms {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, promql_parser::label::MatchOp::Equal) && !has.contains(&m.name.as_str()) {
            b.set(m.name.as_str(), m.value.as_str());
            has.push(&m.name);
        } else {
            b.del(&m.name);
        }
    }
    b.into_labels()
}

/// `timestamp()`: the sample times for a plain selector argument, otherwise the evaluation time.
fn timestamp(ev: &mut Evaluator, c: &Call, ts: i64) -> Result<Val, EvalError> {
    let arg = c.args.args.first().map(|a| unwrap_parens(a));
    let mut out = Vec::new();
    match arg {
        Some(Expr::VectorSelector(vs)) => {
            // Prometheus 2.42 reads at the @ time itself (the offset only narrows what the store returns,
            // see `Evaluator::clip`).
            let reft = match &vs.at {
                Some(at) => at_ms(at, ev.q_start, ev.q_end),
                None => ts.saturating_sub(offset_ms(vs.offset.as_ref())),
            };
            ev.for_each_instant(vs, reft, &mut |l, t, _| out.push((l.without_name(), t as f64 / 1000.0)));
        }
        Some(e) => {
            let t = ts as f64 / 1000.0;
            out = ev.eval_vector(e, ts)?.into_iter().map(|(l, _)| (l.without_name(), t)).collect();
        }
        None => return Err(EvalError::Type("timestamp() needs an argument".into())),
    }
    check_duplicates(&out)?;
    Ok(Val::Vector(out))
}

fn first_arg(c: &Call) -> Result<&Expr, EvalError> {
    c.args.args.first().map(|a| &**a).ok_or_else(|| EvalError::Type(format!("{}() needs arguments", c.func.name)))
}

fn label_replace(ev: &mut Evaluator, c: &Call, ts: i64) -> Result<Val, EvalError> {
    let v = ev.eval_vector(first_arg(c)?, ts)?;
    let dst = string_arg(c, 1)?;
    let repl = string_arg(c, 2)?;
    let src = string_arg(c, 3)?;
    let re_str = string_arg(c, 4)?;
    let key = c as *const Call as usize;
    let re = match ev.regexes.get(&key) {
        Some(r) => r.clone(),
        None => {
            let r = Rc::new(
                compile_anchored(re_str)
                    .ok_or_else(|| EvalError::InvalidArgument(format!("invalid regular expression in label_replace(): {re_str}")))?,
            );
            ev.regexes.insert(key, r.clone());
            r
        }
    };
    if !is_valid_label_name(dst) {
        return Err(EvalError::InvalidArgument(format!("invalid destination label name in label_replace(): {dst}")));
    }
    let mut out = Vec::with_capacity(v.len());
    let mut res = String::new();
    for (l, x) in v {
        let src_val = l.get_or_empty(src);
        match re.captures(src_val) {
            None => out.push((l, x)),
            Some(caps) => {
                res.clear();
                caps.expand(repl, &mut res);
                let mut b = l.builder();
                b.del(dst);
                if !res.is_empty() {
                    b.set(dst, res.as_str());
                }
                out.push((b.into_labels(), x));
            }
        }
    }
    check_duplicates(&out)?;
    Ok(Val::Vector(out))
}

fn label_join(ev: &mut Evaluator, c: &Call, ts: i64) -> Result<Val, EvalError> {
    let v = ev.eval_vector(first_arg(c)?, ts)?;
    let dst = string_arg(c, 1)?;
    let sep = string_arg(c, 2)?;
    let mut srcs = Vec::new();
    for i in 3..c.args.args.len() {
        let s = string_arg(c, i)?;
        if !is_valid_label_name(s) {
            return Err(EvalError::InvalidArgument(format!("invalid source label name in label_join(): {s}")));
        }
        srcs.push(s);
    }
    if !is_valid_label_name(dst) {
        return Err(EvalError::InvalidArgument(format!("invalid destination label name in label_join(): {dst}")));
    }
    let mut out = Vec::with_capacity(v.len());
    let mut joined = String::new();
    for (l, x) in v {
        joined.clear();
        for (i, s) in srcs.iter().enumerate() {
            if i > 0 {
                joined.push_str(sep);
            }
            joined.push_str(l.get_or_empty(s));
        }
        let mut b = l.builder();
        if joined.is_empty() {
            b.del(dst);
        } else {
            b.set(dst, joined.as_str());
        }
        out.push((b.into_labels(), x));
    }
    check_duplicates(&out)?;
    Ok(Val::Vector(out))
}

/// Compiles a PromQL regex fully anchored, with Go's ASCII-only `\d`, `\w`, `\s`, `\b` and Go's acceptance of
/// `{` that does not start a repetition.
pub(crate) fn compile_anchored(pattern: &str) -> Option<Regex> {
    let translated = translate_go_regex(pattern);
    Regex::new(&format!("^(?:{translated})$")).ok()
}

/// Rewrites Go RE2 syntax into the `regex` crate's: Perl classes become ASCII classes, `\b`/`\B` become ASCII
/// word boundaries, and a literal `{` (one not starting `{n}`, `{n,}` or `{n,m}`) is escaped.
pub(crate) fn translate_go_regex(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            let rep = match (n, in_class) {
                ('d', false) => Some("[0-9]"),
                ('D', false) => Some("[^0-9]"),
                ('w', false) => Some("[0-9A-Za-z_]"),
                ('W', false) => Some("[^0-9A-Za-z_]"),
                ('s', false) => Some("[\\t\\n\\f\\r ]"),
                ('S', false) => Some("[^\\t\\n\\f\\r ]"),
                ('d', true) => Some("0-9"),
                ('w', true) => Some("0-9A-Za-z_"),
                ('s', true) => Some("\\t\\n\\f\\r "),
                ('b', false) => Some("(?-u:\\b)"),
                ('B', false) => Some("(?-u:\\B)"),
                _ => None,
            };
            match rep {
                Some(r) => out.push_str(r),
                None => {
                    out.push(c);
                    out.push(n);
                }
            }
            i += 2;
            continue;
        }
        if in_class {
            if c == ']' {
                in_class = false;
            }
            if c == '[' && chars.get(i + 1) == Some(&':') {
                // [:alpha:] inside a class: copy through the closing ":]".
                if let Some(end) = (i + 2..chars.len().saturating_sub(1)).find(|&j| chars[j] == ':' && chars[j + 1] == ']') {
                    out.extend(&chars[i..end + 2]);
                    i = end + 2;
                    continue;
                }
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push(c);
                // A leading '^' and a leading ']' are part of the class syntax.
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            '{' => {
                let rest: String = chars[i + 1..].iter().collect();
                let is_repeat = match rest.find('}') {
                    Some(end) => {
                        let inner = &rest[..end];
                        let mut parts = inner.splitn(2, ',');
                        let a = parts.next().unwrap_or("");
                        let b = parts.next();
                        !a.is_empty() && a.bytes().all(|x| x.is_ascii_digit()) && b.is_none_or(|b| b.bytes().all(|x| x.is_ascii_digit()))
                    }
                    None => false,
                };
                if !is_repeat {
                    out.push('\\');
                }
                out.push('{');
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

fn date_fn(name: &str) -> fn(i64) -> f64 {
    match name {
        "minute" => |s| ((abs_time(s) % 3600) / 60) as f64,
        "hour" => |s| ((abs_time(s) % 86400) / 3600) as f64,
        "day_of_week" => |s| ((abs_time(s).wrapping_add(86400) % 604_800) / 86400) as f64,
        "day_of_month" => |s| abs_date(abs_time(s)).2 as f64,
        "days_in_month" => |s| {
            let (y, m, _) = abs_date(abs_time(s));
            // Go: 32 - time.Date(y, m, 32, ...).Day(), which overflows into the next month.
            let mut d = days_since_epoch(y).wrapping_add(DAYS_BEFORE[m as usize - 1] as u64);
            if is_leap(y) && m >= 3 {
                d = d.wrapping_add(1);
            }
            d = d.wrapping_add(31);
            (32 - abs_date(d.wrapping_mul(86400)).2 as i64) as f64
        },
        "month" => |s| abs_date(abs_time(s)).1 as f64,
        _ => |s| abs_date(abs_time(s)).0 as f64,
    }
}

// Go's `time` package arithmetic (UTC), ported so that every input, even a NaN converted to int64, gives
// Go's answer: seconds are counted from an "absolute zero" year with wrapping unsigned arithmetic.
const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;
const UNIX_TO_ABSOLUTE: i64 = 9_223_372_028_715_321_600;
const DAYS_PER_400_YEARS: u64 = 365 * 400 + 97;
const DAYS_PER_100_YEARS: u64 = 365 * 100 + 24;
const DAYS_PER_4_YEARS: u64 = 365 * 4 + 1;
const DAYS_BEFORE: [u32; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

fn abs_time(unix_sec: i64) -> u64 {
    unix_sec.wrapping_add(UNIX_TO_ABSOLUTE) as u64
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Year, month (1-12) and day of month of an absolute time (Go's `absDate`).
fn abs_date(abs: u64) -> (i64, u32, u32) {
    let mut d = abs / 86400;
    let mut n = d / DAYS_PER_400_YEARS;
    let mut y = 400 * n;
    d -= DAYS_PER_400_YEARS * n;
    n = d / DAYS_PER_100_YEARS;
    n -= n >> 2;
    y += 100 * n;
    d -= DAYS_PER_100_YEARS * n;
    n = d / DAYS_PER_4_YEARS;
    y += 4 * n;
    d -= DAYS_PER_4_YEARS * n;
    n = d / 365;
    n -= n >> 2;
    y += n;
    d -= 365 * n;
    let year = (y as i64).wrapping_add(ABSOLUTE_ZERO_YEAR);
    let mut day = d as u32;
    if is_leap(year) {
        if day > 31 + 29 - 1 {
            day -= 1;
        } else if day == 31 + 29 - 1 {
            return (year, 2, 29);
        }
    }
    let mut month = day / 31;
    let end = DAYS_BEFORE[month as usize + 1];
    let begin = if day >= end {
        month += 1;
        end
    } else {
        DAYS_BEFORE[month as usize]
    };
    (year, month + 1, day - begin + 1)
}

/// Days from the absolute zero to January 1 of `year` (Go's `daysSinceEpoch`).
fn days_since_epoch(year: i64) -> u64 {
    let mut y = year.wrapping_sub(ABSOLUTE_ZERO_YEAR) as u64;
    let mut n = y / 400;
    y -= 400 * n;
    let mut d = DAYS_PER_400_YEARS.wrapping_mul(n);
    n = y / 100;
    y -= 100 * n;
    d = d.wrapping_add(DAYS_PER_100_YEARS * n);
    n = y / 4;
    y -= 4 * n;
    d = d.wrapping_add(DAYS_PER_4_YEARS * n);
    d.wrapping_add(365 * y)
}

/// `histogram_quantile` over classic buckets (series with an `le` label); series are grouped by all labels
/// but `le` and reported without `le` and the metric name.
fn histogram_quantile(q: f64, v: Vec<Elem>) -> Vec<Elem> {
    struct Hist {
        labels: Labels,
        buckets: Vec<(f64, f64)>,
    }
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut hists: Vec<Hist> = Vec::new();
    for (l, x) in v {
        let Some(ub) = gomath::parse_float(l.get_or_empty("le")) else { continue };
        let mut kb = l.builder();
        kb.del("le");
        let key = kb.into_labels();
        let i = match index.get(&key) {
            Some(i) => *i,
            None => {
                let labels = key.without_name();
                index.insert(key, hists.len());
                hists.push(Hist { labels, buckets: Vec::new() });
                hists.len() - 1
            }
        };
        hists[i].buckets.push((ub, x));
    }
    hists
        .into_iter()
        .map(|mut h| {
            let v = bucket_quantile(q, &mut h.buckets);
            (h.labels, v)
        })
        .collect()
}

/// Prometheus's `bucketQuantile` for classic histograms.
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return gomath::nan();
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| match (a.0.is_nan(), b.0.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.0.total_cmp(&b.0).then(std::cmp::Ordering::Equal),
    });
    // Treat -0 and +0 as the same bound, as Go's `<` does.
    if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
        return gomath::nan();
    }
    // Coalesce buckets with the same upper bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    // Ensure monotonic counts.
    let mut max = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    let n = merged.len();
    if n < 2 {
        return gomath::nan();
    }
    let observations = merged[n - 1].1;
    if observations == 0.0 {
        return gomath::nan();
    }
    let mut rank = q * observations;
    let b = merged[..n - 1].iter().position(|x| x.1 >= rank).unwrap_or(n - 1);
    if b == n - 1 {
        return merged[n - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let mut bucket_start = 0.0;
    let bucket_end = merged[b].0;
    let mut count = merged[b].1;
    if b > 0 {
        bucket_start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Go's `time.Duration.Seconds()` for a whole number of milliseconds.
fn go_seconds(ms: i64) -> f64 {
    let sec = ms / 1000;
    let nsec = (ms % 1000) * 1_000_000;
    sec as f64 + nsec as f64 / 1e9
}

fn eval_range_call(ev: &mut Evaluator, f: RangeFn, c: &Call, ts: i64) -> Result<Val, EvalError> {
    let args = &c.args.args;
    let Some(mi) = args.iter().position(|a| matches!(unwrap_parens(a), Expr::MatrixSelector(_) | Expr::Subquery(_))) else {
        return Err(EvalError::Type(format!("{}() needs a range vector argument", c.func.name)));
    };
    let marg = unwrap_parens(&args[mi]);
    // Prometheus evaluates a subquery argument before the others.
    let sub = match marg {
        Expr::Subquery(sq) => Some(ev.subquery(sq, ts)?),
        _ => None,
    };
    let mut param = 0.0;
    for (i, a) in args.iter().enumerate() {
        if i != mi {
            param = ev.eval_scalar(a, ts)?;
        }
    }
    let (range, maxt) = match (marg, &sub) {
        (Expr::MatrixSelector(ms), _) => (duration_ms(&ms.range), ev.ref_time(ms.vs.at.as_ref(), ms.vs.offset.as_ref(), ts)),
        (Expr::Subquery(sq), Some(points)) => (duration_ms(&sq.range), points.maxt),
        _ => return Err(EvalError::Type(format!("{}() needs a range vector argument", c.func.name))),
    };
    let mint = maxt.saturating_sub(range);
    let ctx = RangeCtx { range_start: mint, range_end: maxt, range_secs: go_seconds(range), ts, param };
    let keep_name = f == RangeFn::LastOverTime;
    let track = !keep_name && f != RangeFn::AbsentOverTime && ev.tracks_origins();
    let mut out: Vec<Elem> = Vec::new();
    let mut sources: Vec<Labels> = Vec::new();
    let mut apply = |l: &Labels, s: &[Sample]| {
        if let Some(v) = range_fn(f, s, &ctx) {
            out.push((if keep_name { l.clone() } else { l.without_name() }, v));
            if track {
                sources.push(l.clone());
            }
        }
    };
    match (marg, sub) {
        (Expr::MatrixSelector(ms), _) => ev.for_each_range_window(&ms.vs, mint, maxt, &mut apply),
        (_, Some(points)) => {
            for (l, pts) in &points.series {
                let w: Vec<Sample> = pts.iter().copied().filter(|p| p.t >= mint && p.t <= maxt && !is_stale_nan(p.v)).collect();
                if !w.is_empty() {
                    apply(l, &w);
                }
            }
        }
        _ => {}
    }
    if f == RangeFn::AbsentOverTime {
        return Ok(Val::Vector(if out.is_empty() { vec![(absent_labels(Some(marg)), 1.0)] } else { Vec::new() }));
    }
    // Distinct series with one metric name stay distinct without it: only check when names may differ.
    let one_name = match marg {
        Expr::MatrixSelector(ms) => ms.vs.name.is_some(),
        _ => false,
    };
    if !one_name && !keep_name {
        check_duplicates(&out)?;
    }
    if track && !one_name {
        let pairs: Vec<(Labels, Labels)> = out.iter().map(|e| e.0.clone()).zip(sources).collect();
        ev.check_origins(c as *const Call as usize, &pairs)?;
    }
    Ok(Val::Vector(out))
}

/// One range function over one series' samples (non-empty, without staleness markers).
fn range_fn(f: RangeFn, s: &[Sample], ctx: &RangeCtx) -> Option<f64> {
    Some(match f {
        RangeFn::Rate => extrapolated_rate(s, ctx, true, true)?,
        RangeFn::Increase => extrapolated_rate(s, ctx, true, false)?,
        RangeFn::Delta => extrapolated_rate(s, ctx, false, false)?,
        RangeFn::Irate => instant_value(s, true)?,
        RangeFn::Idelta => instant_value(s, false)?,
        RangeFn::Deriv => {
            if s.len() < 2 {
                return None;
            }
            linear_regression(s, s[0].t).0
        }
        RangeFn::PredictLinear => {
            if s.len() < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(s, ctx.ts);
            slope * ctx.param + intercept
        }
        RangeFn::Resets => {
            let mut n = 0;
            for w in s.windows(2) {
                if w[1].v < w[0].v {
                    n += 1;
                }
            }
            n as f64
        }
        RangeFn::Changes => {
            let mut n = 0;
            for w in s.windows(2) {
                if w[1].v != w[0].v && !(w[1].v.is_nan() && w[0].v.is_nan()) {
                    n += 1;
                }
            }
            n as f64
        }
        RangeFn::AvgOverTime => {
            let (mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64);
            for x in s {
                count += 1.0;
                if mean.is_infinite() {
                    if x.v.is_infinite() && (mean > 0.0) == (x.v > 0.0) {
                        continue;
                    }
                    if !x.v.is_infinite() && !x.v.is_nan() {
                        continue;
                    }
                }
                (mean, c) = kahan_inc(x.v / count - mean / count, mean, c);
            }
            if mean.is_infinite() {
                mean
            } else {
                mean + c
            }
        }
        RangeFn::MinOverTime => {
            let mut m = s[0].v;
            for x in s {
                if x.v < m || m.is_nan() {
                    m = x.v;
                }
            }
            m
        }
        RangeFn::MaxOverTime => {
            let mut m = s[0].v;
            for x in s {
                if x.v > m || m.is_nan() {
                    m = x.v;
                }
            }
            m
        }
        RangeFn::SumOverTime => {
            let (mut sum, mut c) = (0.0, 0.0);
            for x in s {
                (sum, c) = kahan_inc(x.v, sum, c);
            }
            if f64::is_infinite(sum) {
                sum
            } else {
                sum + c
            }
        }
        RangeFn::CountOverTime => s.len() as f64,
        RangeFn::QuantileOverTime => {
            let mut vals: Vec<f64> = s.iter().map(|x| x.v).collect();
            quantile(ctx.param, &mut vals)
        }
        RangeFn::StddevOverTime => stdvar_over_time(s).sqrt(),
        RangeFn::StdvarOverTime => stdvar_over_time(s),
        RangeFn::LastOverTime => s[s.len() - 1].v,
        RangeFn::PresentOverTime | RangeFn::AbsentOverTime => 1.0,
    })
}

fn stdvar_over_time(s: &[Sample]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for x in s {
        count += 1.0;
        let delta = x.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (x.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// Kahan-Neumaier summation step.
fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() { c + ((sum - t) + inc) } else { c + ((inc - t) + sum) };
    (t, c)
}

/// `rate`, `increase` and `delta`: the change over the samples, corrected for counter resets, extrapolated
/// towards the range boundaries.
fn extrapolated_rate(s: &[Sample], ctx: &RangeCtx, is_counter: bool, is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let first = s[0];
    let last = s[s.len() - 1];
    let mut result = last.v - first.v;
    if is_counter {
        let mut prev = first.v;
        for x in &s[1..] {
            if x.v < prev {
                result += prev;
            }
            prev = x.v;
        }
    }
    let mut duration_to_start = first.t.wrapping_sub(ctx.range_start) as f64 / 1000.0;
    let duration_to_end = ctx.range_end.wrapping_sub(last.t) as f64 / 1000.0;
    let sampled_interval = last.t.wrapping_sub(first.t) as f64 / 1000.0;
    let avg_between = sampled_interval / (s.len() - 1) as f64;
    if is_counter && result > 0.0 && first.v >= 0.0 {
        let duration_to_zero = sampled_interval * (first.v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold { duration_to_start } else { avg_between / 2.0 };
    extrapolate_to += if duration_to_end < threshold { duration_to_end } else { avg_between / 2.0 };
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= ctx.range_secs;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples.
fn instant_value(s: &[Sample], is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let last = s[s.len() - 1];
    let prev = s[s.len() - 2];
    let mut result = if is_rate && last.v < prev.v { last.v } else { last.v - prev.v };
    let interval = last.t.wrapping_sub(prev.t);
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and the intercept at `intercept_time`.
fn linear_regression(s: &[Sample], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut cx, mut sum_y, mut cy, mut sum_xy, mut cxy, mut sum_x2, mut cx2) =
        (0.0f64, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = s[0].v;
    let mut const_y = true;
    for (i, x) in s.iter().enumerate() {
        if const_y && i > 0 && x.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let t = x.t.wrapping_sub(intercept_time) as f64 / 1e3;
        (sum_x, cx) = kahan_inc(t, sum_x, cx);
        (sum_y, cy) = kahan_inc(x.v, sum_y, cy);
        (sum_xy, cxy) = kahan_inc(t * x.v, sum_xy, cxy);
        (sum_x2, cx2) = kahan_inc(t * t, sum_x2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (gomath::nan(), gomath::nan());
        }
        return (0.0, init_y);
    }
    let sum_x = sum_x + cx;
    let sum_y = sum_y + cy;
    let sum_xy = sum_xy + cxy;
    let sum_x2 = sum_x2 + cx2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_dates() {
        assert_eq!(abs_date(abs_time(0)), (1970, 1, 1));
        assert_eq!(abs_date(abs_time(59 * 86400)), (1970, 3, 1));
        assert_eq!(abs_date(abs_time(11016 * 86400)), (2000, 2, 29));
        assert_eq!(abs_date(abs_time(-1)), (1969, 12, 31));
        assert_eq!(date_fn("days_in_month")(951_782_400), 29.0);
        assert_eq!(date_fn("days_in_month")(-2_206_310_400), 28.0);
        assert_eq!(date_fn("day_of_week")(0), 4.0);
        // Go's answer for int64(NaN) on amd64.
        assert_eq!(date_fn("hour")(i64::MIN), 15.0);
    }

    #[test]
    fn go_regex_translation() {
        assert_eq!(translate_go_regex(r"a\d+"), "a[0-9]+");
        assert_eq!(translate_go_regex(r"[\d.]+"), "[0-9.]+");
        assert_eq!(translate_go_regex("a{b}"), "a\\{b}");
        assert_eq!(translate_go_regex("a{2,3}"), "a{2,3}");
        assert!(compile_anchored("foo.*").is_some());
        assert!(compile_anchored("(").is_none());
        assert!(!compile_anchored(r"\d").is_some_and(|r| r.is_match("٣")));
    }

    #[test]
    fn histogram_bucket_interpolation() {
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), 1.0);
        let mut b = vec![(1.0, 0.0), (2.0, 10.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), 1.5);
        let mut b = vec![(1.0, 10.0)];
        assert!(bucket_quantile(0.5, &mut b).is_nan());
    }
}
