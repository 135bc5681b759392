//! One scrape: run the selected collectors concurrently on blocking threads, time each, report
//! `fleetwatch_exporter_scrape_collector_{duration_seconds,success}`, and merge everything into
//! one sorted list of families. A failing or panicking collector never fails the scrape.

use crate::collector::{Collector, Context, Shared, REGISTRY};
use crate::config::Config;
use crate::paths::Paths;
use fleetwatch_common::expfmt::Family;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The enabled collectors, built for one config generation.
pub struct Exporter {
    collectors: Vec<(&'static str, Arc<dyn Collector>)>,
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
        Ok(Exporter { collectors })
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

    /// Runs the chosen collectors concurrently and returns the merged families, including the
    /// per-collector duration and success families. The collectors are shared out among as many
    /// blocking workers as there are CPUs (at most one per collector): concurrency where it
    /// helps, without a thread hand-off per collector.
    pub async fn scrape(&self, chosen: &[&'static str]) -> Vec<Family> {
        let jobs: Arc<Vec<(&'static str, Arc<dyn Collector>)>> =
            Arc::new(self.collectors.iter().filter(|(n, _)| chosen.contains(n)).map(|(n, c)| (*n, c.clone())).collect());
        let cores = cores();
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..cores.min(jobs.len()) {
            let (jobs, next) = (jobs.clone(), next.clone());
            workers.push(tokio::task::spawn_blocking(move || {
                let mut done = Vec::new();
                while let Some((name, c)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    done.push(run_one(name, c.as_ref()));
                }
                done
            }));
        }
        let mut runs = Vec::new();
        for w in workers {
            match w.await {
                Ok(done) => runs.extend(done),
                Err(e) => tracing::error!(err = %e, "scrape worker failed"),
            }
        }
        let order = |name: &str| jobs.iter().position(|(n, _)| *n == name);
        runs.sort_by_key(|r| order(r.name));
        assemble(runs)
    }
}

/// CPUs available to us, asked once (the std call reads cgroup files every time).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
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
    use crate::collector::CollectError;
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

    #[tokio::test]
    async fn failing_and_panicking_collectors_do_not_fail_the_scrape() {
        let e = Exporter { collectors: vec![("fails", Arc::new(Fails)), ("panics", Arc::new(Panics))] };
        let out = encode(&e.scrape(&["fails", "panics"]).await, Format::Text);
        assert!(out.contains("fleetwatch_exporter_scrape_collector_success{collector=\"fails\"} 0\n"), "{out}");
        assert!(out.contains("fleetwatch_exporter_scrape_collector_success{collector=\"panics\"} 0\n"), "{out}");
        assert!(out.contains("partial 1\n"));
    }

    #[test]
    fn select_follows_node_exporter_rules() {
        let e = Exporter { collectors: vec![("a", Arc::new(Fails)), ("b", Arc::new(Fails))] };
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
