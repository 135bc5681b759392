//! The `health` collector: the latest result of every scheduled check (see `crate::health`),
//! with `check` and `target` labels, plus when each last ran and its failures by reason. It only
//! reads what the background checks recorded; a scrape never waits for a probe.

use super::{CollectError, Collector, Context};
use crate::health::config::Check;
use crate::health::metrics::{self, Families};
use crate::health::probe::{Prober, Reason};
use crate::health::runner::{HealthState, Schedule};
use fleetwatch_common::expfmt::Family;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

pub struct Health {
    checks: Vec<Arc<Check>>,
    state: Arc<HealthState>,
    _schedule: Option<Schedule>,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    let compiled = ctx.config.health.compile().map_err(CollectError::Other)?;
    let state = ctx.shared.health.clone();
    let schedule = Schedule::start(&compiled.checks, compiled.max_concurrency, &state);
    Ok(Box::new(Health { checks: compiled.checks, state, _schedule: schedule }))
}

impl Collector for Health {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let mut families = Families::default();
        for check in &self.checks {
            let labels = [("check", check.name.as_str()), ("target", check.target.as_str())];
            if let Some(latest) = self.state.latest(&check.name) {
                let http = matches!(check.module.prober, Prober::Http(_));
                metrics::add(&mut families, &latest.result, http, &labels);
                let at = latest.at.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
                families
                    .gauge("fleetwatch_health_check_last_run_timestamp_seconds", "When the check last finished a probe (Unix time).")
                    .add(&labels, at);
            }
            let failures = families.counter("fleetwatch_health_check_failures_total", "Failed probes of the check, by reason.");
            for reason in Reason::ALL {
                failures
                    .add(&[("check", check.name.as_str()), ("reason", reason.as_str())], self.state.failures(&check.name, reason) as f64);
            }
        }
        out.extend(families.into_vec());
        Ok(())
    }
}
