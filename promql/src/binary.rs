//! Binary operators: arithmetic and comparisons between scalars and vectors, the set operators, and vector
//! matching (`on`/`ignoring`, `group_left`/`group_right`) with Prometheus's errors.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::eval::{check_duplicates, Elem, EvalError, Evaluator, Val};
use crate::gomath;
use crate::labels::{hash_pair, FastHasher, IdBuild, Labels, METRIC_NAME};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

/// How two vectors are matched.
struct MatchSpec {
    on: bool,
    /// Sorted matching label names.
    names: Vec<String>,
    card: Card,
    /// `group_x` labels copied from the "one" side.
    include: Vec<String>,
}

impl MatchSpec {
    fn from_expr(b: &BinaryExpr) -> MatchSpec {
        let (on, names, card, include) = match &b.modifier {
            None => (false, Vec::new(), Card::OneToOne, Vec::new()),
            Some(m) => {
                let (on, names) = match &m.matching {
                    None => (false, Vec::new()),
                    Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
                    Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
                };
                let (card, include) = match &m.card {
                    VectorMatchCardinality::OneToOne => (Card::OneToOne, Vec::new()),
                    VectorMatchCardinality::ManyToOne(l) => (Card::ManyToOne, l.labels.clone()),
                    VectorMatchCardinality::OneToMany(l) => (Card::OneToMany, l.labels.clone()),
                    VectorMatchCardinality::ManyToMany => (Card::ManyToMany, Vec::new()),
                };
                (on, names, card, include)
            }
        };
        let mut names = names;
        names.sort();
        names.dedup();
        MatchSpec { on, names, card, include }
    }

    #[inline]
    fn in_signature(&self, name: &str) -> bool {
        if self.on {
            self.names.iter().any(|n| n == name)
        } else {
            name != METRIC_NAME && !self.names.iter().any(|n| n == name)
        }
    }

    fn sig_hash(&self, l: &Labels) -> u64 {
        let mut h = FastHasher::default();
        for (n, v) in l.pairs() {
            if self.in_signature(n) {
                hash_pair(&mut h, n, v);
            }
        }
        h.finish()
    }

    fn sig_eq(&self, a: &Labels, b: &Labels) -> bool {
        let mut x = a.pairs().iter().filter(|(n, _)| self.in_signature(n));
        let mut y = b.pairs().iter().filter(|(n, _)| self.in_signature(n));
        loop {
            match (x.next(), y.next()) {
                (None, None) => return true,
                (Some(p), Some(q)) if p.0 == q.0 && p.1 == q.1 => {}
                _ => return false,
            }
        }
    }

    /// The signature labels, for error messages (Prometheus's `MatchLabels`).
    fn match_labels(&self, l: &Labels) -> Labels {
        Labels::from_sorted_unchecked(l.pairs().iter().filter(|(n, _)| self.in_signature(n)).cloned().collect())
    }
}

/// A signature view of one element, usable as a map key without building the signature.
struct SigKey<'a> {
    hash: u64,
    labels: &'a Labels,
    spec: &'a MatchSpec,
}

impl<'a> SigKey<'a> {
    fn new(spec: &'a MatchSpec, labels: &'a Labels) -> Self {
        SigKey { hash: spec.sig_hash(labels), labels, spec }
    }
}

impl Hash for SigKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for SigKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.spec.sig_eq(self.labels, other.labels)
    }
}

impl Eq for SigKey<'_> {}

pub(crate) fn eval_binary(ev: &mut Evaluator, b: &BinaryExpr, ts: i64) -> Result<Val, EvalError> {
    let op = b.op.id();
    let return_bool = b.return_bool();
    let lhs = ev.eval(&b.lhs, ts)?;
    let rhs = ev.eval(&b.rhs, ts)?;
    let out = match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => return Ok(Val::Scalar(scalar_binop(op, l, r))),
        (Val::Vector(l), Val::Scalar(r)) => vector_scalar(op, l, r, false, return_bool),
        (Val::Scalar(l), Val::Vector(r)) => vector_scalar(op, r, l, true, return_bool),
        (Val::Vector(l), Val::Vector(r)) => {
            let spec = MatchSpec::from_expr(b);
            match op {
                token::T_LAND => vector_and(&spec, l, &r),
                token::T_LOR => vector_or(&spec, l, r),
                token::T_LUNLESS => vector_unless(&spec, l, &r),
                _ => vector_binop(op, &spec, l, r, return_bool)?,
            }
        }
        _ => return Err(EvalError::Type(format!("operands of binary operator {}", b.op))),
    };
    check_duplicates(&out)?;
    Ok(Val::Vector(out))
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE)
}

fn drops_name(op: TokenId) -> bool {
    matches!(op, token::T_ADD | token::T_SUB | token::T_MUL | token::T_DIV | token::T_POW | token::T_MOD)
}

