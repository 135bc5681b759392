//! The routing tree: route configs resolved into routes with every inherited setting filled in,
//! matched against an alert's labels as Alertmanager does (depth first, the first matching child
//! wins unless it has `continue`, a node none of whose children match takes the alert itself).

use super::config::RouteConfig;
use super::matcher::{format_list, matches_all, quote, Matcher};
use super::message::KV;
use std::time::Duration;

/// How a route groups alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `group_by: ['...']`: every label.
    All,
    Labels(Vec<String>),
}

/// A resolved route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Alertmanager's route key (`{}/{severity="critical"}`), with `/N` added when siblings
    /// share the same matchers, so it is unique in the tree.
    pub id: String,
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait_ms: i64,
    pub group_interval_ms: i64,
    pub repeat_interval_ms: i64,
    pub matchers: Vec<Matcher>,
    pub continue_: bool,
    pub routes: Vec<Route>,
}

/// The root's settings where the config leaves them out (Alertmanager's defaults).
fn root_defaults() -> Route {
    Route {
        id: "{}".into(),
        receiver: String::new(),
        group_by: GroupBy::Labels(Vec::new()),
        group_wait_ms: 30_000,
        group_interval_ms: 300_000,
        repeat_interval_ms: 4 * 3_600_000,
        matchers: Vec::new(),
        continue_: false,
        routes: Vec::new(),
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl Route {
    /// Resolves the tree rooted at `cfg` (already validated).
    pub fn build(cfg: &RouteConfig) -> Route {
        inherit(cfg, &root_defaults(), "{}".into())
    }

    /// The routes an alert with `labels` goes to (empty when even the root does not match).
    pub fn matching(&self, labels: &KV) -> Vec<&Route> {
        if !matches_all(&self.matchers, labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for child in &self.routes {
            let found = child.matching(labels);
            let matched = !found.is_empty();
            all.extend(found);
            if matched && !child.continue_ {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// The labels `labels` is grouped by on this route.
    pub fn group_labels(&self, labels: &KV) -> KV {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names.iter().filter_map(|n| labels.get_key_value(n)).map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    /// Alertmanager's group key: `{route key}:{group labels}`.
    pub fn group_key(&self, group_labels: &KV) -> String {
        format!("{}:{}", self.id, format_labels(group_labels))
    }

    /// Every route of the tree, depth first.
    pub fn walk(&self) -> Vec<&Route> {
        let mut out = vec![self];
        for c in &self.routes {
            out.extend(c.walk());
        }
        out
    }
}

/// `{a="b", c="d"}`, as Alertmanager prints a label set.
pub fn format_labels(labels: &KV) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
    format!("{{{}}}", parts.join(", "))
}

/// Matchers in Alertmanager's order (by name, then value, equality before regex), which its
/// route keys show.
fn sorted(matchers: &[Matcher]) -> Vec<Matcher> {
    let mut out = matchers.to_vec();
    out.sort_by(|a, b| (&a.name, &a.value, a.is_regex()).cmp(&(&b.name, &b.value, b.is_regex())));
    out
}

/// `cfg` with unset fields taken from `parent`, and its children resolved likewise.
fn inherit(cfg: &RouteConfig, parent: &Route, id: String) -> Route {
    let group_by = match &cfg.group_by {
        Some(g) if g.iter().any(|l| l == "...") => GroupBy::All,
        Some(g) => GroupBy::Labels(g.clone()),
        None => parent.group_by.clone(),
    };
    let mut route = Route {
        id,
        receiver: cfg.receiver.clone().unwrap_or_else(|| parent.receiver.clone()),
        group_by,
        group_wait_ms: cfg.group_wait.map(|d| ms(d.0)).unwrap_or(parent.group_wait_ms),
        group_interval_ms: cfg.group_interval.map(|d| ms(d.0)).unwrap_or(parent.group_interval_ms),
        repeat_interval_ms: cfg.repeat_interval.map(|d| ms(d.0)).unwrap_or(parent.repeat_interval_ms),
        matchers: sorted(&cfg.matchers),
        continue_: cfg.continue_,
        routes: Vec::new(),
    };
    let keys: Vec<String> = cfg.routes.iter().map(|c| format_list(&sorted(&c.matchers))).collect();
    for (i, c) in cfg.routes.iter().enumerate() {
        let mut id = format!("{}/{}", route.id, keys[i]);
        if keys.iter().filter(|k| **k == keys[i]).count() > 1 {
            id = format!("{id}/{i}");
        }
        let child = inherit(c, &route, id);
        route.routes.push(child);
    }
    route
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::NotifyConfig;

    fn tree(yaml: &str) -> Route {
        let c: NotifyConfig = serde_yaml_ng::from_str(yaml).unwrap();
        Route::build(&c.route)
    }

    fn labels(pairs: &[(&str, &str)]) -> KV {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn receivers(r: &Route, l: &KV) -> Vec<String> {
        r.matching(l).iter().map(|r| r.receiver.clone()).collect()
    }

    const TREE: &str = r#"
route:
  receiver: root
  group_by: [alertname]
  repeat_interval: 1h
  routes:
  - matchers: ['team="db"']
    receiver: db
    group_wait: 10s
    routes:
    - matchers: ['severity="critical"']
      receiver: db-pager
  - matchers: ['team="db"']
    receiver: db-audit
  - matchers: ['severity=~"critical|warning"']
    receiver: ops
    continue: true
  - matchers: ['severity="critical"']
    receiver: pager
"#;

    #[test]
    fn first_match_wins_unless_continue() {
        let r = tree(TREE);
        assert_eq!(receivers(&r, &labels(&[("team", "db")])), ["db"]);
        assert_eq!(receivers(&r, &labels(&[("team", "db"), ("severity", "critical")])), ["db-pager"]);
        assert_eq!(receivers(&r, &labels(&[("severity", "critical")])), ["ops", "pager"]);
        assert_eq!(receivers(&r, &labels(&[("severity", "warning")])), ["ops"]);
        assert_eq!(receivers(&r, &labels(&[("severity", "info")])), ["root"]);
    }

    #[test]
    fn children_inherit_unset_fields() {
        let r = tree(TREE);
        let pager = &r.routes[0].routes[0];
        assert_eq!(pager.group_wait_ms, 10_000);
        assert_eq!(pager.repeat_interval_ms, 3_600_000);
        assert_eq!(pager.group_interval_ms, 300_000);
        assert_eq!(pager.group_by, GroupBy::Labels(vec!["alertname".into()]));
    }

    #[test]
    fn ids_follow_alertmanager_keys_and_stay_unique() {
        let r = tree(TREE);
        assert_eq!(r.routes[0].routes[0].id, r#"{}/{team="db"}/0/{severity="critical"}"#);
        assert_eq!(r.routes[1].id, r#"{}/{team="db"}/1"#);
        assert_eq!(r.routes[2].id, r#"{}/{severity=~"critical|warning"}"#);
        let g = r.routes[2].group_labels(&labels(&[("alertname", "A"), ("x", "y")]));
        assert_eq!(r.routes[2].group_key(&g), r#"{}/{severity=~"critical|warning"}:{alertname="A"}"#);
    }

    #[test]
    fn group_by_all_takes_every_label() {
        let r = tree("route: {receiver: a, group_by: ['...']}");
        let l = labels(&[("a", "1"), ("b", "2")]);
        assert_eq!(r.group_labels(&l), l);
        assert_eq!(tree("route: {receiver: a}").group_labels(&l), KV::new());
    }
}
