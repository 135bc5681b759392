//! The exporter's own metrics: `fleetwatch_exporter_build_info` and the standard `process_*`
//! families (read from the real /proc/self, not the injected procfs, through files kept open).

use crate::collector::OpenFiles;
use fleetwatch_common::expfmt::Family;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn build_info() -> Family {
    fleetwatch_common::process::build_info("exporter", VERSION)
}

/// Our own /proc/self files, kept open between scrapes.
fn own_files() -> &'static OpenFiles {
    static FILES: std::sync::OnceLock<OpenFiles> = std::sync::OnceLock::new();
    FILES.get_or_init(OpenFiles::default)
}

pub fn process_metrics(out: &mut Vec<Family>) {
    fleetwatch_common::process::process_metrics(out, |p| own_files().read_io(p));
}
