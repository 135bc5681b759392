//! Prometheus's alert state machine for one alerting rule, as a pure step function of the
//! evaluation time and the rule's query result: inactive → pending → firing after `for`,
//! `keep_firing_for`, resolved alerts kept (and re-sent) for 15 minutes, and the `ALERTS` /
//! `ALERTS_FOR_STATE` series. Templating of labels and annotations happens before this layer.

use fleetwatch_promql::Labels;
use std::collections::HashMap;

/// How long a resolved alert is kept, so notifiers can re-send the resolution.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Inactive,
    Pending,
    Firing,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
        }
    }
}

/// One alert of a rule: a label set the rule's expression produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub state: State,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub keep_firing_since: Option<i64>,
}

/// What one evaluation produced for an alert: its labels (rule labels and `alertname` already
/// added), annotations and the sample value.
#[derive(Debug, Clone)]
pub struct Active {
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub value: f64,
}

/// The alerts of one alerting rule between evaluations.
#[derive(Debug, Clone, Default)]
pub struct RuleState {
    alerts: HashMap<Labels, Alert>,
}

impl RuleState {
    /// Advances the state to evaluation time `t` given this evaluation's results.
    pub fn step(&mut self, t: i64, results: Vec<Active>, hold_ms: i64, keep_firing_ms: i64) {
        let mut seen = std::collections::HashSet::with_capacity(results.len());
        for r in results {
            seen.insert(r.labels.clone());
            match self.alerts.get_mut(&r.labels) {
                Some(a) if a.state != State::Inactive => {
                    a.value = r.value;
                    a.annotations = r.annotations;
                    a.keep_firing_since = None;
                }
                _ => {
                    let alert = Alert {
                        labels: r.labels.clone(),
                        annotations: r.annotations,
                        state: State::Pending,
                        value: r.value,
                        active_at: t,
                        fired_at: None,
                        resolved_at: None,
                        keep_firing_since: None,
                    };
                    self.alerts.insert(r.labels, alert);
                }
            }
        }
        self.alerts.retain(|labels, a| {
            if seen.contains(labels) {
                return true;
            }
            match a.state {
                State::Pending => false,
                State::Firing => {
                    let since = *a.keep_firing_since.get_or_insert(t);
                    if keep_firing_ms > 0 && t - since < keep_firing_ms {
                        return true;
                    }
                    a.state = State::Inactive;
                    a.resolved_at = Some(t);
                    true
                }
                State::Inactive => a.resolved_at.is_some_and(|r| t - r <= RESOLVED_RETENTION_MS),
            }
        });
        for a in self.alerts.values_mut() {
            if a.state == State::Pending && t - a.active_at >= hold_ms {
                a.state = State::Firing;
                a.fired_at = Some(t);
            }
        }
    }

    /// Restores `for` progress after a restart as Prometheus does, for the alerts this
    /// evaluation (at `t`) made pending: `saved(labels)` gives an alert's saved `(active_at, last_seen)`.
    /// Nothing is restored for rules whose `for` is shorter than the grace period, nor for alerts
    /// last seen longer than `tolerance_ms` ago. An alert whose remaining `for` is shorter than
    /// the grace period gets the grace period; otherwise the outage does not count towards `for`.
    pub fn restore(&mut self, t: i64, hold_ms: i64, tolerance_ms: i64, grace_ms: i64, saved: &dyn Fn(&Labels) -> Option<(i64, i64)>) {
        if hold_ms < grace_ms {
            return;
        }
        for a in self.alerts.values_mut() {
            if a.state != State::Pending || a.active_at != t {
                continue;
            }
            let Some((active_at, down_at)) = saved(&a.labels) else { continue };
            if t - down_at > tolerance_ms || active_at > down_at {
                continue;
            }
            let remaining = hold_ms - (down_at - active_at);
            a.active_at = if remaining <= 0 {
                active_at
            } else if remaining < grace_ms {
                t + grace_ms - hold_ms
            } else {
                active_at + (t - down_at)
            };
        }
    }

