//! Inhibition: a firing alert matching a rule's `source_matchers` mutes the alerts matching its
//! `target_matchers` that carry the same values for the `equal` labels, as Alertmanager's
//! inhibitor does (an alert never inhibits itself, and when both alerts match both sides of a
//! rule neither mutes the other).

use super::config::InhibitRule;
use super::matcher::matches_all;
use super::message::KV;
use rustc_hash::FxHashMap as HashMap;

/// An alert as the inhibitor sees it.
pub struct Candidate<'a> {
    pub fingerprint: &'a str,
    pub labels: &'a KV,
    pub firing: bool,
}

pub struct Inhibitor {
    rules: Vec<InhibitRule>,
}

/// The source alerts of one rule, by their `equal` label values.
type Sources<'a> = HashMap<Vec<&'a str>, Vec<(&'a str, bool)>>;

impl Inhibitor {
    pub fn new(rules: &[InhibitRule]) -> Inhibitor {
        Inhibitor { rules: rules.to_vec() }
    }

    /// For each candidate, the fingerprint of a firing alert inhibiting it (resolved
    /// candidates are never inhibited).
    pub fn inhibited_by(&self, alerts: &[Candidate]) -> Vec<Option<String>> {
        let mut out: Vec<Option<String>> = vec![None; alerts.len()];
        for rule in &self.rules {
            let sources = sources(rule, alerts);
            if sources.is_empty() {
                continue;
            }
            for (slot, a) in out.iter_mut().zip(alerts) {
                if slot.is_none() && a.firing && matches_all(&rule.target_matchers, a.labels) {
                    *slot = source_for(rule, &sources, a).map(str::to_string);
                }
            }
        }
        out
    }
}

fn equal_values<'a>(rule: &InhibitRule, labels: &'a KV) -> Vec<&'a str> {
    rule.equal.iter().map(|n| labels.get(n).map(String::as_str).unwrap_or("")).collect()
}

fn sources<'a>(rule: &InhibitRule, alerts: &[Candidate<'a>]) -> Sources<'a> {
    let mut map: Sources = HashMap::default();
    for a in alerts.iter().filter(|a| a.firing && matches_all(&rule.source_matchers, a.labels)) {
        let also_target = matches_all(&rule.target_matchers, a.labels);
        map.entry(equal_values(rule, a.labels)).or_default().push((a.fingerprint, also_target));
    }
    map
}

fn source_for<'a>(rule: &InhibitRule, sources: &Sources<'a>, target: &Candidate) -> Option<&'a str> {
    let two_sided = matches_all(&rule.source_matchers, target.labels);
    let found = sources.get(&equal_values(rule, target.labels))?;
    found.iter().find(|(fp, also_target)| *fp != target.fingerprint && !(two_sided && *also_target)).map(|(fp, _)| *fp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::default_inhibit_rules;
    use crate::notify::matcher::parse_matchers;

    fn labels(pairs: &[(&str, &str)]) -> KV {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn run(rules: &[InhibitRule], alerts: &[(&str, KV, bool)]) -> Vec<Option<String>> {
        let c: Vec<Candidate> = alerts.iter().map(|(fp, l, f)| Candidate { fingerprint: fp, labels: l, firing: *f }).collect();
        Inhibitor::new(rules).inhibited_by(&c)
    }

    fn alert(sev: &str, instance: &str) -> KV {
        labels(&[("alertname", "Disk"), ("severity", sev), ("instance", instance)])
    }

    #[test]
    fn critical_mutes_warning_of_same_alert_and_instance_only() {
        let rules = default_inhibit_rules();
        let got = run(
            &rules,
            &[("c1", alert("critical", "a")), ("w1", alert("warning", "a")), ("w2", alert("warning", "b"))].map(|(f, l)| (f, l, true)),
        );
        assert_eq!(got, [None, Some("c1".to_string()), None]);
    }

    #[test]
    fn resolved_sources_do_not_mute_and_warning_does_not_mute_critical() {
        let rules = default_inhibit_rules();
        let got = run(&rules, &[("c1", alert("critical", "a"), false), ("w1", alert("warning", "a"), true)]);
        assert_eq!(got, [None, None]);
        let got = run(&rules, &[("w1", alert("warning", "a"), true), ("c1", alert("critical", "a"), true)]);
        assert_eq!(got, [Some("c1".to_string()), None]);
    }

    #[test]
    fn an_alert_does_not_inhibit_itself_nor_a_two_sided_peer() {
        let rule = InhibitRule {
            source_matchers: parse_matchers(r#"alertname="Down""#).unwrap(),
            target_matchers: parse_matchers(r#"alertname=~"Down|Slow""#).unwrap(),
            equal: vec!["dc".into()],
        };
        let down = |i: &str| labels(&[("alertname", "Down"), ("dc", "x"), ("i", i)]);
        let slow = labels(&[("alertname", "Slow"), ("dc", "x")]);
        let got = run(&[rule], &[("d1", down("1"), true), ("d2", down("2"), true), ("s", slow, true)]);
        assert_eq!(got, [None, None, Some("d1".to_string())]);
    }
}
