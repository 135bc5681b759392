//! The short-term series store: in memory, only series that a loaded rule can select, each kept
//! for as long back as the rules that select it look (plus the lookback), with Prometheus's
//! staleness markers. Series live in a slab addressed by `SeriesId`; scrapers cache ids and are
//! told to drop their caches (by a changed `generation`) when ids are freed or the selection
//! changes. It implements the PromQL engine's `Storage`.

use fleetwatch_promql::{matches, Labels, Sample, SelectorNeed, Storage, STALE_NAN_BITS};
use promql_parser::label::{MatchOp, Matcher};
use std::collections::HashMap;
use std::sync::Arc;

pub type SeriesId = u32;

/// Prometheus's staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Which series the loaded rules can select, and for how long each must be kept.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// Needs whose selector names one metric (`__name__="x"`), by that name.
    by_name: HashMap<String, Vec<SelectorNeed>>,
    /// Needs with any other kind of name matcher, or none.
    other: Vec<SelectorNeed>,
    /// Keep every series (the `--storage.keep-all` mode, and tests).
    pub keep_all: Option<i64>,
}

impl Selection {
    pub fn new(needs: Vec<SelectorNeed>) -> Selection {
        let mut s = Selection::default();
        for need in needs {
            match metric_name(&need.matchers) {
                Some(name) => s.by_name.entry(name.to_string()).or_default().push(need),
                None => s.other.push(need),
            }
        }
        s
    }

    pub fn everything(retention_ms: i64) -> Selection {
        Selection { keep_all: Some(retention_ms), ..Default::default() }
    }

    /// How long back the rules need this series, or `None` when no rule selects it.
    pub fn retention(&self, labels: &Labels) -> Option<i64> {
        if let Some(r) = self.keep_all {
            return Some(r);
        }
        let name = labels.get("__name__").unwrap_or("");
        let named = self.by_name.get(name).into_iter().flatten();
        named.chain(self.other.iter()).filter(|n| matches(&n.matchers, labels)).map(|n| n.lookback_ms).max()
    }

    pub fn selector_count(&self) -> usize {
        self.by_name.values().map(Vec::len).sum::<usize>() + self.other.len()
    }
}

/// The metric name when the matchers pin it with `__name__="x"`.
pub fn metric_name(matchers: &[Matcher]) -> Option<&str> {
    matchers.iter().find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal)).map(|m| m.value.as_str())
}

struct Series {
    labels: Labels,
    samples: Vec<Sample>,
    retention_ms: i64,
}

/// Counters and gauges about the store, for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreStats {
    pub series: usize,
    pub samples: usize,
    pub bytes: usize,
    pub series_created: u64,
    pub series_removed: u64,
    pub series_limit_rejections: u64,
    pub out_of_order_samples: u64,
}

pub struct Store {
    series: Vec<Option<Series>>,
    free: Vec<SeriesId>,
    by_labels: HashMap<Labels, SeriesId>,
    by_name: HashMap<Arc<str>, Vec<SeriesId>>,
    selection: Selection,
    /// Bumped whenever ids are freed or the selection changes: scrapers then drop their caches.
    generation: u64,
    max_series: usize,
    stats: StoreStats,
}

/// Why a series could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    NotSelected,
    SeriesLimit,
}

