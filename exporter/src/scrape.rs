//! One scrape: run the selected collectors concurrently on blocking threads, time each, report
//! `fleetwatch_exporter_scrape_collector_{duration_seconds,success}`, and merge everything into
//! one sorted list of families. A failing or panicking collector never fails the scrape.

use crate::collector::{CollectError, Collector, Context, Shared, REGISTRY};
use crate::config::Config;
use crate::health::probe::Module;
use crate::paths::Paths;
use fleetwatch_common::expfmt::Family;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The enabled collectors, built for one config generation.
pub struct Exporter {
    collectors: Vec<(&'static str, Arc<dyn Collector>)>,
    /// The `/probe` modules of this config generation.
    pub modules: BTreeMap<String, Arc<Module>>,
}

/// Which collectors are enabled: registry defaults (or none with `disable_defaults`), then the
/// config file's `collectors:`, then the `--collector.NAME` / `--no-collector.NAME` flags in order.
pub fn enabled_names(config: &Config, disable_defaults: bool, flags: &[(String, bool)]) -> BTreeSet<&'static str> {
    let mut on: BTreeSet<&'static str> = REGISTRY.iter().filter(|s| s.default_enabled && !disable_defaults).map(|s| s.name).collect();
    let toggles = config.collectors.0.iter().map(|(n, v)| (n.0.as_str(), *v)).chain(flags.iter().map(|(n, v)| (n.as_str(), *v)));
    for (name, enable) in toggles {
        if let Some(spec) = REGISTRY.iter().find(|s| s.name == name) {
            if enable {
                on.insert(spec.name);
            } else {
                on.remove(spec.name);
            }
        }
    }
    on
}

impl Exporter {
    /// Builds the named collectors. A constructor error is reported as a config-time error.
    pub fn build(names: &BTreeSet<&'static str>, paths: &Paths, config: &Config, shared: &Arc<Shared>) -> Result<Exporter, String> {
        let ctx = Context { paths, config, shared };
        let mut collectors = Vec::new();
        for spec in REGISTRY.iter().filter(|s| names.contains(s.name)) {
            let c = (spec.build)(&ctx).map_err(|e| format!("collector {}: {e}", spec.name))?;
            collectors.push((spec.name, Arc::from(c)));
        }
        let modules = config.health.compile().map_err(|e| format!("health: {e}"))?.modules;
        Ok(Exporter { collectors, modules })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.collectors.iter().map(|(n, _)| *n).collect()
    }

    /// Picks collectors by node_exporter's `collect[]` / `exclude[]` parameters.
    pub fn select(&self, collect: &[String], exclude: &[String]) -> Result<Vec<&'static str>, String> {
        if !collect.is_empty() && !exclude.is_empty() {
            return Err("collect[] and exclude[] cannot be combined".to_string());
        }
        let names = self.names();
        for n in collect.iter().chain(exclude) {
            if !names.contains(&n.as_str()) {
                return Err(format!("missing collector: {n}"));
            }
        }
        Ok(names
            .into_iter()
            .filter(|n| (collect.is_empty() || collect.iter().any(|c| c == n)) && !exclude.iter().any(|e| e == n))
            .collect())
    }

    /// Runs the chosen collectors and returns the merged families, including the per-collector
    /// duration and success families. Collectors run concurrently on blocking workers that take
    /// them from a shared queue: one worker starts, and another joins whenever the queue has
    /// not moved for `HELPER_AFTER` (a slow or hung collector never holds up the others), up to
    /// one worker per collector. Fast scrapes thus cost no thread hand-offs beyond the first.
    pub async fn scrape(&self, chosen: &[&'static str]) -> Vec<Family> {
        let queue = Arc::new(Queue {
            jobs: self.collectors.iter().filter(|(n, _)| chosen.contains(n)).map(|(n, c)| (*n, c.clone())).collect(),
            next: AtomicUsize::new(0),
        });
        let mut workers = tokio::task::JoinSet::new();
        let mut runs = Vec::new();
        let mut last_seen = None;
        loop {
            let taken = queue.next.load(Ordering::Relaxed).min(queue.jobs.len());
            let waiting = taken < queue.jobs.len();
            if !waiting && workers.is_empty() {
                break;
            }
            // Start one worker, and add one whenever the queue stood still since the last look.
            if waiting && (workers.is_empty() || last_seen == Some(taken)) && workers.len() < queue.jobs.len() {
                let q = queue.clone();
                workers.spawn_blocking(move || q.drain());
            }
            last_seen = Some(taken);
            match tokio::time::timeout(HELPER_AFTER, workers.join_next()).await {
                Ok(Some(Ok(done))) => runs.extend(done),
                Ok(Some(Err(e))) => tracing::error!(err = %e, "scrape worker failed"),
                Ok(None) | Err(_) => {}
            }
        }
        let order = |name: &str| queue.jobs.iter().position(|(n, _)| *n == name);
        runs.sort_by_key(|r| order(r.name));
        assemble(runs)
    }
}

