//! Times typical alert-rule queries over a synthetic fleet (1,000 targets, ~60k series, 15s scrapes):
//! `cargo run --release -p fleetwatch-promql --example bench [targets]`.

use std::time::Instant;

use fleetwatch_promql::{parse, Engine, Interner, MemStorage, Sample, Value};

fn main() {
    let targets: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let now: i64 = 3_600_000;
    let mut st = MemStorage::new();
    let mut interner = Interner::new();
    let mut n = 0;
    for t in 0..targets {
        let inst = format!("host{t:04}:9100");
        let job = if t % 3 == 0 { "db" } else { "node" };
        let mut add = |name: &str, extra: &[(&str, String)], f: &dyn Fn(i64) -> f64| {
            let mut pairs: Vec<(String, String)> =
                vec![("__name__".into(), name.into()), ("instance".into(), inst.clone()), ("job".into(), job.into())];
            pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
            let l = interner.labels(pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())));
            let samples: Vec<Sample> = (0..=40).map(|i| now - 600_000 + i * 15_000).map(|ts| Sample { t: ts, v: f(ts) }).collect();
            st.set_series(l, samples);
            n += 1;
        };
        add("up", &[], &|_| if t % 97 == 0 { 0.0 } else { 1.0 });
        for cpu in 0..8 {
            for mode in ["idle", "user", "system", "iowait", "irq", "softirq"] {
                add("node_cpu_seconds_total", &[("cpu", cpu.to_string()), ("mode", mode.to_string())], &|ts| ts as f64 / 1000.0 * 0.1);
            }
        }
        for dev in ["sda", "sdb"] {
            add("node_filesystem_avail_bytes", &[("device", dev.to_string()), ("mountpoint", format!("/{dev}"))], &|ts| 1e9 - ts as f64);
            add("node_filesystem_size_bytes", &[("device", dev.to_string()), ("mountpoint", format!("/{dev}"))], &|_| 2e9);
        }
        for le in ["0.1", "0.5", "1", "+Inf"] {
            add("http_request_duration_seconds_bucket", &[("le", le.to_string())], &|ts| ts as f64 / 1000.0);
        }
        add("node_load1", &[], &|ts| (ts % 7) as f64);
    }
    println!("{n} series");
    let engine = Engine::default();
    let queries = [
        "up == 0",
        "rate(node_cpu_seconds_total[5m])",
        "100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[5m])))",
        "sum by (job) (rate(node_cpu_seconds_total[5m]))",
        "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.6",
        "predict_linear(node_filesystem_avail_bytes[10m], 3600) < 0",
        "histogram_quantile(0.9, sum by (le, instance) (rate(http_request_duration_seconds_bucket[5m])))",
        "avg_over_time(node_load1[5m]) > 3",
        "absent(up{job=\"node\"})",
        "max_over_time(node_load1[10m:1m])",
    ];
    for q in queries {
        let expr = parse(q).expect("query parses");
        let runs = 5;
        let start = Instant::now();
        let mut len = 0;
        for _ in 0..runs {
            len = match engine.instant(&st, &expr, now).expect("query evaluates") {
                Value::Vector(v) => v.len(),
                _ => 0,
            };
        }
        println!("{:>9.2} ms  {len:>6} results  {q}", start.elapsed().as_secs_f64() * 1000.0 / runs as f64);
    }
}
