//! The storage interface the engine reads series through, label matching, and a simple in-memory store.

use std::collections::BTreeMap;

use promql_parser::label::{MatchOp, Matcher};

use crate::labels::Labels;

/// Prometheus's staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is the staleness marker (a plain NaN is not).
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// One sample: a millisecond timestamp and a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

/// Where the engine reads series from.
pub trait Storage {
    /// Calls `f` for every series matching all `matchers` that has samples with timestamps in
    /// `[mint, maxt]` (milliseconds, inclusive). `samples` is the series' whole sorted sample buffer (it may
    /// extend outside the range and may contain stale NaNs). Calling in label order (as `Labels`' `Ord`)
    /// makes results reproducible: float sums depend on the order of their terms.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64, f: &mut dyn FnMut(&Labels, &[Sample]));
}

/// Whether one matcher accepts `labels` (an absent label matches as the empty string).
#[inline]
pub fn matcher_matches(m: &Matcher, labels: &Labels) -> bool {
    let v = labels.get_or_empty(&m.name);
    match &m.op {
        MatchOp::Equal => m.value == v,
        MatchOp::NotEqual => m.value != v,
        MatchOp::Re(r) => r.is_match(v),
        MatchOp::NotRe(r) => !r.is_match(v),
    }
}

/// Whether all `matchers` accept `labels`.
pub fn matches(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| matcher_matches(m, labels))
}

/// Whether `samples` (sorted by time) has a sample in `[mint, maxt]`.
pub fn has_sample_in(samples: &[Sample], mint: i64, maxt: i64) -> bool {
    let i = samples.partition_point(|s| s.t < mint);
    i < samples.len() && samples[i].t <= maxt
}

/// A simple in-memory store: series grouped by metric name, each group in label order, samples sorted by
/// time.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    by_name: BTreeMap<String, BTreeMap<Labels, Vec<Sample>>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn series_mut(&mut self, labels: Labels) -> &mut Vec<Sample> {
        let name = labels.name().unwrap_or("").to_string();
        self.by_name.entry(name).or_default().entry(labels).or_default()
    }

    /// Adds one sample; a sample at an existing timestamp replaces the old one.
    pub fn add(&mut self, labels: Labels, sample: Sample) {
        let v = self.series_mut(labels);
        match v.last() {
            Some(last) if last.t < sample.t => v.push(sample),
            None => v.push(sample),
            _ => match v.binary_search_by(|s| s.t.cmp(&sample.t)) {
                Ok(i) => v[i] = sample,
                Err(i) => v.insert(i, sample),
            },
        }
    }

    /// Replaces a series' samples (sorted by time by this call).
    pub fn set_series(&mut self, labels: Labels, mut samples: Vec<Sample>) {
        samples.sort_by_key(|s| s.t);
        samples.dedup_by_key(|s| s.t);
        *self.series_mut(labels) = samples;
    }

    /// Drops samples after `maxt` (and series left empty).
    pub fn truncate_after(&mut self, maxt: i64) {
        for group in self.by_name.values_mut() {
            for v in group.values_mut() {
                let n = v.partition_point(|s| s.t <= maxt);
                v.truncate(n);
            }
            group.retain(|_, v| !v.is_empty());
        }
        self.by_name.retain(|_, g| !g.is_empty());
    }

    pub fn len(&self) -> usize {
        self.by_name.values().map(|g| g.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Iterates series by metric name, then in label order.
    pub fn iter(&self) -> impl Iterator<Item = (&Labels, &[Sample])> {
        self.by_name.values().flat_map(|g| g.iter().map(|(l, s)| (l, s.as_slice())))
    }
}

impl Storage for MemStorage {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64, f: &mut dyn FnMut(&Labels, &[Sample])) {
        let name = matchers.iter().find_map(|m| match m.op {
            MatchOp::Equal if m.name == crate::labels::METRIC_NAME => Some(m.value.as_str()),
            _ => None,
        });
        let mut visit = |group: &BTreeMap<Labels, Vec<Sample>>| {
            for (l, s) in group {
                if has_sample_in(s, mint, maxt) && matches(matchers, l) {
                    f(l, s);
                }
            }
        };
        match name {
            Some(n) => {
                if let Some(g) = self.by_name.get(n) {
                    visit(g);
                }
            }
            None => self.by_name.values().for_each(visit),
        }
    }
}

/// A view of a store that hides samples after `maxt`, e.g. to replay a promtool test step by step the way
/// its lazy loader appends samples.
pub struct Until<'a> {
    pub inner: &'a dyn Storage,
    pub maxt: i64,
}

impl Storage for Until<'_> {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64, f: &mut dyn FnMut(&Labels, &[Sample])) {
        if mint > self.maxt {
            return;
        }
        let cut = self.maxt;
        self.inner.select(matchers, mint, maxt.min(cut), &mut |l, s| {
            let n = s.partition_point(|x| x.t <= cut);
            if n > 0 {
                f(l, &s[..n]);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_filters_by_matchers_and_time() {
        let mut st = MemStorage::new();
        let a = Labels::from_pairs([("__name__", "x"), ("job", "a")]);
        let b = Labels::from_pairs([("__name__", "x"), ("job", "b")]);
        st.add(a.clone(), Sample { t: 10, v: 1.0 });
        st.add(a.clone(), Sample { t: 5, v: 0.5 });
        st.add(b.clone(), Sample { t: 100, v: 2.0 });
        let ms = vec![Matcher::new(MatchOp::Equal, "__name__", "x")];
        let mut got = vec![];
        st.select(&ms, 0, 50, &mut |l, s| got.push((l.clone(), s.to_vec())));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, a);
        assert_eq!(got[0].1, vec![Sample { t: 5, v: 0.5 }, Sample { t: 10, v: 1.0 }]);
        let empty = vec![Matcher::new(MatchOp::Equal, "job", "")];
        assert!(!matches(&empty, &a));
        assert!(matches(&[Matcher::new(MatchOp::NotEqual, "zone", "x")], &a));
        assert!(is_stale_nan(stale_nan()) && !is_stale_nan(f64::NAN));
        let until = Until { inner: &st, maxt: 7 };
        let mut seen = vec![];
        until.select(&ms, 0, 1000, &mut |_, s| seen.push(s.to_vec()));
        assert_eq!(seen, vec![vec![Sample { t: 5, v: 0.5 }]]);
    }
}
