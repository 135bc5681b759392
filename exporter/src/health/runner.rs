//! Runs the scheduled checks in the background: one task per check on a fixed, jittered schedule
//! (no drift: ticks are computed from the start, a late probe skips a tick rather than shifting
//! the rest), at most `max_concurrency` probes at once. Results go to [`HealthState`], which a
//! scrape only reads.

use super::config::Check;
use super::probe::{probe, ProbeResult, Reason};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;

/// The latest result of every check and the failure counters; kept across config reloads.
#[derive(Default)]
pub struct HealthState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    latest: HashMap<String, Latest>,
    failures: HashMap<(String, Reason), u64>,
}

#[derive(Clone)]
pub struct Latest {
    pub target: String,
    pub result: ProbeResult,
    pub at: SystemTime,
}

impl HealthState {
    /// Records one probe of `check`, counting and logging a failure.
    pub fn record(&self, check: &Check, result: ProbeResult) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let was_ok = inner.latest.get(&check.name).is_none_or(|l| l.result.success());
        if let Some(f) = &result.failure {
            *inner.failures.entry((check.name.clone(), f.reason)).or_default() += 1;
            if was_ok {
                tracing::warn!(check = %check.name, target = %check.target, reason = f.reason.as_str(), err = %f.message, "health check failed");
            } else {
                tracing::debug!(check = %check.name, target = %check.target, reason = f.reason.as_str(), err = %f.message, "health check still failing");
            }
        } else if !was_ok {
            tracing::info!(check = %check.name, target = %check.target, "health check recovered");
        }
        inner.latest.insert(check.name.clone(), Latest { target: check.target.clone(), result, at: SystemTime::now() });
    }

    /// Drops what belongs to checks no longer configured (or whose target changed).
    pub fn retain(&self, checks: &[Arc<Check>]) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let wanted: HashMap<&str, &str> = checks.iter().map(|c| (c.name.as_str(), c.target.as_str())).collect();
        inner.latest.retain(|name, l| wanted.get(name.as_str()) == Some(&l.target.as_str()));
        inner.failures.retain(|(name, _), _| wanted.contains_key(name.as_str()));
    }

    pub fn latest(&self, name: &str) -> Option<Latest> {
        self.inner.lock().ok()?.latest.get(name).cloned()
    }

    pub fn failures(&self, name: &str, reason: Reason) -> u64 {
        self.inner.lock().ok().and_then(|i| i.failures.get(&(name.to_string(), reason)).copied()).unwrap_or(0)
    }
}

/// The running schedule; dropping it stops every check's task.
pub struct Schedule {
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Schedule {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Schedule {
    /// Starts one task per check on the current tokio runtime; `None` outside a runtime (nothing
    /// is scheduled then, e.g. in `--config.check`).
    pub fn start(checks: &[Arc<Check>], max_concurrency: usize, state: &Arc<HealthState>) -> Option<Schedule> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        state.retain(checks);
        let permits = Arc::new(Semaphore::new(max_concurrency));
        let tasks = checks.iter().map(|c| handle.spawn(run_check(c.clone(), permits.clone(), state.clone())).abort_handle()).collect();
        Some(Schedule { tasks })
    }
}

/// Where in its interval a check runs: spread by a hash of its name, like Prometheus's scrape
/// offsets, so many checks with the same interval do not all start at once.
pub fn offset(name: &str, interval: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(h % nanos)
}

async fn run_check(check: Arc<Check>, permits: Arc<Semaphore>, state: Arc<HealthState>) {
    let start = tokio::time::Instant::now() + offset(&check.name, check.interval);
    let mut ticks = tokio::time::interval_at(start, check.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let Ok(_permit) = permits.acquire().await else { return };
        let result = probe(&check.module, &check.target, check.timeout).await;
        state.record(&check, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_within_the_interval_and_stable() {
        let i = Duration::from_secs(15);
        for name in ["a", "b", "shop", "db"] {
            assert!(offset(name, i) < i);
            assert_eq!(offset(name, i), offset(name, i));
        }
        assert_ne!(offset("a", i), offset("b", i));
    }
}
