//! The seed-style threshold shorthand: each `thresholds:` entry becomes two ordinary alerting
//! rules (`severity: warning` and `severity: critical`) in a rule group named `thresholds`, and
//! its `cooldown` becomes an implicit child route at the top of the routing tree.
//!
//! The comparison is `>` when `critical` is above `warning` (or only one is set) and `<` when
//! it is below (lower is worse, as for free space).

use super::config::{RouteConfig, Threshold};
use super::matcher::{quote, Matcher};
use crate::rules::{load_text, LoadedFile};
use fleetwatch_common::config::ConfigError;
use fleetwatch_common::duration::PromDuration;
use serde::Serialize;
use std::collections::BTreeMap;

/// Where the compiled rules say they come from.
pub const ORIGIN: &str = "thresholds";

#[derive(Serialize)]
struct File {
    groups: Vec<Group>,
}

#[derive(Serialize)]
struct Group {
    name: &'static str,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<PromDuration>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// The thresholds as a Prometheus rule file (empty text when there are none).
pub fn rule_yaml(thresholds: &[Threshold]) -> String {
    if thresholds.is_empty() {
        return String::new();
    }
    let rules = thresholds.iter().flat_map(rules_of).collect();
    let file = File { groups: vec![Group { name: "thresholds", rules }] };
    serde_yaml_ng::to_string(&file).expect("rule file serializes")
}

/// The thresholds as a loaded rule file, checked as any rule file is; `None` when there are none.
pub fn compile(thresholds: &[Threshold]) -> Result<Option<LoadedFile>, ConfigError> {
    if thresholds.is_empty() {
        return Ok(None);
    }
    // The config was expanded already; keep `${` literal through the rule loader's expansion.
    let text = rule_yaml(thresholds).replace("${", "$${");
    load_text(&text, ORIGIN).map(Some)
}

fn rules_of(t: &Threshold) -> Vec<Rule> {
    let lower_is_worse = matches!((t.warning, t.critical), (Some(w), Some(c)) if c < w);
    let op = if lower_is_worse { "<" } else { ">" };
    [("warning", t.warning), ("critical", t.critical)].into_iter().filter_map(|(severity, v)| v.map(|v| rule(t, severity, op, v))).collect()
}

fn rule(t: &Threshold, severity: &str, op: &str, value: f64) -> Rule {
    let mut labels = t.labels.clone();
    labels.insert("severity".into(), severity.into());
    let shown = number(value);
    let side = if op == ">" { "above" } else { "below" };
    let summary = t.summary.clone().unwrap_or_else(|| format!("{} is {{{{ $value }}}}, {side} the {severity} threshold {shown}", t.name));
    let annotations = BTreeMap::from([("summary".to_string(), summary), ("threshold".to_string(), shown.clone())]);
    Rule { alert: t.name.clone(), expr: format!("({}) {op} {shown}", t.expr), for_: t.for_, labels, annotations }
}

/// A number as PromQL reads it.
fn number(v: f64) -> String {
    match v {
        v if v == f64::INFINITY => "+Inf".into(),
        v if v == f64::NEG_INFINITY => "-Inf".into(),
        v => format!("{v}"),
    }
}

/// `route` with one child in front for each threshold that has a cooldown: it matches the
/// threshold's alert name, sets `repeat_interval` to the cooldown, inherits everything else
/// from the root, and holds copies of the root's own children, so their receivers and grouping
/// still apply to these alerts (a child's explicit `repeat_interval` wins over the cooldown).
pub fn with_cooldown_routes(route: &RouteConfig, thresholds: &[Threshold]) -> RouteConfig {
    let mut out = route.clone();
    let implicit = thresholds.iter().filter_map(|t| {
        let cooldown = t.cooldown?;
        let m = Matcher::parse(&format!("alertname={}", quote(&t.name))).ok()?;
        Some(RouteConfig { matchers: vec![m], repeat_interval: Some(cooldown), routes: route.routes.clone(), ..RouteConfig::default() })
    });
    out.routes = implicit.chain(route.routes.iter().cloned()).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::NotifyConfig;
    use crate::notify::message::KV;
    use crate::notify::route::Route;

    const CONFIG: &str = r#"
route:
  receiver: ops
  repeat_interval: 4h
  routes:
  - matchers: ['severity="critical"']
    receiver: pager
thresholds:
- name: HighLoad
  expr: node_load1
  warning: 4
  critical: 8
  for: 5m
  cooldown: 30m
  labels: {team: infra}
- name: LowDisk
  expr: node_filesystem_avail_bytes / node_filesystem_size_bytes * 100
  warning: 20
  critical: 10
  summary: 'disk {{ $labels.mountpoint }} at {{ $value | printf "%.0f" }}% (${HOME} stays)'
"#;

    fn config() -> NotifyConfig {
        serde_yaml_ng::from_str(CONFIG).unwrap()
    }

    #[test]
    fn each_threshold_becomes_two_rules_with_severity() {
        let file = compile(&config().thresholds).unwrap().unwrap();
        let rules = &file.file.groups[0].rules;
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0].expr, "(node_load1) > 4");
        assert_eq!(rules[0].labels["severity"], "warning");
        assert_eq!(rules[0].labels["team"], "infra");
        assert_eq!(rules[1].expr, "(node_load1) > 8");
        assert_eq!(rules[1].for_.map(|d| d.0.as_secs()), Some(300));
        assert!(rules[1].annotations["summary"].contains("{{ $value }}"));
        assert!(rules[3].expr.ends_with(" < 10"), "{}", rules[3].expr);
        assert!(rules[3].annotations["summary"].contains("${HOME}"));
    }

    #[test]
    fn compiled_rules_pass_the_rule_checks_and_evaluator() {
        let file = compile(&config().thresholds).unwrap().unwrap();
        crate::evaluate::compile(std::slice::from_ref(&file), 60_000).unwrap();
        assert!(crate::unittest::duplicate_rules(&file).is_empty());
        assert!(compile(&[]).unwrap().is_none());
    }

    #[test]
    fn compiled_rules_pass_check_rules_and_a_unit_test() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("thresholds.yml");
        let t: NotifyConfig =
            serde_yaml_ng::from_str("thresholds:\n- {name: HighLoad, expr: node_load1, warning: 4, critical: 8, for: 2m}\n").unwrap();
        std::fs::write(&rules, rule_yaml(&t.thresholds)).unwrap();
        assert_eq!(crate::check::check_rules(std::slice::from_ref(&rules)), 0);
        let test = dir.path().join("t.yml");
        std::fs::write(&test, UNIT_TEST).unwrap();
        let failures = crate::unittest::test_file(&test, &mut Vec::new());
        assert!(failures.is_empty(), "{failures:?}");
    }

    /// Load 5 from 1m on: warning pending at 2m, firing at 3m; never critical.
    const UNIT_TEST: &str = r#"
