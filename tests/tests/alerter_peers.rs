//! The alerter against real peers: the same scrape config validated by Debian's
//! `promtool check config` and by `fleetwatch-alerter check config` (good and bad variants), and
//! real exporters (fleetwatch-exporter and Debian's node_exporter) scraped by both the alerter and
//! a real Prometheus, whose `/api/v1/query` answers must agree.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{alerter, bin, eventually, exporter, free_port, query, require, run, wait_port, Proc, Prometheus};

/// A config using every supported field, with the files it names created under `dir`.
fn full_config(dir: &Path) -> String {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("ca.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("password"), "secret\n").unwrap();
    std::fs::write(dir.join("token"), "abc\n").unwrap();
    std::fs::write(dir.join("targets.yml"), "- targets: ['127.0.0.1:1']\n  labels: {team: a}\n").unwrap();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::copy(support::repo_root().join("rules/host.yml"), dir.join("rules/host.yml")).unwrap();
    format!(
        r#"global:
  scrape_interval: 15s
  scrape_timeout: 10s
  evaluation_interval: 30s
  external_labels:
    fleet: test
rule_files:
  - {dir}/rules/*.yml
scrape_configs:
  - job_name: node
    scrape_interval: 30s
    scrape_timeout: 5s
    metrics_path: /metrics
    scheme: https
    params:
      module: [a, b]
    honor_labels: true
    honor_timestamps: false
    body_size_limit: 10MB
    sample_limit: 5000
    basic_auth:
      username: prom
      password_file: {dir}/password
    tls_config:
      ca_file: {dir}/ca.pem
      server_name: localhost
      insecure_skip_verify: false
    static_configs:
      - targets: ['a:9100', 'b:9100']
        labels:
          env: prod
    file_sd_configs:
      - files: ['{dir}/*.yml']
        refresh_interval: 1m
    relabel_configs:
      - source_labels: [__address__]
        regex: '([^:]+):\d+'
        target_label: instance
        replacement: '$1'
      - source_labels: [env]
        regex: dev
        action: drop
      - source_labels: [env]
        regex: prod|staging
        action: keep
      - source_labels: [__address__]
        modulus: 4
        target_label: __tmp_shard
        action: hashmod
      - regex: '__meta_(.+)'
        action: labelmap
      - regex: 'tmp_.*'
        action: labeldrop
      - regex: '.+'
        action: labelkeep
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'go_.*'
        action: drop
  - job_name: api
    authorization:
      type: Bearer
      credentials_file: {dir}/token
    http_sd_configs:
      - url: http://127.0.0.1:1/sd
        refresh_interval: 30s
"#,
        dir = dir.display()
    )
}

fn check_both(config: &str, dir: &Path) -> (i32, String, i32, String) {
    let path = dir.join("config.yml");
    std::fs::write(&path, config).unwrap();
    let (p_code, p_out, p_err) = run(Command::new("promtool").args(["check", "config", "--syntax-only"]).arg(&path));
    let (o_code, o_out, o_err) = run(Command::new(bin("fleetwatch-alerter")).args(["check", "config"]).arg(&path));
    (p_code, format!("{p_out}{p_err}"), o_code, format!("{o_out}{o_err}"))
}

#[test]
fn promtool_and_alerter_agree_on_config_files() {
    if !require("promtool", "promtool_and_alerter_agree_on_config_files") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = full_config(dir.path());
    let (p, p_out, o, o_out) = check_both(&good, dir.path());
    assert_eq!((p, o), (0, 0), "promtool:\n{p_out}\nalerter:\n{o_out}");
    assert!(o_out.contains("SUCCESS") && o_out.contains("1 rule files"), "{o_out}");

    let bad: [(&str, &str, &str); 6] = [
        ("unknown field", "    scrape_interval: 30s\n", "    scrape_intervall: 30s\n"),
        ("timeout above interval", "    scrape_timeout: 5s\n", "    scrape_timeout: 50s\n"),
        ("duplicate job", "  - job_name: api\n", "  - job_name: node\n"),
        ("unknown action", "        action: labeldrop\n", "        action: labelsmash\n"),
        ("hashmod without modulus", "        modulus: 4\n", ""),
        ("bad regex", "regex: dev\n", "regex: 'de(v'\n"),
    ];
    for (what, from, to) in bad {
        assert!(good.contains(from), "{what}: {from:?} not in the config");
        let config = good.replacen(from, to, 1);
        let (p, p_out, o, o_out) = check_both(&config, dir.path());
        assert_ne!(p, 0, "{what}: promtool accepted it:\n{p_out}");
        assert_eq!(o, 1, "{what}: the alerter accepted it:\n{o_out}");
        assert!(o_out.contains("config.yml"), "{what}: the error does not name the file:\n{o_out}");
    }
}

/// Rules that make the store keep what the comparison queries.
const COMPARE_RULES: &str = r#"groups:
  - name: compare
    rules:
      - record: compare:up
        expr: up
      - record: compare:memory
        expr: node_memory_MemTotal_bytes
      - record: compare:cpu
        expr: rate(node_cpu_seconds_total[1m])
      - record: compare:load
        expr: node_load1
      - record: compare:samples
        expr: scrape_samples_scraped
"#;

fn series_map(result: &[Value]) -> BTreeMap<String, f64> {
    result
        .iter()
        .map(|r| {
            let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
            (r["metric"].to_string(), v)
        })
        .collect()
}

#[test]
fn alerter_and_prometheus_scrape_real_exporters_alike() {
    if !require("prometheus", "alerter_and_prometheus_scrape_real_exporters_alike")
        || !require("prometheus-node-exporter", "alerter_and_prometheus_scrape_real_exporters_alike")
    {
        return;
    }
    let (_fw, fw_port) = exporter(&[]);
    let ne_port = free_port();
    let mut cmd = Command::new("prometheus-node-exporter");
    cmd.arg(format!("--web.listen-address=127.0.0.1:{ne_port}")).stderr(Stdio::null());
    let _ne = Proc::spawn("node_exporter", &mut cmd);
    wait_port(ne_port, "node_exporter");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compare.yml"), COMPARE_RULES).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files: ['{}/compare.yml']\nscrape_configs:\n  - job_name: fleetwatch\n    static_configs: [{{targets: ['127.0.0.1:{fw_port}']}}]\n  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{ne_port}']}}]\n",
        dir.path().display()
    );
    let config_path = dir.path().join("config.yml");
    std::fs::write(&config_path, &config).unwrap();
    let (_alerter, port) = alerter(&config_path, &[]);
    let prom = Prometheus::with_config(&config);

    for server in [port, prom.port] {
        eventually(Duration::from_secs(30), "both targets up", || (query(server, "up == 1").len() == 2).then_some(()));
        eventually(Duration::from_secs(30), "rates of every CPU series", || {
            let rates = query(server, "count(rate(node_cpu_seconds_total[1m]))");
            let all = query(server, "count(node_cpu_seconds_total)");
            (!rates.is_empty() && rates == all).then_some(())
        });
    }
    // Same series and identical values for what does not change between scrapes.
    for q in ["up", "node_memory_MemTotal_bytes", "count by (job) (node_cpu_seconds_total)", "count(rate(node_cpu_seconds_total[1m]))"] {
        let ours = series_map(&query(port, q));
        let theirs = series_map(&query(prom.port, q));
        assert!(!ours.is_empty(), "{q}: empty");
        assert_eq!(ours, theirs, "{q}");
    }
    // Same series, values within one scrape's drift for what does.
    for (q, tolerance) in [("node_load1", 1.0), ("sum by (job) (rate(node_cpu_seconds_total[1m]))", 1.0), ("scrape_samples_scraped", 10.0)]
    {
        let ours = series_map(&query(port, q));
        let theirs = series_map(&query(prom.port, q));
        assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "{q}");
        for (k, v) in &ours {
            assert!((v - theirs[k]).abs() <= tolerance, "{q} {k}: ours {v}, Prometheus {}", theirs[k]);
        }
    }
    // The store kept only what the rules select.
    assert!(query(port, "node_boot_time_seconds").is_empty());
    assert!(!query(prom.port, "node_boot_time_seconds").is_empty());
}

#[test]
fn deploy_examples_pass_both_checkers() {
    if !require("promtool", "deploy_examples_pass_both_checkers") {
        return;
    }
    let config = support::repo_root().join("deploy/alerter.yml");
    let (p, p_out, p_err) = run(Command::new("promtool").args(["check", "config", "--syntax-only"]).arg(&config));
    assert_eq!(p, 0, "promtool: {p_out}{p_err}");
    let (o, o_out, o_err) = run(Command::new(bin("fleetwatch-alerter")).args(["check", "config"]).arg(&config));
    assert_eq!(o, 0, "alerter: {o_out}{o_err}");
}
