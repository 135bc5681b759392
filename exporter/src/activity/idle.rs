//! The idle policy as a pure state machine stepped by the collector with the time and what it
//! observed, so every transition is testable with a fake clock: when the machine counts as idle,
//! for how long, and when the warning and the idle action are due (once per idle period, never
//! within `after` of start-up, and reset by any activity).

use std::time::Duration;

/// The policy (`activity.idle` in the config).
#[derive(Debug, Clone)]
pub struct Policy {
    /// CPU busy ratio below which the CPU counts as idle.
    pub cpu_busy_below: f64,
    /// How long every idle condition must hold before the action.
    pub after: Duration,
    /// Whether an SSH session keeps the machine active.
    pub count_ssh: bool,
    /// How long before the action the warning is due (zero: no warning).
    pub warn_before: Duration,
}

/// What the collector saw over the last interval.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub cpu_busy_ratio: f64,
    pub ssh_sessions: u32,
    /// A configured busy process used CPU.
    pub busy_process: bool,
    /// Files were modified under a root.
    pub file_changes: bool,
}

impl Observation {
    /// The reasons the machine is active, empty when idle.
    pub fn activity(&self, policy: &Policy) -> Vec<&'static str> {
        let mut why = Vec::new();
        if self.cpu_busy_ratio >= policy.cpu_busy_below {
            why.push("cpu");
        }
        if policy.count_ssh && self.ssh_sessions > 0 {
            why.push("ssh");
        }
        if self.busy_process {
            why.push("busy_process");
        }
        if self.file_changes {
            why.push("files");
        }
        why
    }
}

/// What the caller must do after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    /// Run `warn_command` (once per idle period).
    Warn,
    /// Run the idle action (once per idle period).
    Act,
}

#[derive(Debug, Clone)]
pub struct IdleState {
    started_at: f64,
    /// Unix seconds since which every idle condition has held; `None` while active.
    idle_since: Option<f64>,
    last_active: f64,
    warned: bool,
    acted: bool,
    pub actions_total: u64,
}

impl IdleState {
    /// Starts at `now` (Unix seconds) as active: idleness is measured from start-up at the earliest.
    pub fn new(now: f64) -> IdleState {
        IdleState { started_at: now, idle_since: None, last_active: now, warned: false, acted: false, actions_total: 0 }
    }

    /// Applies one observation at `now` and says what is due.
    pub fn step(&mut self, now: f64, seen: &Observation, policy: &Policy) -> Action {
        if !seen.activity(policy).is_empty() {
            self.idle_since = None;
            self.last_active = now;
            self.warned = false;
            self.acted = false;
            return Action::None;
        }
        let since = *self.idle_since.get_or_insert(self.last_active.max(self.started_at));
        let idle_for = now - since;
        let after = policy.after.as_secs_f64();
        let warn_at = after - policy.warn_before.as_secs_f64();
        let grace_over = now - self.started_at >= after;
        if !self.acted && grace_over && idle_for >= after {
            self.acted = true;
            self.warned = true;
            self.actions_total += 1;
            return Action::Act;
        }
        if !self.warned && !policy.warn_before.is_zero() && now - self.started_at >= warn_at && idle_for >= warn_at {
            self.warned = true;
            return Action::Warn;
        }
        Action::None
    }

    /// 1 when every idle condition holds now.
    pub fn idle(&self) -> bool {
        self.idle_since.is_some()
    }

    /// How long the idle conditions have held continuously, in seconds.
    pub fn idle_seconds(&self, now: f64) -> f64 {
        self.idle_since.map(|s| (now - s).max(0.0)).unwrap_or(0.0)
    }

    pub fn last_active(&self) -> f64 {
        self.last_active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy { cpu_busy_below: 0.10, after: Duration::from_secs(1800), count_ssh: true, warn_before: Duration::from_secs(300) }
    }

    fn quiet() -> Observation {
        Observation { cpu_busy_ratio: 0.01, ..Default::default() }
    }

    /// Steps every 60 s from `from` to `to` (inclusive) with `seen`, collecting non-None actions.
    fn run(s: &mut IdleState, from: u64, to: u64, seen: &Observation) -> Vec<(u64, Action)> {
        (from..=to).step_by(60).map(|t| (t, s.step(t as f64, seen, &policy()))).filter(|(_, a)| *a != Action::None).collect()
    }

    #[test]
    fn warns_then_acts_once_per_idle_period() {
        let mut s = IdleState::new(0.0);
        assert_eq!(run(&mut s, 60, 7200, &quiet()), [(1500, Action::Warn), (1800, Action::Act)]);
        assert!(s.idle());
        assert_eq!(s.idle_seconds(7200.0), 7200.0);
        assert_eq!(s.actions_total, 1);
    }

    #[test]
    fn each_kind_of_activity_resets() {
        let kinds = [
            Observation { cpu_busy_ratio: 0.5, ..Default::default() },
            Observation { ssh_sessions: 1, ..quiet() },
            Observation { busy_process: true, ..quiet() },
            Observation { file_changes: true, ..quiet() },
        ];
        for active in kinds {
            let mut s = IdleState::new(0.0);
            assert_eq!(run(&mut s, 60, 1740, &quiet()), [(1500, Action::Warn)]);
            assert_eq!(s.step(1750.0, &active, &policy()), Action::None, "{active:?}");
            assert!(!s.idle() && s.idle_seconds(1750.0) == 0.0);
            assert_eq!(s.last_active(), 1750.0);
            // A new idle period counts from the activity, and warns and acts again.
            assert_eq!(run(&mut s, 1810, 3600, &quiet()), [(3250, Action::Warn), (3550, Action::Act)], "{active:?}");
        }
    }

    #[test]
    fn ssh_is_ignored_when_not_counted() {
        let mut p = policy();
        p.count_ssh = false;
        let seen = Observation { ssh_sessions: 2, ..quiet() };
        assert!(seen.activity(&p).is_empty());
        assert_eq!(seen.activity(&policy()), ["ssh"]);
    }

    #[test]
    fn never_acts_within_the_start_grace() {
        // Idle from the first observation: the action is due `after` past start-up, not earlier.
        let mut s = IdleState::new(1000.0);
        assert_eq!(s.step(1000.0 + 1799.0, &quiet(), &policy()), Action::Warn);
        assert_eq!(s.step(1000.0 + 1800.0, &quiet(), &policy()), Action::Act);
        assert_eq!(s.step(1000.0 + 9999.0, &quiet(), &policy()), Action::None);
    }

    #[test]
    fn the_busy_threshold_is_exclusive() {
        let at = Observation { cpu_busy_ratio: 0.10, ..Default::default() };
        let below = Observation { cpu_busy_ratio: 0.0999, ..Default::default() };
        assert_eq!(at.activity(&policy()), ["cpu"]);
        assert!(below.activity(&policy()).is_empty());
    }

    #[test]
    fn no_warning_when_warn_before_is_zero() {
        let mut p = policy();
        p.warn_before = Duration::ZERO;
        let mut s = IdleState::new(0.0);
        let actions: Vec<_> = (60..=3600).step_by(60).map(|t| s.step(t as f64, &quiet(), &p)).filter(|a| *a != Action::None).collect();
        assert_eq!(actions, [Action::Act]);
    }
}
