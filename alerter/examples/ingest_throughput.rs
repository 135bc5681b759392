//! Measures the scrape ingest path on one core: parse a recorded exposition, look every series up
//! in a warm per-target cache, append what the shipped rules select. Prints samples per second.
//!
//! Usage: cargo run --release -p fleetwatch-alerter --example ingest_throughput [FILE] [ROUNDS]

use fleetwatch_alerter::relabel::RelabelConfig;
use fleetwatch_alerter::scrape::{client_for, ingest, JobSettings, TargetCache};
use fleetwatch_alerter::store::{Selection, Store};
use fleetwatch_common::expfmt::ScrapeFormat;
use std::sync::{Arc, RwLock};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let file = args.get(1).cloned().unwrap_or_else(|| "benches/fixtures/node_exporter.prom".into());
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(20_000);
    let body = std::fs::read_to_string(&file).expect("read the exposition");
    let rules = fleetwatch_alerter::rules::load_shipped().expect("shipped rules");
    let store = RwLock::new(Store::new(Selection::new(rules.selector_needs(300_000)), 1_000_000));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _guard = rt.enter();
    let settings = JobSettings {
        client: client_for(&Default::default()).expect("client"),
        honor_labels: false,
        honor_timestamps: true,
        sample_limit: 0,
        body_size_limit: 0,
        metric_relabel: Arc::new(Vec::<RelabelConfig>::new()),
    };
    let target = vec![("instance".to_string(), "host:9100".to_string()), ("job".to_string(), "node".to_string())];
    let mut cache = TargetCache::default();
    let mut samples = 0u64;
    let started = Instant::now();
    for i in 0..rounds {
        let n = ingest(&body, ScrapeFormat::Text, &target, &settings, &mut cache, &store, 1_000 + i as i64 * 15_000).expect("ingest");
        samples += n.scraped;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{samples} samples in {secs:.3} s: {:.0} samples/s, {:.1} µs per scrape", samples as f64 / secs, secs * 1e6 / rounds as f64);
}
