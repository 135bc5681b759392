//! Faulty targets next to a healthy one: a target that is down, one that hangs, one that sends
//! 50 MB, one that sends garbage, and one whose file_sd entry appears and disappears. None may
//! disturb the scrapes of the others, and each failure is reported with its reason.

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::{alerter, eventually, exporter, fault_server, free_port, get, query, Fault};

fn targets(port: u16) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&get(port, "/api/v1/targets", &[]).body).unwrap();
    v["data"]["activeTargets"].as_array().cloned().unwrap_or_default()
}

fn target<'a>(all: &'a [Value], job: &str) -> Option<&'a Value> {
    all.iter().find(|t| t["scrapePool"] == job)
}

/// The counter `fleetwatch_alerter_target_scrape_duration_seconds_count{job}` from /metrics.
fn scrapes_of(port: u16, job: &str) -> f64 {
    let text = get(port, "/metrics", &[]).text();
    let prefix = format!("fleetwatch_alerter_target_scrape_duration_seconds_count{{job=\"{job}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

#[test]
fn faulty_targets_do_not_disturb_the_others() {
    let (_good, good_port) = exporter(&[]);
    let hang = fault_server(Fault::Hang);
    let huge = fault_server(Fault::Huge(50));
    let garbage = fault_server(Fault::Garbage);
    let down = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n").unwrap();
    let sd_file = dir.path().join("sd.yml");
    std::fs::write(&sd_file, "[]\n").unwrap();
    let job = |name: &str, port: u16| format!("  - job_name: {name}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nrule_files: ['{dir}/rules.yml']\nscrape_configs:\n{}{}{}{}{}  - job_name: filesd\n    file_sd_configs: [{{files: ['{dir}/sd.yml']}}]\n",
        job("good", good_port),
        job("hang", hang),
        job("huge", huge),
        job("garbage", garbage),
        job("down", down),
        dir = dir.path().display()
    );
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config).unwrap();
    let (_alerter, port) = alerter(&path, &[]);

    // Every faulty target reports down with its reason.
    let all = eventually(Duration::from_secs(20), "all targets scraped", || {
        let all = targets(port);
        let done = ["good", "hang", "huge", "garbage", "down"].iter().all(|j| target(&all, j).is_some_and(|t| t["health"] != "unknown"));
        done.then_some(all)
    });
    let error = |job: &str| target(&all, job).unwrap()["lastError"].as_str().unwrap().to_string();
    assert_eq!(target(&all, "good").unwrap()["health"], "up", "{all:?}");
    assert_eq!(error("good"), "");
    for (job, fragment) in [("hang", "deadline"), ("huge", "body size limit"), ("garbage", "line 1"), ("down", "onnect")] {
        let t = target(&all, job).unwrap();
        assert_eq!(t["health"], "down", "{job}: {t}");
        assert!(error(job).contains(fragment), "{job}: error {:?} lacks {fragment:?}", error(job));
    }
    let failures = get(port, "/metrics", &[]).text();
    for reason in ["timeout", "body_size_limit", "parse", "connection"] {
        assert!(failures.contains(&format!("reason=\"{reason}\"")), "no failure counted as {reason}:\n{failures}");
    }

    // Meanwhile the good target is scraped every second, quickly.
    let before = scrapes_of(port, "good");
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let rate = (scrapes_of(port, "good") - before) / started.elapsed().as_secs_f64();
    assert!(rate > 0.7, "good target scraped {rate:.2}/s, expected about 1/s");
    let t = targets(port);
    let good = target(&t, "good").unwrap();
    assert_eq!(good["health"], "up");
    assert!(good["lastScrapeDuration"].as_f64().unwrap() < 0.5, "{good}");
    assert_eq!(query(port, "up{job=\"good\"}")[0]["value"][1], "1");
    assert_eq!(query(port, "up{job=\"huge\"}")[0]["value"][1], "0");

    // A file_sd entry appears: it is scraped; it disappears: its series go stale at once.
    std::fs::write(&sd_file, format!("- targets: ['127.0.0.1:{good_port}']\n  labels: {{via: file}}\n")).unwrap();
    eventually(Duration::from_secs(15), "file_sd target up", || {
        let r = query(port, "up{job=\"filesd\",via=\"file\"}");
        (r.len() == 1 && r[0]["value"][1] == "1").then_some(())
    });
    std::fs::write(&sd_file, "[]\n").unwrap();
    eventually(Duration::from_secs(15), "file_sd target gone", || target(&targets(port), "filesd").is_none().then_some(()));
    assert!(query(port, "up{job=\"filesd\"}").is_empty(), "a removed target's series must be stale at once");
    assert_eq!(query(port, "up{job=\"good\"}")[0]["value"][1], "1");
}
