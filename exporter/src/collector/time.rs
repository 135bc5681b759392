//! `time`: the system clock, time zone and clocksources (`node_time_*`), as node_exporter's time
//! collector.

use super::{CollectError, Collector, Context, OpenFiles};
use fleetwatch_common::expfmt::Family;
use std::ffi::CStr;
use std::path::PathBuf;

pub struct Time {
    /// (device number, its clocksourceN directory), listed once: clocksource devices are fixed.
    devices: Vec<(String, PathBuf)>,
    files: OpenFiles,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    let dir = ctx.paths.sys("devices/system/clocksource");
    let mut devices: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries.flatten().filter_map(|e| Some((e.file_name().to_str()?.strip_prefix("clocksource")?.to_string(), e.path()))).collect()
        })
        .unwrap_or_default();
    devices.sort();
    Ok(Box::new(Time { devices, files: OpenFiles::default() }))
}

/// The local time zone's abbreviation and offset from UTC in seconds.
fn local_zone(now_secs: i64) -> (String, f64) {
    let t = now_secs as libc::time_t;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r writes into our tm; tm_zone then points at static tz data.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok || tm.tm_zone.is_null() {
        return ("UTC".to_string(), 0.0);
    }
    let name = unsafe { CStr::from_ptr(tm.tm_zone) }.to_string_lossy().into_owned();
    (name, tm.tm_gmtoff as f64)
}

impl Time {
    /// (device number, available clocksources, current clocksource) per clocksourceN directory.
    fn clocksources(&self) -> Vec<(&str, Vec<String>, String)> {
        let read = |dir: &PathBuf, f: &str| self.files.read_io(&dir.join(f)).unwrap_or_default();
        self.devices
            .iter()
            .map(|(device, dir)| {
                let available = read(dir, "available_clocksource").split_ascii_whitespace().map(String::from).collect();
                (device.as_str(), available, read(dir, "current_clocksource").trim().to_string())
            })
            .collect()
    }
}

impl Collector for Time {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| CollectError::Other(e.to_string()))?;
        let mut t = Family::gauge("node_time_seconds", "System time in seconds since epoch (1970).");
        t.add(&[], now.as_secs_f64());
        let (zone, offset) = local_zone(now.as_secs() as i64);
        let mut z = Family::gauge("node_time_zone_offset_seconds", "System time zone offset in seconds.");
        z.add(&[("time_zone", &zone)], offset);
        let mut avail =
            Family::gauge("node_time_clocksource_available_info", "Available clocksources read from '/sys/devices/system/clocksource'.");
        let mut current =
            Family::gauge("node_time_clocksource_current_info", "Current clocksource read from '/sys/devices/system/clocksource'.");
        for (device, available, cur) in self.clocksources() {
            for source in &available {
                avail.add(&[("clocksource", source), ("device", device)], 1.0);
            }
            if !cur.is_empty() {
                current.add(&[("clocksource", &cur), ("device", device)], 1.0);
            }
        }
        out.extend([t, z, avail, current]);
        Ok(())
    }
}