/// How long the collector queue may stand still before another worker joins.
const HELPER_AFTER: std::time::Duration = std::time::Duration::from_millis(2);

/// The collectors of one scrape and the index of the next one to run.
struct Queue {
    jobs: Vec<(&'static str, Arc<dyn Collector>)>,
    next: AtomicUsize,
}

impl Queue {
    /// Runs collectors from the queue until it is empty.
    fn drain(&self) -> Vec<Run> {
        let mut done = Vec::new();
        while let Some((name, c)) = self.jobs.get(self.next.fetch_add(1, Ordering::Relaxed)) {
            done.push(run_one(name, c.as_ref()));
        }
        done
    }
}

struct Run {
    name: &'static str,
    seconds: f64,
    ok: bool,
    families: Vec<Family>,
}

/// Runs one collector; a panic inside it is contained and reported like any failure.
fn run_one(name: &'static str, c: &dyn Collector) -> Run {
    let start = Instant::now();
    let mut families = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.collect(&mut families)));
    let seconds = start.elapsed().as_secs_f64();
    let ok = match result {
        Ok(Ok(())) => true,
        Ok(Err(e @ CollectError::NoData(_))) => {
            // Expected on some hosts (e.g. no PSI in the kernel): not worth a log line per scrape.
            tracing::debug!(collector = name, err = %e, "collector returned no data");
            false
        }
        Ok(Err(e)) => {
            tracing::error!(collector = name, duration_seconds = seconds, err = %e, "collector failed");
            false
        }
        Err(_) => {
            tracing::error!(collector = name, "collector panicked");
            families.clear();
            false
        }
    };
    Run { name, seconds, ok, families }
}

fn assemble(runs: Vec<Run>) -> Vec<Family> {
    let mut duration =
        Family::gauge("fleetwatch_exporter_scrape_collector_duration_seconds", "fleetwatch_exporter: Duration of a collector scrape.");
    let mut success = Family::gauge("fleetwatch_exporter_scrape_collector_success", "fleetwatch_exporter: Whether a collector succeeded.");
    let mut all = Vec::new();
    for r in runs {
        duration.add(&[("collector", r.name)], r.seconds);
        success.add(&[("collector", r.name)], if r.ok { 1.0 } else { 0.0 });
        all.extend(r.families);
    }
    all.push(duration);
    all.push(success);
    merge(all)
}