impl Store {
    pub fn new(selection: Selection, max_series: usize) -> Store {
        Store {
            series: Vec::new(),
            free: Vec::new(),
            by_labels: HashMap::new(),
            by_name: HashMap::new(),
            selection,
            generation: 1,
            max_series,
            stats: StoreStats::default(),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Replaces what the rules select (rules loaded or reloaded): series no rule selects any
    /// more are dropped, retentions updated, and scrapers re-decide from scratch.
    pub fn set_selection(&mut self, selection: Selection) {
        self.selection = selection;
        self.generation += 1;
        let ids: Vec<SeriesId> = self.by_labels.values().copied().collect();
        for id in ids {
            let retention = self.series[id as usize].as_ref().and_then(|s| self.selection.retention(&s.labels));
            match retention {
                Some(r) => {
                    if let Some(s) = self.series[id as usize].as_mut() {
                        s.retention_ms = r;
                    }
                }
                None => self.remove(id),
            }
        }
    }

    /// The id of the series with these labels, created when the rules select it.
    pub fn get_or_create(&mut self, labels: Labels) -> Result<SeriesId, Rejected> {
        if let Some(&id) = self.by_labels.get(&labels) {
            return Ok(id);
        }
        let retention_ms = self.selection.retention(&labels).ok_or(Rejected::NotSelected)?;
        if self.by_labels.len() >= self.max_series {
            self.stats.series_limit_rejections += 1;
            return Err(Rejected::SeriesLimit);
        }
        let name: Arc<str> = Arc::from(labels.get("__name__").unwrap_or(""));
        let series = Series { labels: labels.clone(), samples: Vec::new(), retention_ms };
        let id = match self.free.pop() {
            Some(id) => {
                self.series[id as usize] = Some(series);
                id
            }
            None => {
                self.series.push(Some(series));
                (self.series.len() - 1) as SeriesId
            }
        };
        self.by_labels.insert(labels, id);
        self.by_name.entry(name).or_default().push(id);
        self.stats.series_created += 1;
        Ok(id)
    }

    /// Appends a sample; out-of-order and duplicate timestamps are dropped and counted (a
    /// staleness marker at the same timestamp as the last sample is dropped silently).
    pub fn append(&mut self, id: SeriesId, t: i64, v: f64) {
        let Some(Some(s)) = self.series.get_mut(id as usize) else { return };
        if let Some(last) = s.samples.last() {
            if t <= last.t {
                if t < last.t || !fleetwatch_promql::is_stale_nan(v) {
                    self.stats.out_of_order_samples += 1;
                }
                return;
            }
        }
        s.samples.push(Sample { t, v });
        trim(&mut s.samples, t - s.retention_ms);
    }

    /// Marks a series stale at `t` (its target dropped it or went down) unless it already is.
    pub fn mark_stale(&mut self, id: SeriesId, t: i64) {
        let already =
            matches!(self.series.get(id as usize), Some(Some(s)) if s.samples.last().is_some_and(|l| fleetwatch_promql::is_stale_nan(l.v)));
        if !already {
            self.append(id, t, stale_nan());
        }
    }

    /// Drops samples older than each series' retention and frees series with no samples left.
    pub fn gc(&mut self, now_ms: i64) {
        let mut freed = Vec::new();
        for (id, slot) in self.series.iter_mut().enumerate() {
            let Some(s) = slot else { continue };
            trim_exact(&mut s.samples, now_ms - s.retention_ms);
            let only_stale = s.samples.iter().all(|x| fleetwatch_promql::is_stale_nan(x.v));
            if only_stale {
                freed.push(id as SeriesId);
            } else if s.samples.capacity() > 2 * s.samples.len() + 8 {
                s.samples.shrink_to_fit();
            }
        }
        for id in freed {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: SeriesId) {
        let Some(series) = self.series.get_mut(id as usize).and_then(Option::take) else { return };
        self.by_labels.remove(&series.labels);
        let name = series.labels.get("__name__").unwrap_or("");
        if let Some(ids) = self.by_name.get_mut(name) {
            ids.retain(|&x| x != id);
            if ids.is_empty() {
                self.by_name.remove(name);
            }
        }
        self.free.push(id);
        self.generation += 1;
        self.stats.series_removed += 1;
    }

    pub fn stats(&self) -> StoreStats {
        let mut st = self.stats;
        st.series = self.by_labels.len();
        st.samples = 0;
        st.bytes = self.series.capacity() * std::mem::size_of::<Option<Series>>();
        for s in self.series.iter().flatten() {
            st.samples += s.samples.len();
            st.bytes += s.samples.capacity() * std::mem::size_of::<Sample>() + labels_bytes(&s.labels);
        }
        // The two indexes: a key and an id per series, plus hash table overhead.
        st.bytes += st.series * (2 * std::mem::size_of::<Labels>() + 3 * std::mem::size_of::<SeriesId>() + 32);
        st
    }

    pub fn labels(&self, id: SeriesId) -> Option<&Labels> {
        self.series.get(id as usize)?.as_ref().map(|s| &s.labels)
    }

    /// Every series (for `/api/v1/series` and label APIs) matching the matchers.
    pub fn for_each_matching(&self, matchers: &[Matcher], f: &mut dyn FnMut(&Labels, &[Sample])) {
        let candidates: Box<dyn Iterator<Item = &SeriesId>> = match metric_name(matchers) {
            Some(name) => Box::new(self.by_name.get(name).into_iter().flatten()),
            None => Box::new(self.by_labels.values()),
        };
        for &id in candidates {
            if let Some(Some(s)) = self.series.get(id as usize) {
                if matches(matchers, &s.labels) {
                    f(&s.labels, &s.samples);
                }
            }
        }
    }
}

fn labels_bytes(labels: &Labels) -> usize {
    labels.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
}

/// Drops samples before `min_t`, but only once at least a quarter of the buffer is old, so the
/// memmove is amortised over many appends.
fn trim(samples: &mut Vec<Sample>, min_t: i64) {
    let Some(first) = samples.first() else { return };
    if first.t >= min_t {
        return;
    }
    let old = samples.partition_point(|s| s.t < min_t);
    if old * 4 >= samples.len() {
        samples.drain(..old);
    }
}

fn trim_exact(samples: &mut Vec<Sample>, min_t: i64) {
    let old = samples.partition_point(|s| s.t < min_t);
    samples.drain(..old);
}

impl Storage for Store {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64, f: &mut dyn FnMut(&Labels, &[Sample])) {
        self.for_each_matching(matchers, &mut |labels, samples| {
            let in_range = samples.first().is_some_and(|s| s.t <= maxt) && samples.last().is_some_and(|s| s.t >= mint);
            if in_range {
                f(labels, samples);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(queries: &[&str]) -> Selection {
        let exprs = queries.iter().map(|q| fleetwatch_promql::parse(q).unwrap());
        Selection::new(exprs.flat_map(|e| crate::rules::needs_of(&e, 300_000)).collect())
    }

    fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
        let mut all: Vec<(String, String)> = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        all.push(("__name__".into(), name.into()));
        Labels::from_pairs(all)
    }

    #[test]
    fn retention_follows_the_longest_selector() {
        let sel = needs(&["a", "rate(a{x=\"1\"}[1h])", "{__name__=~\"b.*\"}"]);
        assert_eq!(sel.retention(&labels("a", &[("x", "2")])), Some(300_000));
        assert_eq!(sel.retention(&labels("a", &[("x", "1")])), Some(3_600_000 + 300_000));
        assert_eq!(sel.retention(&labels("bee", &[])), Some(300_000));
        assert_eq!(sel.retention(&labels("c", &[])), None);
    }

    #[test]
    fn old_samples_are_trimmed_and_stale_series_freed() {
        let mut st = Store::new(needs(&["a"]), 10);
        let id = st.get_or_create(labels("a", &[])).unwrap();
        for t in 0..100 {
            st.append(id, t * 15_000, t as f64);
        }
        let kept = st.stats().samples;
        assert!(kept <= 2 * 300_000 / 15_000 + 1, "{kept}");
        st.gc(99 * 15_000);
        assert_eq!(st.stats().samples, 300_000 / 15_000 + 1);
        let generation = st.generation();
        st.mark_stale(id, 100 * 15_000);
        st.gc(100 * 15_000 + 400_000);
        assert_eq!(st.stats().series, 0);
        assert!(st.generation() > generation, "freeing ids must invalidate scrapers' caches");
    }

    #[test]
    fn out_of_order_and_limits() {
        let mut st = Store::new(needs(&["{__name__=~\".+\"}"]), 2);
        let a = st.get_or_create(labels("a", &[])).unwrap();
        st.append(a, 2000, 1.0);
        st.append(a, 1000, 2.0);
        st.append(a, 2000, 3.0);
        assert_eq!(st.stats().out_of_order_samples, 2);
        st.mark_stale(a, 2000); // a marker at the last timestamp is not an error
        assert_eq!(st.stats().out_of_order_samples, 2);
        st.get_or_create(labels("b", &[])).unwrap();
        assert_eq!(st.get_or_create(labels("c", &[])), Err(Rejected::SeriesLimit));
        assert_eq!(st.stats().series_limit_rejections, 1);
        assert_eq!(Store::new(needs(&["x"]), 10).get_or_create(labels("y", &[])), Err(Rejected::NotSelected));
    }

    #[test]
    fn reselection_drops_what_no_rule_selects_any_more() {
        let mut st = Store::new(needs(&["a", "b"]), 10);
        let a = st.get_or_create(labels("a", &[])).unwrap();
        let b = st.get_or_create(labels("b", &[])).unwrap();
        st.append(a, 1000, 1.0);
        st.append(b, 1000, 1.0);
        st.set_selection(needs(&["b[1h]"]));
        assert!(st.labels(a).is_none());
        assert!(st.labels(b).is_some());
        let mut seen = 0;
        st.select(&fleetwatch_promql::selector_needs(&fleetwatch_promql::parse("b").unwrap(), 0)[0].matchers, 0, 2000, &mut |_, s| {
            seen += s.len()
        });
        assert_eq!(seen, 1);
    }
}
