//! A stand-alone driver of the activity watcher for benches/activity.sh, for measuring the watcher
//! alone (or when the exporter's activity collector is not built in):
//!
//!   activity_watch ROOT [MAX_WATCHES]
//!
//! prints `rss_before_kb N`, starts a `Watcher` on ROOT (the default excludes, a 60 s scan
//! interval), prints `ready MS INOTIFY_DIRS SCAN_DIRS` once the watches are in place, then reads
//! the counters every 15 s (as the collector's sampling would) until killed, printing
//! `modifications N` when they change.

use fleetwatch_exporter::activity::watch::{WatchConfig, Watcher};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(root) = args.get(1) else {
        eprintln!("usage: activity_watch ROOT [MAX_WATCHES]");
        std::process::exit(2);
    };
    let max_watches = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
    let exclude = [".git/", "node_modules/", "target/", "__pycache__/", ".venv/"].map(String::from).to_vec();
    let config = WatchConfig {
        roots: vec![PathBuf::from(root)],
        exclude,
        scan_interval: Duration::from_secs(60),
        scan_max_dirs: 10_000,
        max_watches,
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "rss_before_kb {}", rss_kb());
    let started = Instant::now();
    let watcher = match Watcher::start(config) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("activity_watch: {e}");
            std::process::exit(1);
        }
    };
    while !watcher.ready() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = watcher.stats().remove(0);
    let _ = writeln!(out, "ready {} {} {}", started.elapsed().as_millis(), s.inotify_dirs, s.scan_dirs);
    let mut seen = 0;
    loop {
        std::thread::sleep(Duration::from_secs(15));
        let s = watcher.stats().remove(0);
        if s.modifications_total != seen {
            seen = s.modifications_total;
            let _ = writeln!(out, "modifications {seen}");
        }
    }
}