rule_files: [thresholds.yml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: 'node_load1{instance="a"}'
    values: '1 5 5 5 5'
  alert_rule_test:
  - eval_time: 2m
    alertname: HighLoad
    exp_alerts: []
  - eval_time: 3m
    alertname: HighLoad
    exp_alerts:
    - exp_labels: {instance: a, severity: warning}
      exp_annotations: {summary: 'HighLoad is 5, above the warning threshold 4', threshold: '4'}
"#;

    #[test]
    fn cooldown_becomes_a_top_route_keeping_the_tree() {
        let c = config();
        let root = Route::build(&with_cooldown_routes(&c.route, &c.thresholds));
        assert_eq!(root.routes.len(), 2);
        let l = |pairs: &[(&str, &str)]| -> KV { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        let warn = root.matching(&l(&[("alertname", "HighLoad"), ("severity", "warning")]));
        assert_eq!((warn[0].receiver.as_str(), warn[0].repeat_interval_ms), ("ops", 1_800_000));
        let crit = root.matching(&l(&[("alertname", "HighLoad"), ("severity", "critical")]));
        assert_eq!((crit[0].receiver.as_str(), crit[0].repeat_interval_ms), ("pager", 1_800_000));
        let other = root.matching(&l(&[("alertname", "LowDisk"), ("severity", "warning")]));
        assert_eq!(other[0].repeat_interval_ms, 4 * 3_600_000);
    }
}
