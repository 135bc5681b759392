//! Label sets: sorted, immutable, cheaply clonable `(name, value)` pairs with a precomputed hash,
//! ordered the way Prometheus's `labels.Compare` orders them.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label name or value, shared between label sets.
pub type Str = Arc<str>;

/// A sorted label set (including `__name__` when present). Cloning is a reference-count increment.
/// Labels never hold empty values: constructors drop them, as Prometheus treats an empty value as absent.
#[derive(Clone)]
pub struct Labels {
    hash: u64,
    pairs: Arc<[(Str, Str)]>,
}

static EMPTY: OnceLock<Labels> = OnceLock::new();

impl Labels {
    /// The empty label set.
    pub fn empty() -> Labels {
        EMPTY.get_or_init(|| Labels::from_sorted_unchecked(Vec::new())).clone()
    }

    /// Builds a label set from pairs in any order; empty values are dropped and for a repeated name the last
    /// pair wins.
    pub fn from_pairs<I, N, V>(pairs: I) -> Labels
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<Str>,
        V: Into<Str>,
    {
        let mut v: Vec<(Str, Str)> = pairs.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        // Stable sort keeps input order among equal names so that "last wins" below is well defined.
        v.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut out: Vec<(Str, Str)> = Vec::with_capacity(v.len());
        for (n, val) in v {
            if let Some(last) = out.last_mut() {
                if last.0 == n {
                    *last = (n, val);
                    continue;
                }
            }
            out.push((n, val));
        }
        out.retain(|(_, v)| !v.is_empty());
        Labels::from_sorted_unchecked(out)
    }

    /// Builds from pairs already sorted by name, unique, with non-empty values (checked in debug builds).
    pub(crate) fn from_sorted_unchecked(pairs: Vec<(Str, Str)>) -> Labels {
        Self::from_shared(pairs.into())
    }

    fn from_shared(pairs: Arc<[(Str, Str)]>) -> Labels {
        debug_assert!(pairs.windows(2).all(|w| w[0].0.as_bytes() < w[1].0.as_bytes()));
        debug_assert!(pairs.iter().all(|(_, v)| !v.is_empty()));
        Labels { hash: hash_pairs(&pairs), pairs }
    }