fn btos(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn scalar_binop(op: TokenId, l: f64, r: f64) -> f64 {
    match op {
        token::T_EQLC => btos(l == r),
        token::T_NEQ => btos(l != r),
        token::T_GTR => btos(l > r),
        token::T_LSS => btos(l < r),
        token::T_GTE => btos(l >= r),
        token::T_LTE => btos(l <= r),
        _ => elem_binop(op, l, r).0,
    }
}

/// The value and whether to keep the element (comparisons keep the left value when true).
fn elem_binop(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_POW => (gomath::pow(l, r), true),
        token::T_MOD => (gomath::fmod(l, r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        _ => (gomath::nan(), false),
    }
}

/// Vector op scalar (`swap` when the scalar is on the left).
fn vector_scalar(op: TokenId, vec: Vec<Elem>, s: f64, swap: bool, return_bool: bool) -> Vec<Elem> {
    let mut out = Vec::with_capacity(vec.len());
    let cmp = is_comparison(op);
    let drop = drops_name(op) || return_bool;
    for (l, v) in vec {
        let (lv, rv) = if swap { (s, v) } else { (v, s) };
        let (mut value, mut keep) = elem_binop(op, lv, rv);
        if cmp && swap {
            value = rv;
        }
        if return_bool {
            value = btos(keep);
            keep = true;
        }
        if keep {
            out.push((if drop { l.without_name() } else { l }, value));
        }
    }
    out
}

fn vector_and(spec: &MatchSpec, lhs: Vec<Elem>, rhs: &[Elem]) -> Vec<Elem> {
    if lhs.is_empty() || rhs.is_empty() {
        return Vec::new();
    }
    let right: HashSet<SigKey, IdBuild> = rhs.iter().map(|(l, _)| SigKey::new(spec, l)).collect();
    let keep: Vec<bool> = lhs.iter().map(|(l, _)| right.contains(&SigKey::new(spec, l))).collect();
    lhs.into_iter().zip(keep).filter_map(|(e, k)| k.then_some(e)).collect()
}

fn vector_or(spec: &MatchSpec, lhs: Vec<Elem>, rhs: Vec<Elem>) -> Vec<Elem> {
    if lhs.is_empty() {
        return rhs;
    }
    if rhs.is_empty() {
        return lhs;
    }
    let add: Vec<bool> = {
        let left: HashSet<SigKey, IdBuild> = lhs.iter().map(|(l, _)| SigKey::new(spec, l)).collect();
        rhs.iter().map(|(l, _)| !left.contains(&SigKey::new(spec, l))).collect()
    };
    let mut out = lhs;
    out.extend(rhs.into_iter().zip(add).filter_map(|(e, a)| a.then_some(e)));
    out
}

fn vector_unless(spec: &MatchSpec, lhs: Vec<Elem>, rhs: &[Elem]) -> Vec<Elem> {
    if lhs.is_empty() || rhs.is_empty() {
        return lhs;
    }
    let right: HashSet<SigKey, IdBuild> = rhs.iter().map(|(l, _)| SigKey::new(spec, l)).collect();
    let keep: Vec<bool> = lhs.iter().map(|(l, _)| !right.contains(&SigKey::new(spec, l))).collect();
    lhs.into_iter().zip(keep).filter_map(|(e, k)| k.then_some(e)).collect()
}

/// Arithmetic and comparison between two vectors, one-to-one or many-to-one/one-to-many.
fn vector_binop(op: TokenId, spec: &MatchSpec, lhs: Vec<Elem>, rhs: Vec<Elem>, return_bool: bool) -> Result<Vec<Elem>, EvalError> {
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    // The right side is always the "one" side: swap for one-to-many.
    let swapped = spec.card == Card::OneToMany;
    let (lhs, rhs) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let mut right: HashMap<SigKey, usize, IdBuild> = HashMap::with_capacity_and_hasher(rhs.len(), IdBuild::default());
    for (i, (l, _)) in rhs.iter().enumerate() {
        let key = SigKey::new(spec, l);
        if let Some(&j) = right.get(&key) {
            return Err(EvalError::ManyToMany {
                group: spec.match_labels(l).to_prom_string(),
                side: if swapped { "left" } else { "right" },
                first: l.to_prom_string(),
                second: rhs[j].0.to_prom_string(),
            });
        }
        right.insert(key, i);
    }
    let simple = spec.card == Card::OneToOne && !spec.on && spec.names.is_empty();
    let drop = drops_name(op);
    let mut one_to_one_seen: HashSet<SigKey, IdBuild> = HashSet::default();
    let mut grouped_seen: HashMap<SigKey, HashSet<Labels>, IdBuild> = HashMap::default();
    let mut out = Vec::new();
    for (l, lv) in &lhs {
        let key = SigKey::new(spec, l);
        let Some(&ri) = right.get(&key) else { continue };
        let (rl, rv) = &rhs[ri];
        let (vl, vr) = if swapped { (*rv, *lv) } else { (*lv, *rv) };
        let (mut value, keep) = elem_binop(op, vl, vr);
        if return_bool {
            value = btos(keep);
        } else if !keep {
            continue;
        }
        let mut metric = if simple {
            if drop {
                l.without_name()
            } else {
                l.clone()
            }
        } else {
            result_metric(l, rl, drop, spec)
        };
        if return_bool {
            metric = metric.without_name();
        }
        if spec.card == Card::OneToOne {
            if !one_to_one_seen.insert(key) {
                return Err(EvalError::ManyToOneNotExplicit);
            }
        } else if !grouped_seen.entry(key).or_default().insert(metric.clone()) {
            return Err(EvalError::GroupingNotUnique);
        }
        out.push((metric, value));
    }
    Ok(out)
}

/// The labels of a binary operation's result element (Prometheus's `resultMetric`).
fn result_metric(lhs: &Labels, rhs: &Labels, drop_name: bool, spec: &MatchSpec) -> Labels {
    let mut b = lhs.builder();
    if drop_name {
        b.del(METRIC_NAME);
    }
    if spec.card == Card::OneToOne {
        if spec.on {
            b.keep(&spec.names);
        } else {
            for n in &spec.names {
                b.del(n);
            }
        }
    }
    for n in &spec.include {
        match rhs.get_shared(n) {
            Some(v) => {
                b.set(n.as_str(), v.clone());
            }
            None => {
                b.del(n);
            }
        }
    }
    b.into_labels()
}
