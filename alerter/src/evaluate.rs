//! Evaluating rule groups, as Prometheus's rule manager does: each rule of a group in order at the
//! group's evaluation time, recording rules' results written back (so later rules see them), and
//! alerting rules' results templated and stepped through the alert state machine. It is a pure
//! function of (time, storage): the daemon and `test rules` drive it with their own clocks.

use crate::alert_state::{Active, Alert, RuleState};
use crate::rules::{LoadedFile, Rule};
use crate::template::{render_or_error, Template, TemplateData};
use fleetwatch_promql::{Engine, Expr, Labels, Storage, Value};
use std::collections::{BTreeMap, HashSet};

/// Somewhere recording-rule and `ALERTS` samples go.
pub trait Sink {
    fn write(&mut self, labels: Labels, t: i64, v: f64);
}

enum Kind {
    Recording,
    Alerting { hold_ms: i64, keep_firing_ms: i64, annotations: Vec<(String, Template)>, state: RuleState },
}

pub struct RuleEval {
    pub name: String,
    pub expr: Expr,
    labels: Vec<(String, Template)>,
    kind: Kind,
    /// The last evaluation's error, for the API.
    pub last_error: Option<String>,
    /// Series written by the last evaluation: those missing from the next one get a staleness
    /// marker, as Prometheus's rule groups do.
    previous: HashSet<Labels>,
}

pub struct GroupEval {
    pub name: String,
    pub file: String,
    pub interval_ms: i64,
    pub limit: u64,
    pub rules: Vec<RuleEval>,
}

/// Compiles the groups of loaded rule files; template errors are load errors.
pub fn compile(files: &[LoadedFile], default_interval_ms: i64) -> Result<Vec<GroupEval>, String> {
    let mut out = Vec::new();
    for file in files {
        for (g, exprs) in file.file.groups.iter().zip(&file.exprs) {
            let mut rules = Vec::new();
            for (r, expr) in g.rules.iter().zip(exprs) {
                let at = |e: String| format!("{}: group {:?}, rule {:?}: {e}", file.origin, g.name, r.name());
                rules.push(compile_rule(r, expr.clone(), &g.labels).map_err(at)?);
            }
            let interval_ms = g.interval.map(|d| d.0.as_millis() as i64).unwrap_or(default_interval_ms);
            out.push(GroupEval { name: g.name.clone(), file: file.origin.clone(), interval_ms, limit: g.limit, rules });
        }
    }
    Ok(out)
}

fn compile_rule(r: &Rule, expr: Expr, group_labels: &BTreeMap<String, String>) -> Result<RuleEval, String> {
    let mut all = group_labels.clone();
    all.extend(r.labels.clone());
    // Prometheus names an alert's templates `__alert_<name>`; error messages then match its own.
    let template_name = format!("__alert_{}", r.name());
    let templates = |map: &BTreeMap<String, String>| -> Result<Vec<(String, Template)>, String> {
        map.iter().map(|(k, v)| Template::parse(&template_name, v).map(|t| (k.clone(), t)).map_err(|e| format!("{k}: {e}"))).collect()
    };
    let kind = match &r.alert {
        Some(_) => Kind::Alerting {
            hold_ms: r.for_.map(|d| d.0.as_millis() as i64).unwrap_or(0),
            keep_firing_ms: r.keep_firing_for.map(|d| d.0.as_millis() as i64).unwrap_or(0),
            annotations: templates(&r.annotations)?,
            state: RuleState::default(),
        },
        None => Kind::Recording,
    };
    Ok(RuleEval { name: r.name().to_string(), expr, labels: templates(&all)?, kind, last_error: None, previous: HashSet::new() })
}

/// What the templates can see besides the sample.
pub struct Context<'a> {
    pub engine: &'a Engine,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
}

