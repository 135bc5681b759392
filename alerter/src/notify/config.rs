//! The notification part of the alerter's config, in Alertmanager's terms and field names:
//! the `route` tree, `inhibit_rules`, and the seed-style `thresholds` shorthand; their defaults for
//! a small fleet and their validation against the configured receiver names.

use super::matcher::{deserialize_list, MatchOp, Matcher};
use fleetwatch_common::duration::PromDuration;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `route`, `inhibit_rules` and `thresholds` of the alerter's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(default = "default_route")]
    pub route: RouteConfig,
    /// Absent: `default_inhibit_rules()`; an explicit `[]` turns inhibition off.
    #[serde(default = "default_inhibit_rules")]
    pub inhibit_rules: Vec<InhibitRule>,
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig { route: default_route(), inhibit_rules: default_inhibit_rules(), thresholds: Vec::new() }
    }
}

/// One node of the routing tree. Unset fields are inherited from the parent (the root's from
/// the defaults: group_wait 30s, group_interval 5m, repeat_interval 4h, group_by nothing).
/// Alertmanager's deprecated `match` and `match_re` are read into `matchers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "RawRoute")]
pub struct RouteConfig {
    pub receiver: Option<String>,
    /// Label names; `["..."]` groups by all labels; `[]` puts all alerts in one group.
    pub group_by: Option<Vec<String>>,
    pub group_wait: Option<PromDuration>,
    pub group_interval: Option<PromDuration>,
    /// Also accepted as `cooldown`.
    pub repeat_interval: Option<PromDuration>,
    pub matchers: Vec<Matcher>,
    pub continue_: bool,
    pub routes: Vec<RouteConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    receiver: Option<String>,
    group_by: Option<Vec<String>>,
    group_wait: Option<PromDuration>,
    group_interval: Option<PromDuration>,
    #[serde(alias = "cooldown")]
    repeat_interval: Option<PromDuration>,
    #[serde(default, deserialize_with = "deserialize_list")]
    matchers: Vec<Matcher>,
    #[serde(default, rename = "match", deserialize_with = "legacy_equal")]
    match_: Vec<Matcher>,
    #[serde(default, deserialize_with = "legacy_regex")]
    match_re: Vec<Matcher>,
    #[serde(default, rename = "continue")]
    continue_: bool,
    #[serde(default)]
    routes: Vec<RouteConfig>,
}

impl From<RawRoute> for RouteConfig {
    fn from(r: RawRoute) -> Self {
        RouteConfig {
            receiver: r.receiver,
            group_by: r.group_by,
            group_wait: r.group_wait,
            group_interval: r.group_interval,
            repeat_interval: r.repeat_interval,
            matchers: [r.match_, r.match_re, r.matchers].concat(),
            continue_: r.continue_,
            routes: r.routes,
        }
    }
}

