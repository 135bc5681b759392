//! A target's series cache: from a sample's series text (as written in the exposition) to what
//! the scrape decided for it last time. Targets expose their series in the same order every
//! scrape, so the texts of the last scrape are kept concatenated in that order and each sample is
//! first compared with the next expected text (a sequential read the CPU prefetches); only a
//! sample out of that order goes through the hash index.

use rustc_hash::FxHashMap;

/// What a scrape decided for one series text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The store series, or `None` when relabeling dropped it or no rule selects it.
    pub id: Option<u32>,
    /// Survived metric relabeling (counts toward the sample limit).
    pub kept: bool,
    /// Decide again next time (the store had no room for it).
    pub retry: bool,
    pub last_seen: u64,
}

#[derive(Default)]
pub struct SeriesCache {
    slots: Vec<Slot>,
    index: FxHashMap<Box<str>, u32>,
    /// The last scrape's series texts back to back, and per sample (end offset, slot).
    arena: String,
    order: Vec<(u32, u32)>,
    /// Samples of this scrape that matched `order` so far, from its start.
    matched: usize,
    /// Once this scrape left the old order: the new arena and order being built.
    diverged: Option<(String, Vec<(u32, u32)>)>,
}

impl SeriesCache {
    pub fn clear(&mut self) {
        *self = SeriesCache::default();
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Starts a scrape's pass over its samples.
    pub fn begin(&mut self) {
        self.matched = 0;
        self.diverged = None;
    }

    /// The slot of a series text: `Some` when known, `None` when new (then call `insert`).
    pub fn find(&mut self, series: &str) -> Option<u32> {
        if self.diverged.is_none() {
            if let Some(&(end, slot)) = self.order.get(self.matched) {
                let start = if self.matched == 0 { 0 } else { self.order[self.matched - 1].0 as usize };
                if self.arena.get(start..end as usize) == Some(series) {
                    self.matched += 1;
                    return Some(slot);
                }
            }
            self.diverge();
        }
        let slot = *self.index.get(series)?;
        self.record(series, slot);
        Some(slot)
    }

    /// Adds a new series text with its slot; returns the slot's number.
    pub fn insert(&mut self, series: &str, slot: Slot) -> u32 {
        if self.diverged.is_none() {
            self.diverge();
        }
        let n = self.slots.len() as u32;
        self.slots.push(slot);
        self.index.insert(series.into(), n);
        self.record(series, n);
        n
    }

    pub fn slot(&mut self, n: u32) -> &mut Slot {
        &mut self.slots[n as usize]
    }

    /// Ends a successful scrape: its order becomes the expected one.
    pub fn finish(&mut self) {
        match self.diverged.take() {
            Some((arena, order)) => {
                self.arena = arena;
                self.order = order;
            }
            None => {
                let end = self.matched.checked_sub(1).map(|i| self.order[i].0 as usize).unwrap_or(0);
                self.arena.truncate(end);
                self.order.truncate(self.matched);
            }
        }
    }

    /// Forgets series not seen in the last `keep` scrapes.
    pub fn prune(&mut self, now: u64, keep: u64) {
        let mut renumber = vec![u32::MAX; self.slots.len()];
        let mut slots = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            if s.last_seen + keep > now {
                renumber[i] = slots.len() as u32;
                slots.push(*s);
            }
        }
        if slots.len() == self.slots.len() {
            return;
        }
        self.slots = slots;
        self.index.retain(|_, n| {
            *n = renumber[*n as usize];
            *n != u32::MAX
        });
        // The expected order may name pruned slots: start it afresh next scrape.
        self.arena.clear();
        self.order.clear();
    }

    /// Leaves the expected order: copy what matched so far into the new order.
    fn diverge(&mut self) {
        let end = self.matched.checked_sub(1).map(|i| self.order[i].0 as usize).unwrap_or(0);
        let mut arena = String::with_capacity(self.arena.len().max(1024));
        arena.push_str(&self.arena[..end]);
        let mut order = Vec::with_capacity(self.order.len().max(64));
        order.extend_from_slice(&self.order[..self.matched]);
        self.diverged = Some((arena, order));
    }

    fn record(&mut self, series: &str, slot: u32) {
        if let Some((arena, order)) = &mut self.diverged {
            arena.push_str(series);
            order.push((arena.len() as u32, slot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Slot {
        Slot { id: None, kept: true, retry: false, last_seen: 0 }
    }

    fn pass(c: &mut SeriesCache, series: &[&str]) -> Vec<u32> {
        c.begin();
        let out = series.iter().map(|s| c.find(s).unwrap_or_else(|| c.insert(s, slot()))).collect();
        c.finish();
        out
    }

    #[test]
    fn same_order_reuses_slots_without_the_index() {
        let mut c = SeriesCache::default();
        let first = pass(&mut c, &["a", "b{x=\"1\"}", "c"]);
        assert_eq!(first, vec![0, 1, 2]);
        assert_eq!(pass(&mut c, &["a", "b{x=\"1\"}", "c"]), first);
        assert_eq!((c.arena.as_str(), c.order.len()), ("ab{x=\"1\"}c", 3));
    }

    #[test]
    fn reordered_new_and_missing_series() {
        let mut c = SeriesCache::default();
        pass(&mut c, &["a", "b", "c"]);
        assert_eq!(pass(&mut c, &["a", "c", "b", "d"]), vec![0, 2, 1, 3]);
        assert_eq!(c.arena, "acbd");
        assert_eq!(pass(&mut c, &["a", "c"]), vec![0, 2]);
        assert_eq!(c.arena, "ac");
        assert_eq!(pass(&mut c, &["a", "c", "b"]), vec![0, 2, 1]);
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn pruning_renumbers_and_forgets() {
        let mut c = SeriesCache::default();
        pass(&mut c, &["a", "b", "c"]);
        for (i, n) in [("a", 10), ("c", 10), ("b", 1)] {
            let s = c.find(i).unwrap();
            c.slot(s).last_seen = n;
        }
        c.prune(12, 5);
        assert_eq!(c.len(), 2);
        c.begin();
        assert!(c.find("b").is_none());
        let a = c.find("a").unwrap();
        assert_eq!(c.slot(a).last_seen, 10);
    }
}
