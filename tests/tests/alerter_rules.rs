//! The alerter evaluating rules in the daemon: a recording rule's output is queryable, an alert
//! goes pending then firing with its templated labels and annotations in `/api/v1/alerts`,
//! `/api/v1/rules` shows the groups' state, and `ALERTS` is queryable.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::{alerter, eventually, exporter, get, query};

fn api(port: u16, path: &str) -> Value {
    let v: Value = serde_json::from_slice(&get(port, path, &[]).body).unwrap();
    assert_eq!(v["status"], "success", "{v}");
    v["data"].clone()
}

#[test]
fn rules_are_evaluated_and_alerts_fire() {
    let (_e, exporter_port) = exporter(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        r#"groups:
  - name: test
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: TargetUp
        expr: job:up:sum >= 1
        for: 2s
        labels:
          severity: info
          target_job: "{{ $labels.job }}"
        annotations:
          summary: "{{ $labels.job }} has {{ $value }} targets up"
      - alert: Quiet
        expr: job:up:sum > 100
      - alert: WantsAlerts
        expr: ALERTS{alertname="TargetUp"}
"#,
    )
    .unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\nrule_files: [rules.yml]\nscrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
        ),
    )
    .unwrap();
    let (_a, port) = alerter(&config, &[]);

    eventually(Duration::from_secs(20), "the recording rule's output", || {
        let r = query(port, "job:up:sum");
        (r.len() == 1 && r[0]["value"][1] == "1").then_some(())
    });
    let pending = eventually(Duration::from_secs(20), "a pending alert", || {
        let a = api(port, "/api/v1/alerts")["alerts"].as_array().cloned().unwrap_or_default();
        a.into_iter().find(|x| x["labels"]["alertname"] == "TargetUp")
    });
    assert_eq!(pending["labels"]["severity"], "info");
    assert_eq!(pending["labels"]["target_job"], "node");
    assert_eq!(pending["annotations"]["summary"], "node has 1 targets up");
    let firing = eventually(Duration::from_secs(20), "the alert firing after `for`", || {
        let a = api(port, "/api/v1/alerts")["alerts"].as_array().cloned().unwrap_or_default();
        a.into_iter().find(|x| x["labels"]["alertname"] == "TargetUp" && x["state"] == "firing")
    });
    assert_eq!(firing["value"], "1e+00");
    let alerts_series = query(port, "ALERTS{alertname=\"TargetUp\",alertstate=\"firing\"}");
    assert_eq!(alerts_series.len(), 1, "{alerts_series:?}");

    let rules = api(port, "/api/v1/rules");
    let group = &rules["groups"][0];
    assert_eq!(group["name"], "test");
    assert_eq!(group["interval"], 1.0);
    let by_name = |n: &str| group["rules"].as_array().unwrap().iter().find(|r| r["name"] == n).cloned().unwrap();
    assert_eq!(by_name("job:up:sum")["type"], "recording");
    assert_eq!(by_name("job:up:sum")["health"], "ok");
    assert_eq!(by_name("TargetUp")["state"], "firing");
    assert_eq!(by_name("Quiet")["state"], "inactive");
    let metrics = get(port, "/metrics", &[]).text();
    assert!(metrics.contains("fleetwatch_alerter_alerts{state=\"firing\"} "), "{metrics}");
    assert!(metrics.contains("ALERTS{alertname=\"TargetUp\",alertstate=\"firing\""), "{metrics}");
    assert!(metrics.contains("ALERTS_FOR_STATE{alertname=\"TargetUp\""), "{metrics}");
    assert!(metrics.contains("fleetwatch_alerter_rule_group_last_duration_seconds{rule_group="), "{metrics}");
}