/// Sorts families by name and merges same-named ones. A family whose type disagrees with an
/// earlier one of the same name is dropped and logged (the exposition would be invalid).
pub fn merge(mut families: Vec<Family>) -> Vec<Family> {
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out: Vec<Family> = Vec::with_capacity(families.len());
    for f in families {
        match out.last_mut() {
            Some(last) if last.name() == f.name() => {
                if last.kind() == f.kind() {
                    last.absorb(f);
                } else {
                    tracing::error!(metric = f.name(), "metric exported twice with different types; dropping the second");
                }
            }
            _ => out.push(f),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CollectorName;
    use fleetwatch_common::expfmt::{encode, Format, MetricType};
    use std::collections::BTreeMap;

    #[test]
    fn enablement_follows_defaults_config_then_flags() {
        let mut cfg = Config::default();
        cfg.collectors.0 = BTreeMap::from([(CollectorName("uname".into()), false), (CollectorName("cpu".into()), true)]);
        let on = enabled_names(&cfg, true, &[("meminfo".to_string(), true), ("cpu".to_string(), false)]);
        assert_eq!(on.into_iter().collect::<Vec<_>>(), vec!["meminfo"]);
        let on = enabled_names(&cfg, false, &[]);
        assert!(on.contains("cpu") && !on.contains("uname"));
    }

    struct Fails;
    impl Collector for Fails {
        fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
            let mut f = Family::gauge("partial", "still exported");
            f.add(&[], 1.0);
            out.push(f);
            Err(CollectError::Other("broken".into()))
        }
    }
    struct Panics;
    impl Collector for Panics {
        fn collect(&self, _: &mut Vec<Family>) -> Result<(), CollectError> {
            panic!("collector bug")
        }
    }

    struct Sleeps(u64);
    impl Collector for Sleeps {
        fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
            std::thread::sleep(std::time::Duration::from_millis(self.0));
            let mut f = Family::gauge(format!("slept_{}", self.0), "h");
            f.add(&[], 1.0);
            out.push(f);
            Ok(())
        }
    }

    #[tokio::test]
    async fn slow_collectors_run_concurrently() {
        let e = Exporter {
            modules: BTreeMap::new(),
            collectors: vec![
                ("a", Arc::new(Sleeps(300))),
                ("b", Arc::new(Sleeps(300))),
                ("c", Arc::new(Sleeps(300))),
                ("d", Arc::new(Sleeps(1))),
            ],
        };
        let start = std::time::Instant::now();
        let out = encode(&e.scrape(&["a", "b", "c", "d"]).await, Format::Text);
        let took = start.elapsed();
        assert!(took < std::time::Duration::from_millis(700), "collectors ran one after another: {took:?}");
        for name in ["slept_300 1", "slept_1 1"] {
            assert!(out.contains(name), "{out}");
        }
        assert_eq!(out.matches("fleetwatch_exporter_scrape_collector_success{").count(), 4);
    }

    #[tokio::test]
    async fn failing_and_panicking_collectors_do_not_fail_the_scrape() {
        let e = Exporter { modules: BTreeMap::new(), collectors: vec![("fails", Arc::new(Fails)), ("panics", Arc::new(Panics))] };
        let out = encode(&e.scrape(&["fails", "panics"]).await, Format::Text);
        assert!(out.contains("fleetwatch_exporter_scrape_collector_success{collector=\"fails\"} 0\n"), "{out}");
        assert!(out.contains("fleetwatch_exporter_scrape_collector_success{collector=\"panics\"} 0\n"), "{out}");
        assert!(out.contains("partial 1\n"));
    }

    #[test]
    fn select_follows_node_exporter_rules() {
        let e = Exporter { modules: BTreeMap::new(), collectors: vec![("a", Arc::new(Fails)), ("b", Arc::new(Fails))] };
        assert_eq!(e.select(&["b".into()], &[]).unwrap(), vec!["b"]);
        assert_eq!(e.select(&[], &["b".into()]).unwrap(), vec!["a"]);
        assert!(e.select(&["zz".into()], &[]).is_err());
        assert!(e.select(&["a".into()], &["b".into()]).is_err());
    }

    #[test]
    fn merge_joins_same_names_and_drops_type_conflicts() {
        let mut a = Family::gauge("x", "h");
        a.add(&[("k", "1")], 1.0);
        let mut b = Family::gauge("x", "h");
        b.add(&[("k", "2")], 2.0);
        let mut c = Family::new("x", "h", MetricType::Counter);
        c.add(&[("k", "3")], 3.0);
        let merged = merge(vec![a, b, c]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].sample_count(), 2);
    }
}
