//! Turning discovered target groups into scrape targets as Prometheus does: the discovered labels
//! plus the job's defaults (`job`, `__address__`, `__scheme__`, `__metrics_path__`, `__param_*`,
//! `__scrape_interval__`, `__scrape_timeout__`), `relabel_configs`, then `instance` defaulting to
//! the address and the `__` labels removed.

use crate::config::{ScrapeConfig, TargetGroup};
use crate::relabel::{relabel, LabelPairs};
use fleetwatch_common::duration::{format_duration, parse_duration};
use std::collections::BTreeMap;
use std::time::Duration;

/// A target to scrape, as relabeling left it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub job: String,
    /// The labels before relabeling, as `/api/v1/targets` shows them.
    pub discovered: BTreeMap<String, String>,
    /// The final target labels (sorted, no `__` labels): `job`, `instance`, and group labels.
    pub labels: Vec<(String, String)>,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// A stable identity: the same target from another SD refresh keeps its scrape loop.
    pub fn key(&self) -> String {
        let mut k = self.url.clone();
        for (n, v) in &self.labels {
            k.push('\u{ff}');
            k.push_str(n);
            k.push('=');
            k.push_str(v);
        }
        k
    }

    pub fn label(&self, name: &str) -> &str {
        self.labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

/// What became of one discovered address.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Active(Target),
    /// Dropped by relabeling (or invalid), with its discovered labels.
    Dropped(BTreeMap<String, String>, String),
}

/// Builds the targets of a job from its discovered groups.
pub fn build_targets(sc: &ScrapeConfig, groups: &[TargetGroup]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for g in groups {
        for address in &g.targets {
            out.push(build_one(sc, g, address));
        }
    }
    out
}

fn build_one(sc: &ScrapeConfig, group: &TargetGroup, address: &str) -> Outcome {
    let mut labels: LabelPairs = group.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut default = |name: &str, value: String| {
        if !labels.iter().any(|(n, _)| n == name) {
            labels.push((name.to_string(), value));
        }
    };
    default("__address__", address.to_string());
    default("job", sc.job_name.clone());
    default("__scheme__", sc.scheme.clone());
    default("__metrics_path__", sc.metrics_path.clone());
    default("__scrape_interval__", format_duration(sc.interval()));
    default("__scrape_timeout__", format_duration(sc.timeout()));
    for (name, values) in &sc.params {
        if let Some(first) = values.first() {
            default(&format!("__param_{name}"), first.clone());
        }
    }
    let discovered: BTreeMap<String, String> = labels.iter().cloned().collect();
    if !relabel(&mut labels, &sc.relabel_configs) {
        return Outcome::Dropped(discovered, "dropped by relabeling".into());
    }
    match finish(sc, labels) {
        Ok(t) => Outcome::Active(Target { discovered, ..t }),
        Err(why) => Outcome::Dropped(discovered, why),
    }
}

fn finish(sc: &ScrapeConfig, mut labels: LabelPairs) -> Result<Target, String> {
    let get = |labels: &LabelPairs, name: &str| labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let address = get(&labels, "__address__");
    if address.is_empty() {
        return Err("no address".into());
    }
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let interval = parse_duration(&get(&labels, "__scrape_interval__")).map_err(|e| format!("__scrape_interval__: {e}"))?;
    let timeout = parse_duration(&get(&labels, "__scrape_timeout__")).map_err(|e| format!("__scrape_timeout__: {e}"))?;
    if interval.is_zero() || timeout.is_zero() || timeout > interval {
        return Err("invalid scrape interval or timeout".into());
    }
    let url = scrape_url(sc, &labels, &address);
    if get(&labels, "instance").is_empty() {
        labels.push(("instance".into(), address));
    }
    labels.retain(|(n, v)| !n.starts_with("__") && !v.is_empty());
    labels.sort();
    Ok(Target { job: sc.job_name.clone(), discovered: BTreeMap::new(), labels, url, interval, timeout })
}

fn scrape_url(sc: &ScrapeConfig, labels: &LabelPairs, address: &str) -> String {
    let get = |name: &str| labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("");
    let scheme = match get("__scheme__") {
        "" => "http",
        s => s,
    };
    let path = match get("__metrics_path__") {
        "" => "/metrics",
        p => p,
    };
    let mut params: BTreeMap<String, Vec<String>> = sc.params.clone();
    for (n, v) in labels {
        if let Some(name) = n.strip_prefix("__param_") {
            // The label replaces the first configured value, as in Prometheus.
            match params.get_mut(name).and_then(|vs| vs.first_mut()) {
                Some(first) => *first = v.clone(),
                None => {
                    params.insert(name.to_string(), vec![v.clone()]);
                }
            }
        }
    }
    let mut url = format!("{scheme}://{address}{path}");
    let mut sep = if path.contains('?') { '&' } else { '?' };
    for (name, values) in &params {
        for v in values {
            url.push(sep);
            url.push_str(&query_escape(name));
            url.push('=');
            url.push_str(&query_escape(v));
            sep = '&';
        }
    }
    url
}

/// Percent-encodes a query component as Go's `url.QueryEscape` does.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn job(yaml: &str) -> ScrapeConfig {
        Config::parse(yaml, "t").unwrap().scrape_configs.remove(0)
    }

    fn group(targets: &[&str], labels: &[(&str, &str)]) -> TargetGroup {
        TargetGroup {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            labels: labels.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        }
    }

    #[test]
    fn job_and_instance_as_prometheus_sets_them() {
        let sc = job("scrape_configs:\n  - job_name: node\n    params: {module: [x, y]}\n");
        let out = build_targets(&sc, &[group(&["h1:9100"], &[("env", "prod")])]);
        let Outcome::Active(t) = &out[0] else { panic!("{out:?}") };
        assert_eq!(t.labels, vec![("env".into(), "prod".into()), ("instance".into(), "h1:9100".into()), ("job".into(), "node".into())]);
        assert_eq!(t.url, "http://h1:9100/metrics?module=x&module=y");
        assert_eq!(t.interval, Duration::from_secs(60));
    }

    #[test]
    fn relabeling_can_drop_rename_and_set_params() {
        let sc = job(concat!(
            "scrape_configs:\n  - job_name: j\n    scheme: https\n    relabel_configs:\n",
            "      - {source_labels: [env], regex: dev, action: drop}\n",
            "      - {source_labels: [__address__], regex: '(.*):.*', target_label: instance}\n",
            "      - {target_label: __param_target, replacement: 'a b'}\n",
            "      - {target_label: __scrape_interval__, replacement: 15s}\n",
        ));
        let out = build_targets(&sc, &[group(&["h1:9100"], &[("env", "prod")]), group(&["h2:9100"], &[("env", "dev")])]);
        let Outcome::Active(t) = &out[0] else { panic!("{out:?}") };
        assert_eq!(t.label("instance"), "h1");
        assert_eq!(t.url, "https://h1:9100/metrics?target=a+b");
        assert_eq!(t.interval, Duration::from_secs(15));
        assert!(matches!(&out[1], Outcome::Dropped(d, _) if d["env"] == "dev"));
    }

    #[test]
    fn group_labels_win_over_job_defaults() {
        let sc = job("scrape_configs:\n  - job_name: j\n");
        let out = build_targets(&sc, &[group(&["h:1"], &[("job", "other"), ("__metrics_path__", "/m")])]);
        let Outcome::Active(t) = &out[0] else { panic!() };
        assert_eq!(t.label("job"), "other");
        assert_eq!(t.url, "http://h:1/m");
    }
}