impl GroupEval {
    /// Evaluates every rule at `t`: reads through `storage`, writes through `sink` (recording
    /// results and `ALERTS`), and returns nothing but the updated state.
    pub fn eval(&mut self, t: i64, storage: &mut dyn StorageSink, ctx: &Context) {
        for rule in &mut self.rules {
            let result = ctx.engine.instant(storage.as_storage(), &rule.expr, t).map_err(|e| e.to_string());
            let vector = match result {
                Ok(Value::Vector(v)) => v,
                Ok(Value::Scalar(v)) => vec![(Labels::empty(), v)],
                Ok(_) => Vec::new(),
                Err(e) => {
                    rule.last_error = Some(e);
                    continue;
                }
            };
            let written = match rule.produce(t, vector, ctx, self.limit) {
                Ok(w) => w,
                Err(e) => {
                    rule.last_error = Some(e);
                    continue;
                }
            };
            rule.last_error = None;
            for (labels, v) in &written {
                storage.write(labels.clone(), t, *v);
            }
            let now: HashSet<Labels> = written.into_iter().map(|(l, _)| l).collect();
            for gone in rule.previous.difference(&now) {
                storage.write(gone.clone(), t, fleetwatch_promql::stale_nan());
            }
            rule.previous = now;
        }
    }

    /// Takes over the alert state of rules that are the same in `old` (name and expression), as
    /// Prometheus does on a reload, so a reload neither resets `for` nor re-fires alerts.
    pub fn adopt_state(&mut self, old: &mut GroupEval) {
        for rule in &mut self.rules {
            let Kind::Alerting { state, .. } = &mut rule.kind else { continue };
            let Some(same) = old.rules.iter_mut().find(|o| o.name == rule.name && o.expr.to_string() == rule.expr.to_string()) else {
                continue;
            };
            if let Kind::Alerting { state: old_state, .. } = &mut same.kind {
                *state = std::mem::take(old_state);
                rule.previous = std::mem::take(&mut same.previous);
            }
        }
    }

    /// Restores `for` progress from the saved alerts of this group (see `RuleState::restore`);
    /// called once, after the first evaluation following a start.
    pub fn restore_for_state(&mut self, t: i64, saved: &[crate::notify::db::AlertRow], tolerance_ms: i64, grace_ms: i64) {
        for rule in &mut self.rules {
            let Kind::Alerting { hold_ms, state, .. } = &mut rule.kind else { continue };
            let mine: std::collections::HashMap<&str, (i64, i64)> =
                saved.iter().filter(|r| r.rule == rule.name).map(|r| (r.labels.as_str(), (r.active_at, r.last_seen))).collect();
            if mine.is_empty() {
                continue;
            }
            state.restore(t, *hold_ms, tolerance_ms, grace_ms, &|l: &Labels| mine.get(l.to_string().as_str()).copied());
        }
    }

    /// The pending and firing alerts of this group as saved for a later `for` restore.
    pub fn for_state_rows(&self, t: i64) -> Vec<crate::notify::db::AlertRow> {
        self.alerts()
            .into_iter()
            .filter(|(_, a)| a.state != crate::alert_state::State::Inactive)
            .map(|(rule, a)| crate::notify::db::AlertRow {
                rule: rule.to_string(),
                labels: a.labels.to_string(),
                active_at: a.active_at,
                fired_at: a.fired_at,
                last_seen: t,
            })
            .collect()
    }

    /// The current alerts of every alerting rule, with the rule's name.
    pub fn alerts(&self) -> Vec<(&str, &Alert)> {
        let mut out = Vec::new();
        for r in &self.rules {
            if let Kind::Alerting { state, .. } = &r.kind {
                out.extend(state.alerts().into_iter().map(|a| (r.name.as_str(), a)));
            }
        }
        out
    }
}