    /// Current alerts, sorted by labels.
    pub fn alerts(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.alerts.values().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// The `ALERTS{alertstate}` and `ALERTS_FOR_STATE` samples of pending and firing alerts.
    pub fn series(&self) -> Vec<(Labels, f64)> {
        let mut out = Vec::new();
        for a in self.alerts() {
            if a.state == State::Inactive {
                continue;
            }
            let mut b = a.labels.builder();
            b.set("__name__", "ALERTS").set("alertstate", a.state.name());
            out.push((b.build(), 1.0));
            let mut b = a.labels.builder();
            b.set("__name__", "ALERTS_FOR_STATE");
            out.push((b.build(), (a.active_at / 1000) as f64));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(instance: &str, value: f64) -> Active {
        Active { labels: Labels::from_pairs([("alertname", "A"), ("instance", instance)]), annotations: vec![], value }
    }

    fn states(s: &RuleState) -> Vec<(String, &'static str)> {
        s.alerts().iter().map(|a| (a.labels.get("instance").unwrap_or("").to_string(), a.state.name())).collect()
    }

    const MIN: i64 = 60_000;

    #[test]
    fn pending_then_firing_after_for() {
        let mut s = RuleState::default();
        s.step(0, vec![active("a", 1.0)], 5 * MIN, 0);
        assert_eq!(states(&s), vec![("a".into(), "pending")]);
        s.step(4 * MIN, vec![active("a", 1.0)], 5 * MIN, 0);
        assert_eq!(states(&s), vec![("a".into(), "pending")]);
        s.step(5 * MIN, vec![active("a", 2.0)], 5 * MIN, 0);
        assert_eq!(states(&s), vec![("a".into(), "firing")]);
        assert_eq!(s.alerts()[0].value, 2.0);
        assert_eq!(s.alerts()[0].fired_at, Some(5 * MIN));
    }

    #[test]
    fn without_for_it_fires_at_once_and_pending_ones_vanish() {
        let mut s = RuleState::default();
        s.step(0, vec![active("a", 1.0)], 0, 0);
        assert_eq!(states(&s), vec![("a".into(), "firing")]);
        let mut s = RuleState::default();
        s.step(0, vec![active("a", 1.0)], MIN, 0);
        s.step(MIN / 2, vec![], MIN, 0);
        assert!(s.alerts().is_empty(), "a pending alert that clears is forgotten");
    }

    #[test]
    fn resolved_alerts_are_kept_for_fifteen_minutes() {
        let mut s = RuleState::default();
        s.step(0, vec![active("a", 1.0)], 0, 0);
        s.step(MIN, vec![], 0, 0);
        assert_eq!(states(&s), vec![("a".into(), "inactive")]);
        assert_eq!(s.alerts()[0].resolved_at, Some(MIN));
        assert!(s.series().is_empty());
        s.step(MIN + RESOLVED_RETENTION_MS, vec![], 0, 0);
        assert_eq!(s.alerts().len(), 1);
        s.step(2 * MIN + RESOLVED_RETENTION_MS, vec![], 0, 0);
        assert!(s.alerts().is_empty());
    }

    #[test]
    fn keep_firing_for_holds_a_cleared_alert() {
        let mut s = RuleState::default();
        s.step(0, vec![active("a", 1.0)], 0, 10 * MIN);
        s.step(MIN, vec![], 0, 10 * MIN);
        assert_eq!(states(&s), vec![("a".into(), "firing")]);
        s.step(10 * MIN, vec![], 0, 10 * MIN);
        assert_eq!(states(&s), vec![("a".into(), "firing")]);
        s.step(11 * MIN, vec![], 0, 10 * MIN);
        assert_eq!(states(&s), vec![("a".into(), "inactive")]);
    }

    #[test]
    fn a_flapping_series_starts_over_and_labels_are_separate_alerts() {
        let mut s = RuleState::default();
        s.step(0, vec![active("a", 1.0)], 2 * MIN, 0);
        s.step(MIN, vec![], 2 * MIN, 0);
        s.step(2 * MIN, vec![active("a", 1.0), active("b", 1.0)], 2 * MIN, 0);
        s.step(3 * MIN, vec![active("a", 1.0), active("b", 1.0)], 2 * MIN, 0);
        assert_eq!(states(&s), vec![("a".into(), "pending"), ("b".into(), "pending")]);
        assert_eq!(s.alerts()[0].active_at, 2 * MIN, "the flap reset the pending clock");
        s.step(4 * MIN, vec![active("b", 1.0)], 2 * MIN, 0);
        assert_eq!(states(&s), vec![("b".into(), "firing")]);
    }

    #[test]
    fn for_progress_is_restored_as_prometheus_does() {
        let saved = |active_at: i64, down_at: i64| move |_: &Labels| Some((active_at, down_at));
        let restart = |hold, saved: &dyn Fn(&Labels) -> Option<(i64, i64)>| {
            let mut s = RuleState::default();
            s.step(100 * MIN, vec![active("a", 1.0)], hold, 0);
            s.restore(100 * MIN, hold, 60 * MIN, 10 * MIN, saved);
            s.alerts()[0].active_at
        };
        // Pending for 20 of 30 minutes, down for 5: 10 minutes left, not less than the grace period.
        assert_eq!(restart(30 * MIN, &saved(75 * MIN, 95 * MIN)), 80 * MIN);
        // Pending for 25 of 30 minutes: 5 left, so the grace period of 10 applies.
        assert_eq!(restart(30 * MIN, &saved(70 * MIN, 95 * MIN)), 80 * MIN);
        // It was firing: the old active time stands and it fires again at the next evaluation.
        assert_eq!(restart(30 * MIN, &saved(10 * MIN, 95 * MIN)), 10 * MIN);
        // Outage longer than the tolerance, or a `for` below the grace period: no restore.
        assert_eq!(restart(30 * MIN, &saved(10 * MIN, 30 * MIN)), 100 * MIN);
        assert_eq!(restart(5 * MIN, &saved(90 * MIN, 95 * MIN)), 100 * MIN);
    }

    #[test]
    fn alerts_series_as_prometheus_writes_them() {
        let mut s = RuleState::default();
        s.step(120_000, vec![active("a", 1.0)], MIN, 0);
        let series: Vec<String> = s.series().iter().map(|(l, v)| format!("{l} {v}")).collect();
        assert_eq!(
            series,
            vec![
                "ALERTS{alertname=\"A\", alertstate=\"pending\", instance=\"a\"} 1".to_string(),
                "ALERTS_FOR_STATE{alertname=\"A\", instance=\"a\"} 120".to_string(),
            ]
        );
    }
}