/// Firing alerts matching `source_matchers` mute alerts matching `target_matchers` that have
/// the same values for the `equal` labels. The deprecated `source_match(_re)` and
/// `target_match(_re)` are read into the matchers.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawInhibitRule")]
pub struct InhibitRule {
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    pub equal: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInhibitRule {
    #[serde(default, deserialize_with = "deserialize_list")]
    source_matchers: Vec<Matcher>,
    #[serde(default, deserialize_with = "legacy_equal")]
    source_match: Vec<Matcher>,
    #[serde(default, deserialize_with = "legacy_regex")]
    source_match_re: Vec<Matcher>,
    #[serde(default, deserialize_with = "deserialize_list")]
    target_matchers: Vec<Matcher>,
    #[serde(default, deserialize_with = "legacy_equal")]
    target_match: Vec<Matcher>,
    #[serde(default, deserialize_with = "legacy_regex")]
    target_match_re: Vec<Matcher>,
    #[serde(default)]
    equal: Vec<String>,
}

impl From<RawInhibitRule> for InhibitRule {
    fn from(r: RawInhibitRule) -> Self {
        InhibitRule {
            source_matchers: [r.source_match, r.source_match_re, r.source_matchers].concat(),
            target_matchers: [r.target_match, r.target_match_re, r.target_matchers].concat(),
            equal: r.equal,
        }
    }
}

/// `match:` — a map of label names to exact values.
fn legacy_equal<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Matcher>, D::Error> {
    legacy(d, MatchOp::Equal)
}

/// `match_re:` — a map of label names to (anchored) regexes.
fn legacy_regex<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Matcher>, D::Error> {
    legacy(d, MatchOp::Regex)
}

fn legacy<'de, D: Deserializer<'de>>(d: D, op: MatchOp) -> Result<Vec<Matcher>, D::Error> {
    let map = Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default();
    map.iter().map(|(k, v)| Matcher::new(k, op, v).map_err(serde::de::Error::custom)).collect()
}

/// Seed-style shorthand: `expr` compared with a warning and a critical value, compiled into two
/// alerting rules named `name` (see `thresholds.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub name: String,
    pub expr: String,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    #[serde(rename = "for")]
    pub for_: Option<PromDuration>,
    /// The repeat interval of these alerts' notifications.
    pub cooldown: Option<PromDuration>,
    /// Annotation template; `{{ $value }}` is the expression's value.
    pub summary: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The receiver the default route sends to (a `log_configs: [{}]` receiver).
pub const DEFAULT_RECEIVER: &str = "log";

/// The route used when the config has none: everything to `log`, grouped by alert and instance.
pub fn default_route() -> RouteConfig {
    RouteConfig {
        receiver: Some(DEFAULT_RECEIVER.to_string()),
        group_by: Some(vec!["alertname".into(), "instance".into()]),
        group_wait: Some(PromDuration(Duration::from_secs(30))),
        group_interval: Some(PromDuration(Duration::from_secs(300))),
        repeat_interval: Some(PromDuration(Duration::from_secs(4 * 3600))),
        ..RouteConfig::default()
    }
}

/// Used when the config has no `inhibit_rules`: critical mutes warning of the same alert and
/// instance.
pub fn default_inhibit_rules() -> Vec<InhibitRule> {
    let m = |s: &str| Matcher::parse(s).expect("valid built-in matcher");
    vec![InhibitRule {
        source_matchers: vec![m(r#"severity="critical""#)],
        target_matchers: vec![m(r#"severity="warning""#)],
        equal: vec!["alertname".into(), "instance".into()],
    }]
}

/// A notification config that parses but cannot be used; `at` is the field's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {msg}")]
pub struct NotifyConfigError {
    pub at: String,
    pub msg: String,
}

fn invalid(at: &str, msg: impl Into<String>) -> NotifyConfigError {
    NotifyConfigError { at: at.to_string(), msg: msg.into() }
}

impl NotifyConfig {
    /// Checks receiver names against `receivers`, the root route's shape and the thresholds.
    pub fn validate(&self, receivers: &BTreeSet<String>) -> Result<(), NotifyConfigError> {
        let root = &self.route;
        if root.receiver.is_none() {
            return Err(invalid("route", "root route must specify a default receiver"));
        }
        if !root.matchers.is_empty() {
            return Err(invalid("route", "root route must not have any matchers"));
        }
        if root.continue_ {
            return Err(invalid("route", "cannot have continue in root route"));
        }
        check_route(root, "route", receivers)?;
        for (i, t) in self.thresholds.iter().enumerate() {
            check_threshold(t).map_err(|m| invalid(&format!("thresholds[{i}] ({:?})", t.name), m))?;
        }
        let mut names = BTreeSet::new();
        for t in &self.thresholds {
            if !names.insert(&t.name) {
                return Err(invalid("thresholds", format!("repeated threshold name {:?}", t.name)));
            }
        }
        Ok(())
    }
}

fn check_route(r: &RouteConfig, at: &str, receivers: &BTreeSet<String>) -> Result<(), NotifyConfigError> {
    if let Some(name) = &r.receiver {
        if !receivers.contains(name) {
            return Err(invalid(&format!("{at}.receiver"), format!("undefined receiver {name:?} used in route")));
        }
    }
    if let Some(g) = &r.group_by {
        if g.iter().any(|l| l == "...") && g.len() > 1 {
            return Err(invalid(&format!("{at}.group_by"), "cannot have wildcard group_by (`...`) and other labels at the same time"));
        }
        if let Some(dup) = g.iter().enumerate().find_map(|(i, l)| g[..i].contains(l).then_some(l)) {
            return Err(invalid(&format!("{at}.group_by"), format!("duplicated label {dup:?}")));
        }
    }
    if r.group_interval.is_some_and(|d| d.0.is_zero()) {
        return Err(invalid(&format!("{at}.group_interval"), "must be greater than 0"));
    }
    if r.repeat_interval.is_some_and(|d| d.0.is_zero()) {
        return Err(invalid(&format!("{at}.repeat_interval"), "must be greater than 0"));
    }
    for (i, c) in r.routes.iter().enumerate() {
        check_route(c, &format!("{at}.routes[{i}]"), receivers)?;
    }
    Ok(())
}

fn check_threshold(t: &Threshold) -> Result<(), String> {
    if !fleetwatch_common::expfmt::is_valid_metric_name(&t.name) {
        return Err(format!("invalid alert name {:?}", t.name));
    }
    if t.warning.is_none() && t.critical.is_none() {
        return Err("at least one of warning and critical must be set".into());
    }
    if t.warning.is_some_and(f64::is_nan) || t.critical.is_some_and(f64::is_nan) {
        return Err("thresholds must be numbers".into());
    }
    if t.labels.contains_key("severity") {
        return Err("the severity label is set by the threshold itself".into());
    }
    if t.cooldown.is_some_and(|d| d.0.is_zero()) {
        return Err("cooldown must be greater than 0".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> NotifyConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn receivers(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_config_gets_the_small_fleet_defaults() {
        let c = parse("{}");
        assert_eq!(c.route.receiver.as_deref(), Some("log"));
        assert_eq!(c.inhibit_rules.len(), 1);
        assert!(parse("inhibit_rules: []").inhibit_rules.is_empty());
        c.validate(&receivers(&["log"])).unwrap();
    }

    #[test]
    fn cooldown_is_repeat_interval_and_matchers_parse() {
        let c = parse(
            "route:\n  receiver: a\n  routes:\n  - matchers: ['severity=\"critical\"', 'team=~\"db|web\"']\n    cooldown: 30m\n    continue: true\n",
        );
        let child = &c.route.routes[0];
        assert_eq!(child.repeat_interval, Some(PromDuration(Duration::from_secs(1800))));
        assert_eq!(child.matchers.len(), 2);
        assert!(child.continue_);
    }

    #[test]
    fn unknown_fields_and_bad_regexes_are_rejected() {
        let e = serde_yaml_ng::from_str::<NotifyConfig>("route:\n  reciever: a\n").unwrap_err().to_string();
        assert!(e.contains("reciever"), "{e}");
        let e = serde_yaml_ng::from_str::<NotifyConfig>("route:\n  receiver: a\n  matchers: ['a=~\"(\"']\n").unwrap_err().to_string();
        assert!(e.contains("a=~") && e.contains("regex"), "{e}");
    }

    #[test]
    fn legacy_match_fields_become_matchers() {
        let c = parse(
            "route:\n  receiver: a\n  routes:\n  - match: {team: db}\n    match_re: {severity: 'crit.*'}\n\
             inhibit_rules:\n- source_match: {severity: critical}\n  target_match_re: {severity: 'warn.*'}\n  equal: [instance]\n",
        );
        let shown: Vec<String> = c.route.routes[0].matchers.iter().map(|m| m.to_string()).collect();
        assert_eq!(shown, [r#"team="db""#, r#"severity=~"crit.*""#]);
        assert_eq!(c.inhibit_rules[0].source_matchers[0].to_string(), r#"severity="critical""#);
        assert_eq!(c.inhibit_rules[0].target_matchers[0].to_string(), r#"severity=~"warn.*""#);
        let e = serde_yaml_ng::from_str::<NotifyConfig>("route:\n  receiver: a\n  match_re: {a: '('}\n").unwrap_err().to_string();
        assert!(e.contains("regex"), "{e}");
    }

    #[test]
    fn unknown_receivers_are_named_with_their_route() {
        let c = parse("route:\n  receiver: a\n  routes:\n  - receiver: b\n    routes:\n    - receiver: nope\n");
        let e = c.validate(&receivers(&["a", "b"])).unwrap_err();
        assert_eq!(e.at, "route.routes[0].routes[0].receiver");
        assert!(e.msg.contains("\"nope\""));
        assert!(parse("route: {group_by: [alertname]}").validate(&receivers(&["a"])).is_err());
    }

    #[test]
    fn thresholds_are_checked() {
        let ok = "thresholds:\n- {name: HighLoad, expr: node_load1, warning: 4, critical: 8, for: 5m, cooldown: 30m}\n";
        parse(ok).validate(&receivers(&["log"])).unwrap();
        let none = "thresholds:\n- {name: HighLoad, expr: node_load1}\n";
        assert!(parse(none).validate(&receivers(&["log"])).is_err());
    }
}