impl RuleEval {
    /// The series this evaluation writes: a recording rule's results, or an alerting rule's
    /// `ALERTS`/`ALERTS_FOR_STATE` after stepping its state. Errors as Prometheus raises them:
    /// label sets that collide once the rule's labels are applied, and the group's `limit`.
    fn produce(&mut self, t: i64, vector: Vec<(Labels, f64)>, ctx: &Context, limit: u64) -> Result<Vec<(Labels, f64)>, String> {
        match &mut self.kind {
            Kind::Recording => {
                let out: Vec<(Labels, f64)> = vector
                    .into_iter()
                    .map(|(labels, v)| (with_labels(&labels, &self.labels, ctx, v, &[("__name__", self.name.as_str())]), v))
                    .collect();
                unique(out.iter().map(|(l, _)| l), "rule")?;
                if limit > 0 && out.len() as u64 > limit {
                    return Err(format!("exceeded limit of {limit} with {} series", out.len()));
                }
                Ok(out)
            }
            Kind::Alerting { hold_ms, keep_firing_ms, annotations, state } => {
                let active: Vec<Active> = vector
                    .iter()
                    .map(|(labels, v)| {
                        let data = data_for(labels, ctx, *v);
                        Active {
                            labels: with_labels(labels, &self.labels, ctx, *v, &[("alertname", self.name.as_str())]),
                            annotations: annotations.iter().map(|(k, tpl)| (k.clone(), render_or_error(tpl, &data))).collect(),
                            value: *v,
                        }
                    })
                    .collect();
                unique(active.iter().map(|a| &a.labels), "alert")?;
                state.step(t, active, *hold_ms, *keep_firing_ms);
                let live = state.alerts().iter().filter(|a| a.state != crate::alert_state::State::Inactive).count();
                if limit > 0 && live as u64 > limit {
                    *state = RuleState::default();
                    return Err(format!("exceeded limit of {limit} with {live} alerts"));
                }
                Ok(state.series())
            }
        }
    }
}

fn unique<'a>(labels: impl Iterator<Item = &'a Labels>, what: &str) -> Result<(), String> {
    let mut seen = HashSet::new();
    for l in labels {
        if !seen.insert(l) {
            return Err(format!("vector contains metrics with the same labelset after applying {what} labels"));
        }
    }
    Ok(())
}

/// Storage the evaluator reads from and writes to.
pub trait StorageSink: Sink {
    fn as_storage(&self) -> &dyn Storage;
}

fn data_for<'a>(labels: &Labels, ctx: &'a Context, value: f64) -> TemplateData<'a> {
    let pairs: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    TemplateData { labels: pairs, external_labels: ctx.external_labels, external_url: ctx.external_url, value }
}

