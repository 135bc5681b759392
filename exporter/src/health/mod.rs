//! Health checks: HTTP(S) and TCP probes with blackbox_exporter's semantics and metric names,
//! run on their own schedule in the background (`runner`), exposed by the `health` collector,
//! and answered on demand at `/probe` with blackbox's modules (`config`).

pub mod config;
mod der;
pub mod metrics;
pub mod probe;
pub mod runner;

use metrics::Families;
use probe::{Module, ProbeResult, Prober};

/// A `/probe` answer: the result's families without extra labels.
pub fn probe_families(module: &Module, result: &ProbeResult) -> Vec<fleetwatch_common::expfmt::Family> {
    let mut out = Families::default();
    metrics::add(&mut out, result, matches!(module.prober, Prober::Http(_)), &[]);
    out.into_vec()
}
