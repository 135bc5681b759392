//! The alerter's own counters (scrapes and failures by reason, discovery failures, rejected
//! API requests) and the `/metrics` families built from them and from the store.

use crate::store::StoreStats;
use fleetwatch_common::expfmt::{Family, MetricType};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the scrape duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Telemetry {
    durations: Mutex<BTreeMap<String, Histogram>>,
    failures: Mutex<BTreeMap<(String, &'static str), u64>>,
    sd_failures: Mutex<BTreeMap<&'static str, u64>>,
    samples_ingested: AtomicU64,
    samples_not_selected: AtomicU64,
    pub config_reloads_failed: AtomicU64,
    pub config_last_reload_ok: AtomicU64,
    pub config_last_reload_time: AtomicU64,
}

impl Telemetry {
    pub fn scrape_done(&self, job: &str, seconds: f64) {
        let mut map = self.durations.lock().unwrap_or_else(|p| p.into_inner());
        let h = map.entry(job.to_string()).or_default();
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    pub fn scrape_failed(&self, job: &str, reason: &'static str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((job.to_string(), reason)).or_default() += 1;
    }

    pub fn sd_failure(&self, mechanism: &'static str) {
        *self.sd_failures.lock().unwrap_or_else(|p| p.into_inner()).entry(mechanism).or_default() += 1;
    }

    pub fn samples(&self, ingested: u64, not_selected: u64) {
        self.samples_ingested.fetch_add(ingested, Ordering::Relaxed);
        self.samples_not_selected.fetch_add(not_selected, Ordering::Relaxed);
    }

    /// The families of `/metrics` that come from these counters and the store.
    pub fn families(&self, store: &StoreStats, targets: &BTreeMap<(String, &'static str), usize>, max_series: usize) -> Vec<Family> {
        let mut out = vec![self.duration_family(), self.failure_family()];
        let mut sd = Family::counter(
            "fleetwatch_alerter_sd_refresh_failures_total",
            "Service discovery refreshes that failed (the previous targets are kept), by mechanism.",
        );
        for (m, n) in self.sd_failures.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            sd.add(&[("mechanism", m)], *n as f64);
        }
        out.push(sd);
        let mut t = Family::gauge("fleetwatch_alerter_targets", "Active scrape targets by job and health of their last scrape.");
        for ((job, health), n) in targets {
            t.add(&[("health", health), ("job", job)], *n as f64);
        }
        out.push(t);
        out.extend(store_families(store, max_series));
        out.push(Family::single(
            "fleetwatch_alerter_samples_ingested_total",
            "Scraped samples appended to the store.",
            MetricType::Counter,
            self.samples_ingested.load(Ordering::Relaxed) as f64,
        ));
        out.push(Family::single(
            "fleetwatch_alerter_samples_not_selected_total",
            "Scraped samples dropped right after parsing because no loaded rule selects their series.",
            MetricType::Counter,
            self.samples_not_selected.load(Ordering::Relaxed) as f64,
        ));
        out.extend(self.reload_families());
        out
    }

    fn duration_family(&self) -> Family {
        let mut f = Family::new(
            "fleetwatch_alerter_target_scrape_duration_seconds",
            "Duration of target scrapes (request, parsing and storing), by job.",
            MetricType::Histogram,
        );
        for (job, h) in self.durations.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            for (le, n) in DURATION_BUCKETS.iter().zip(h.counts) {
                f.add_with_suffix("_bucket", &[("job", job), ("le", &le.to_string())], n as f64);
            }
            f.add_with_suffix("_bucket", &[("job", job), ("le", "+Inf")], h.count as f64);
            f.add_with_suffix("_sum", &[("job", job)], h.sum);
            f.add_with_suffix("_count", &[("job", job)], h.count as f64);
        }
        f
    }

    fn failure_family(&self) -> Family {
        let mut f = Family::counter("fleetwatch_alerter_target_scrape_failures_total", "Failed target scrapes by job and reason.");
        for ((job, reason), n) in self.failures.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            f.add(&[("job", job), ("reason", reason)], *n as f64);
        }
        f
    }

    fn reload_families(&self) -> Vec<Family> {
        vec![
            Family::single(
                "fleetwatch_alerter_config_last_reload_successful",
                "Whether the last configuration reload attempt was successful.",
                MetricType::Gauge,
                self.config_last_reload_ok.load(Ordering::Relaxed) as f64,
            ),
            Family::single(
                "fleetwatch_alerter_config_last_reload_success_timestamp_seconds",
                "Timestamp of the last successful configuration reload.",
                MetricType::Gauge,
                self.config_last_reload_time.load(Ordering::Relaxed) as f64,
            ),
        ]
    }
}

fn store_families(s: &StoreStats, max_series: usize) -> Vec<Family> {
    let g = |name: &'static str, help: &'static str, v: f64| Family::single(name, help, MetricType::Gauge, v);
    let c = |name: &'static str, help: &'static str, v: u64| Family::single(name, help, MetricType::Counter, v as f64);
    vec![
        g("fleetwatch_alerter_store_series", "Series held in the store.", s.series as f64),
        g("fleetwatch_alerter_store_series_limit", "The most series the store will hold (--storage.max-series).", max_series as f64),
        g("fleetwatch_alerter_store_samples", "Samples held in the store.", s.samples as f64),
        g("fleetwatch_alerter_store_bytes", "Estimated memory held by the store's series, samples and indexes.", s.bytes as f64),
        c("fleetwatch_alerter_store_series_created_total", "Series created in the store.", s.series_created),
        c(
            "fleetwatch_alerter_store_series_removed_total",
            "Series removed from the store (stale past their retention, or unselected).",
            s.series_removed,
        ),
        c(
            "fleetwatch_alerter_store_series_limit_rejections_total",
            "New series refused because the store was at its series limit.",
            s.series_limit_rejections,
        ),
        c(
            "fleetwatch_alerter_store_out_of_order_samples_total",
            "Samples dropped because their timestamp was not after the series' last sample.",
            s.out_of_order_samples,
        ),
    ]
}
