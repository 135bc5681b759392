//! `diskstats`: block device I/O counters from /proc/diskstats (`node_disk_*`) and device
//! identity from the udev database (`node_disk_info`), as node_exporter's diskstats collector,
//! skipping partitions and virtual devices by its default regex.

use super::{num, parse_error, CollectError, Collector, Context, OpenFiles};
use fleetwatch_common::config::ConfigRegex;
use fleetwatch_common::expfmt::{Family, MetricType};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

/// node_exporter reports sectors as 512-byte units whatever the device's sector size.
const SECTOR_BYTES: f64 = 512.0;

/// One /proc/diskstats line.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskStats {
    pub major: String,
    pub minor: String,
    pub device: String,
    /// The counters after the device name (11 on old kernels, 15 since 4.18, 17 since 5.5).
    pub fields: Vec<f64>,
}

pub fn parse(text: &str) -> Result<Vec<DiskStats>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(major), Some(minor), Some(device)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let fields: Vec<f64> = f.map(num).collect::<Result<_, _>>()?;
        if fields.len() < 11 {
            return Err(format!("too few fields for {device}"));
        }
        out.push(DiskStats { major: major.into(), minor: minor.into(), device: device.into(), fields });
    }
    Ok(out)
}

/// (field index, name, help, type, scale) in node_exporter's words.
const COLUMNS: [(usize, &str, &str, MetricType, f64); 17] = [
    (0, "node_disk_reads_completed_total", "The total number of reads completed successfully.", MetricType::Counter, 1.0),
    (1, "node_disk_reads_merged_total", "The total number of reads merged.", MetricType::Counter, 1.0),
    (2, "node_disk_read_bytes_total", "The total number of bytes read successfully.", MetricType::Counter, SECTOR_BYTES),
    (3, "node_disk_read_time_seconds_total", "The total number of seconds spent by all reads.", MetricType::Counter, 0.001),
    (4, "node_disk_writes_completed_total", "The total number of writes completed successfully.", MetricType::Counter, 1.0),
    (5, "node_disk_writes_merged_total", "The number of writes merged.", MetricType::Counter, 1.0),
    (6, "node_disk_written_bytes_total", "The total number of bytes written successfully.", MetricType::Counter, SECTOR_BYTES),
    (7, "node_disk_write_time_seconds_total", "This is the total number of seconds spent by all writes.", MetricType::Counter, 0.001),
    (8, "node_disk_io_now", "The number of I/Os currently in progress.", MetricType::Gauge, 1.0),
    (9, "node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", MetricType::Counter, 0.001),
    (10, "node_disk_io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.", MetricType::Counter, 0.001),
    (11, "node_disk_discards_completed_total", "The total number of discards completed successfully.", MetricType::Counter, 1.0),
    (12, "node_disk_discards_merged_total", "The total number of discards merged.", MetricType::Counter, 1.0),
    (13, "node_disk_discarded_sectors_total", "The total number of sectors discarded successfully.", MetricType::Counter, 1.0),
    (14, "node_disk_discard_time_seconds_total", "This is the total number of seconds spent by all discards.", MetricType::Counter, 0.001),
    (15, "node_disk_flush_requests_total", "The total number of flush requests completed successfully", MetricType::Counter, 1.0),
    (
        16,
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        MetricType::Counter,
        0.001,
    ),
];

/// The udev properties node_exporter turns into `node_disk_info` labels.
const INFO_LABELS: [(&str, &str); 5] =
    [("model", "ID_MODEL"), ("path", "ID_PATH"), ("revision", "ID_REVISION"), ("serial", "ID_SERIAL_SHORT"), ("wwn", "ID_WWN")];