    /// A builder starting from this label set.
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder { pairs: self.pairs.to_vec() }
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.index_of(name).map(|i| &*self.pairs[i].1)
    }

    /// The value of label `name`, or "" when absent (Prometheus's `Labels.Get`).
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// The shared value of label `name`, if present.
    pub(crate) fn get_shared(&self, name: &str) -> Option<&Str> {
        self.index_of(name).map(|i| &self.pairs[i].1)
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        let p = &self.pairs;
        if p.len() <= 8 {
            return p.iter().position(|(n, _)| &**n == name);
        }
        p.binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes())).ok()
    }

    /// The metric name, if present.
    pub fn name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Iterates `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.pairs.iter().map(|(n, v)| (&**n, &**v))
    }

    /// The shared pairs in name order.
    pub fn pairs(&self) -> &[(Str, Str)] {
        &self.pairs
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The precomputed hash of the whole label set.
    pub fn hash_value(&self) -> u64 {
        self.hash
    }

    /// This label set without `__name__` (a cheap clone when there is no name).
    pub fn without_name(&self) -> Labels {
        match self.index_of(METRIC_NAME) {
            None => self.clone(),
            Some(i) => {
                // A chain of slice iterators has an exact length, so this allocates once.
                let pairs: Arc<[(Str, Str)]> = self.pairs[..i].iter().chain(self.pairs[i + 1..].iter()).cloned().collect();
                Labels::from_shared(pairs)
            }
        }
    }

    /// Formats like Prometheus's `labels.Labels.String()`: `{__name__="up", job="x"}`.
    pub fn to_prom_string(&self) -> String {
        let mut s = String::with_capacity(16 * self.len() + 2);
        s.push('{');
        for (i, (n, v)) in self.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(n);
            s.push('=');
            push_quoted(&mut s, v);
        }
        s.push('}');
        s
    }
}

/// Appends `v` as a double-quoted string with Go-style escapes.
pub(crate) fn push_quoted(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => s.push_str(&format!("\\x{:02x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
}

impl fmt::Display for Labels {
    /// `name{a="b", c="d"}`, or `{a="b"}` without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        if let Some(n) = self.name() {
            s.push_str(n);
        }
        s.push('{');
        let mut first = true;
        for (n, v) in self.iter() {
            if n == METRIC_NAME {
                continue;
            }
            if !first {
                s.push_str(", ");
            }
            first = false;
            s.push_str(n);
            s.push('=');
            push_quoted(&mut s, v);
        }
        s.push('}');
        f.write_str(&s)
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_prom_string())
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.pairs, &other.pairs) || self.pairs == other.pairs)
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Ord for Labels {
    /// Prometheus's `labels.Compare`: pairwise by name then value, the shorter set first on a common prefix.
    fn cmp(&self, other: &Self) -> Ordering {
        if Arc::ptr_eq(&self.pairs, &other.pairs) {
            return Ordering::Equal;
        }
        compare_pairs(&self.pairs, &other.pairs)
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub(crate) fn compare_pairs(a: &[(Str, Str)], b: &[(Str, Str)]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        match x.0.as_bytes().cmp(y.0.as_bytes()) {
            Ordering::Equal => {}
            o => return o,
        }
        match x.1.as_bytes().cmp(y.1.as_bytes()) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

/// Shares equal label names and values between label sets (fewer allocations, and matching touches less
/// memory). A store can keep one per process or per shard.
#[derive(Debug, Default)]
pub struct Interner {
    set: std::collections::HashSet<Str>,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared copy of `s`.
    pub fn intern(&mut self, s: &str) -> Str {
        if let Some(v) = self.set.get(s) {
            return v.clone();
        }
        let v: Str = Arc::from(s);
        self.set.insert(v.clone());
        v
    }

    /// A label set whose names and values are shared copies.
    pub fn labels<'a>(&mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
        let v: Vec<(Str, Str)> = pairs.into_iter().map(|(n, v)| (self.intern(n), self.intern(v))).collect();
        Labels::from_pairs(v)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Drops strings no label set uses any more.
    pub fn gc(&mut self) {
        self.set.retain(|s| Arc::strong_count(s) > 1);
    }
}

/// Edits a label set: `set`, `del`, `keep`, then `build`.
#[derive(Clone, Debug, Default)]
pub struct LabelsBuilder {
    pairs: Vec<(Str, Str)>,
}

impl LabelsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn pos(&self, name: &str) -> Result<usize, usize> {
        self.pairs.binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes()))
    }

    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: impl Into<Str>, value: impl Into<Str>) -> &mut Self {
        let name = name.into();
        let value = value.into();
        if value.is_empty() {
            return self.del(&name);
        }
        match self.pos(&name) {
            Ok(i) => self.pairs[i].1 = value,
            Err(i) => self.pairs.insert(i, (name, value)),
        }
        self
    }

    pub fn del(&mut self, name: &str) -> &mut Self {
        if let Ok(i) = self.pos(name) {
            self.pairs.remove(i);
        }
        self
    }

    /// Keeps only the listed labels.
    pub fn keep<S: AsRef<str>>(&mut self, names: &[S]) -> &mut Self {
        self.pairs.retain(|(n, _)| names.iter().any(|k| k.as_ref() == &**n));
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pos(name).ok().map(|i| &*self.pairs[i].1)
    }

    pub fn build(&self) -> Labels {
        Labels::from_sorted_unchecked(self.pairs.clone())
    }

    pub fn into_labels(self) -> Labels {
        Labels::from_sorted_unchecked(self.pairs)
    }
}

/// A small, fast 64-bit hasher (FxHash-style mixing with a final avalanche) used for label sets and
/// signatures; equality is always checked after a hash match, so collisions only cost time.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher {
    h: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.h = (self.h.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut x = self.h;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

/// Hashes one `(name, value)` pair into `h`, with separators so that pairs cannot run into each other.
#[inline]
pub(crate) fn hash_pair(h: &mut FastHasher, n: &str, v: &str) {
    h.write(n.as_bytes());
    h.write_u8(0xff);
    h.write(v.as_bytes());
    h.write_u8(0xfe);
}

fn hash_pairs(pairs: &[(Str, Str)]) -> u64 {
    let mut h = FastHasher::default();
    for (n, v) in pairs {
        hash_pair(&mut h, n, v);
    }
    h.finish()
}

/// A hasher that passes a precomputed `u64` through (for maps keyed by values that hash themselves).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only used with write_u64; fall back to a mix for anything else.
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ *b as u64).wrapping_mul(SEED);
        }
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type IdBuild = std::hash::BuildHasherDefault<IdHasher>;

/// Checks a label name against Prometheus's `^[a-zA-Z_][a-zA-Z0-9_]*$`.
pub fn is_valid_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && (b[0].is_ascii_alphabetic() || b[0] == b'_') && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_deduplicated() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("__name__", "up"), ("c", ""), ("a", "3")]);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![("__name__", "up"), ("a", "3"), ("b", "2")]);
        assert_eq!(l.get("a"), Some("3"));
        assert_eq!(l.get("c"), None);
        assert_eq!(l.name(), Some("up"));
        assert_eq!(l.to_string(), "up{a=\"3\", b=\"2\"}");
        assert_eq!(l.to_prom_string(), "{__name__=\"up\", a=\"3\", b=\"2\"}");
        assert_eq!(l.without_name().to_string(), "{a=\"3\", b=\"2\"}");
    }

    #[test]
    fn ordering_matches_prometheus_compare() {
        let a = Labels::from_pairs([("a", "1")]);
        let ab = Labels::from_pairs([("a", "1"), ("b", "1")]);
        let b = Labels::from_pairs([("b", "0")]);
        assert!(a < ab);
        assert!(ab < b);
        assert!(Labels::empty() < a);
        assert_eq!(a, Labels::from_pairs([("a", "1")]));
    }

    #[test]
    fn builder_set_del_keep() {
        let l = Labels::from_pairs([("a", "1"), ("b", "2"), ("c", "3")]);
        let mut b = l.builder();
        b.set("d", "4").del("a").set("b", "");
        assert_eq!(b.build().to_prom_string(), "{c=\"3\", d=\"4\"}");
        let mut k = l.builder();
        k.keep(&["a", "c", "zz"]);
        assert_eq!(k.build().to_prom_string(), "{a=\"1\", c=\"3\"}");
    }

    #[test]
    fn quoting() {
        let l = Labels::from_pairs([("a", "x\"y\\z\n")]);
        assert_eq!(l.to_prom_string(), "{a=\"x\\\"y\\\\z\\n\"}");
    }
}