/// `sample` (as the templates see it) without its name, plus the rule's labels and `fixed`.
fn with_labels(sample: &Labels, rule_labels: &[(String, Template)], ctx: &Context, value: f64, fixed: &[(&str, &str)]) -> Labels {
    let data = data_for(sample, ctx, value);
    let mut b = sample.without_name().builder();
    for (k, tpl) in rule_labels {
        let v = render_or_error(tpl, &data);
        if v.is_empty() {
            b.del(k);
        } else {
            b.set(k.as_str(), v.as_str());
        }
    }
    for (k, v) in fixed {
        b.set(*k, *v);
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwatch_promql::{MemStorage, Sample};

    struct Mem(MemStorage);

    impl Sink for Mem {
        fn write(&mut self, labels: Labels, t: i64, v: f64) {
            self.0.add(labels, Sample { t, v });
        }
    }

    impl StorageSink for Mem {
        fn as_storage(&self) -> &dyn Storage {
            &self.0
        }
    }

    fn groups(yaml: &str) -> Vec<GroupEval> {
        compile(&[crate::rules::load_text(yaml, "t.yml").unwrap()], 60_000).unwrap()
    }

    fn series(m: &Mem, name: &str) -> Vec<String> {
        let mut out: Vec<String> =
            m.0.iter()
                .filter(|(l, _)| l.get("__name__") == Some(name))
                .map(|(l, s)| format!("{l} {}", s.last().map(|x| x.v).unwrap_or(0.0)))
                .collect();
        out.sort();
        out
    }

    const RULES: &str = r#"groups:
  - name: g
    labels: {team: infra}
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Down
        expr: job:up:sum == 0
        for: 2m
        labels: {severity: critical, summary_label: "{{ $labels.job }} down"}
        annotations:
          summary: "{{ $labels.job }} has {{ $value }} targets up"
"#;

    #[test]
    fn recording_results_feed_later_rules_and_alerts_go_pending_then_firing() {
        let mut g = groups(RULES);
        let mut m = Mem(MemStorage::new());
        let up = Labels::from_pairs([("__name__", "up"), ("job", "node"), ("instance", "a")]);
        let ctx = Context { engine: &Engine::default(), external_labels: &BTreeMap::new(), external_url: "" };
        for step in 0..4 {
            let t = step * 60_000;
            m.0.add(up.clone(), Sample { t, v: 0.0 });
            g[0].eval(t, &mut m, &ctx);
        }
        assert_eq!(series(&m, "job:up:sum"), vec!["job:up:sum{job=\"node\", team=\"infra\"} 0".to_string()]);
        let alerts = g[0].alerts();
        assert_eq!(alerts.len(), 1);
        let (name, a) = alerts[0];
        assert_eq!(name, "Down");
        assert_eq!(a.state.name(), "firing");
        assert_eq!(a.active_at, 0);
        assert_eq!(
            a.labels.to_string(),
            "{alertname=\"Down\", job=\"node\", severity=\"critical\", summary_label=\"node down\", team=\"infra\"}"
        );
        assert_eq!(a.annotations, vec![("summary".to_string(), "node has 0 targets up".to_string())]);
        let live: Vec<String> = series(&m, "ALERTS").into_iter().filter(|s| !s.ends_with("NaN")).collect();
        assert_eq!(live.len(), 1, "the pending series went stale when the alert fired: {:?}", series(&m, "ALERTS"));
        assert!(live[0].contains("alertstate=\"firing\""));
    }

    #[test]
    fn group_limit_and_label_collisions_are_rule_errors() {
        let yaml = "groups:\n  - name: g\n    limit: 1\n    rules:\n      - record: r\n        expr: a\n      - alert: A\n        expr: a\n      - record: s\n        expr: a\n        labels: {x: same}\n";
        let mut g = groups(&yaml.replace("limit: 1", "limit: 0"));
        let mut m = Mem(MemStorage::new());
        for x in ["1", "2"] {
            m.0.add(Labels::from_pairs([("__name__", "a"), ("x", x)]), Sample { t: 0, v: 1.0 });
        }
        let ctx = Context { engine: &Engine::default(), external_labels: &BTreeMap::new(), external_url: "" };
        g[0].eval(0, &mut m, &ctx);
        let errors: Vec<Option<String>> = g[0].rules.iter().map(|r| r.last_error.clone()).collect();
        assert_eq!(errors[..2], [None, None]);
        assert_eq!(errors[2].as_deref(), Some("vector contains metrics with the same labelset after applying rule labels"));
        let mut g = groups(yaml);
        g[0].eval(0, &mut m, &ctx);
        assert_eq!(g[0].rules[0].last_error.as_deref(), Some("exceeded limit of 1 with 2 series"));
        assert_eq!(g[0].rules[1].last_error.as_deref(), Some("exceeded limit of 1 with 2 alerts"));
        assert!(g[0].alerts().is_empty());
    }

    #[test]
    fn template_errors_are_load_errors() {
        let bad = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotations: {x: '{{ query \"up\" }}'}\n";
        let e = compile(&[crate::rules::load_text(bad, "t.yml").unwrap()], 60_000).err().unwrap();
        assert!(e.contains("query") && e.contains("rule \"A\""), "{e}");
    }

    #[test]
    fn evaluation_errors_are_kept_per_rule() {
        let mut g = groups("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: a + on(x) b\n");
        let mut m = Mem(MemStorage::new());
        for (n, x) in [("a", "1"), ("b", "1")] {
            for y in ["1", "2"] {
                m.0.add(Labels::from_pairs([("__name__", n), ("x", x), ("y", y)]), Sample { t: 0, v: 1.0 });
            }
        }
        let ctx = Context { engine: &Engine::default(), external_labels: &BTreeMap::new(), external_url: "" };
        g[0].eval(0, &mut m, &ctx);
        assert!(g[0].rules[0].last_error.as_deref().unwrap_or("").contains("many-to-many"), "{:?}", g[0].rules[0].last_error);
    }
}