/// Reads `E:KEY=value` properties from a udev database entry.
pub fn parse_udev(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub struct Diskstats {
    path: PathBuf,
    udev: PathBuf,
    exclude: Option<ConfigRegex>,
    files: OpenFiles,
    udev_cache: Mutex<UdevCache>,
}

/// udev database entries already read, valid while the database directory's mtime is unchanged
/// (udev replaces an entry by renaming a new file in, which updates the directory).
#[derive(Default)]
struct UdevCache {
    dir_mtime: Option<SystemTime>,
    entries: HashMap<String, Vec<(String, String)>>,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    Ok(Box::new(Diskstats {
        path: ctx.paths.proc("diskstats"),
        udev: ctx.paths.udev_data.clone(),
        exclude: ctx.config.diskstats.device_exclude.clone(),
        files: OpenFiles::default(),
        udev_cache: Mutex::new(UdevCache::default()),
    }))
}

impl Diskstats {
    /// Drops the cached udev entries if the database changed since the last scrape.
    fn refresh_udev_cache(&self, cache: &mut UdevCache) {
        let mtime = std::fs::metadata(&self.udev).and_then(|m| m.modified()).ok();
        if mtime != cache.dir_mtime {
            cache.entries.clear();
            cache.dir_mtime = mtime;
        }
    }

    fn add_info(&self, info: &mut Family, dm: &mut Family, d: &DiskStats, cache: &mut UdevCache) {
        let key = format!("b{}:{}", d.major, d.minor);
        // No udev database (a container without /run/udev): nothing to read.
        if cache.dir_mtime.is_some() && !cache.entries.contains_key(&key) {
            let props = super::read_small(&self.udev.join(&key)).map(|t| parse_udev(&t)).unwrap_or_default();
            cache.entries.insert(key.clone(), props);
        }
        let props = cache.entries.get(&key).map(Vec::as_slice).unwrap_or_default();
        let get = |key: &str| props.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or("");
        let mut labels: Vec<(&str, &str)> = vec![("device", &d.device), ("major", &d.major), ("minor", &d.minor)];
        labels.extend(INFO_LABELS.iter().map(|(label, key)| (*label, get(key))));
        info.add(&labels, 1.0);
        if !get("DM_NAME").is_empty() {
            dm.add(
                &[
                    ("device", &d.device),
                    ("lv_layer", get("DM_LV_LAYER")),
                    ("lv_name", get("DM_LV_NAME")),
                    ("name", get("DM_NAME")),
                    ("uuid", get("DM_UUID")),
                    ("vg_name", get("DM_VG_NAME")),
                ],
                1.0,
            );
        }
    }
}

impl Collector for Diskstats {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let disks = parse(&self.files.read(&self.path)?).map_err(|e| parse_error(&self.path, e))?;
        let mut cache = self.udev_cache.lock().map_err(|_| CollectError::Other("udev cache lock poisoned".into()))?;
        self.refresh_udev_cache(&mut cache);
        let mut families: Vec<Family> = COLUMNS.iter().map(|(_, name, help, kind, _)| Family::new(*name, *help, *kind)).collect();
        let mut info = Family::gauge("node_disk_info", "Info of /sys/block/<block_device>.");
        let mut dm = Family::gauge("node_disk_device_mapper_info", "Info about disk device mapper.");
        for d in disks.iter().filter(|d| !self.exclude.as_ref().is_some_and(|r| r.is_match(&d.device))) {
            for (family, (index, _, _, _, scale)) in families.iter_mut().zip(COLUMNS) {
                if let Some(v) = d.fields.get(index) {
                    family.add(&[("device", &d.device)], v * scale);
                }
            }
            self.add_info(&mut info, &mut dm, d, &mut cache);
        }
        out.extend(families);
        out.push(info);
        out.push(dm);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_kernel_generations() {
        let text = " 254       0 vda 100 2 800 50 30 4 240 60 0 90 110 5 0 16 1 7 3\n   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0\n 254 1 vda1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n";
        let d = parse(text).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].device, "vda");
        assert_eq!(d[0].fields.len(), 17);
        assert_eq!(d[0].fields[2], 800.0);
        assert_eq!(d[1].fields.len(), 11);
        assert_eq!(d[2].fields.len(), 15);
    }

    #[test]
    fn rejects_short_or_bad_lines() {
        assert!(parse("254 0 vda 1 2 3\n").is_err());
        assert!(parse("254 0 vda 1 2 3 4 5 6 7 8 9 10 x\n").is_err());
    }

    #[test]
    fn reads_udev_properties() {
        let props = parse_udev("S:disk/by-id/x\nE:ID_MODEL=QEMU_HARDDISK\nE:ID_PATH=pci-0000:00:05.0\nG:systemd\n");
        assert_eq!(
            props,
            vec![("ID_MODEL".to_string(), "QEMU_HARDDISK".to_string()), ("ID_PATH".to_string(), "pci-0000:00:05.0".to_string())]
        );
    }

    #[test]
    fn udev_entries_are_cached_until_the_database_changes() {
        use crate::config::Config;
        use crate::paths::Paths;
        use fleetwatch_common::expfmt::{encode, Format};
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        std::fs::create_dir_all(&paths.procfs).unwrap();
        std::fs::create_dir_all(&paths.udev_data).unwrap();
        std::fs::write(paths.proc("diskstats"), " 254 0 vda 1 2 3 4 5 6 7 8 9 10 11\n").unwrap();
        let (config, shared) = (Config::default(), std::sync::Arc::new(super::super::Shared::default()));
        let c = build(&Context { paths: &paths, config: &config, shared: &shared }).unwrap();
        let scrape = || {
            let mut out = Vec::new();
            c.collect(&mut out).unwrap();
            encode(&out, Format::Text)
        };
        assert!(scrape().contains("model=\"\""));
        // udev writes a new entry elsewhere and renames it in, which changes the directory.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let tmp = dir.path().join("entry.tmp");
        std::fs::write(&tmp, "E:ID_MODEL=NEWDISK\n").unwrap();
        std::fs::rename(&tmp, paths.udev_data.join("b254:0")).unwrap();
        assert!(scrape().contains("model=\"NEWDISK\""));
    }
}
