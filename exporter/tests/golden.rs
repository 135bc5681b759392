//! Runs the host collectors against the recorded tree in `fixtures/host/` and compares the
//! exposition with `fixtures/golden.prom` (text) and `fixtures/golden.om` (OpenMetrics).
//! `UPDATE_GOLDEN=1 cargo test -p fleetwatch-exporter --test golden` regenerates both.

mod goldenutil;

use fleetwatch_common::expfmt::{encode, parse_text, Family, Format};
use fleetwatch_exporter::collector::filesystem::{Filesystem, FsStats};
use fleetwatch_exporter::collector::{cpu, diskstats, loadavg, meminfo, netdev, pressure, stat, textfile, Collector, Context, Shared};
use fleetwatch_exporter::config::Config;
use fleetwatch_exporter::paths::Paths;
use fleetwatch_exporter::scrape::merge;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Deterministic filesystem figures; the NFS mount fails as a dead server would.
fn fake_statfs(p: &Path) -> std::io::Result<FsStats> {
    if p.ends_with("mnt/nfs") {
        return Err(std::io::Error::from_raw_os_error(libc_estale()));
    }
    // Derived from the mount point (the path below the fixture's root), not the clone's location.
    let full = p.to_string_lossy();
    let mount_point = full.rsplit_once("/host/root").map_or(full.as_ref(), |(_, rest)| rest);
    let n = (mount_point.len() + 1) as f64;
    Ok(FsStats { size: n * 1e9, free: n * 4e8, avail: n * 3e8, files: n * 1e5, files_free: n * 9e4 })
}

fn libc_estale() -> i32 {
    116
}

fn collect_fixture() -> Vec<Family> {
    let dir = fixtures().join("host");
    let fixed = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for f in ["backup.prom", "broken.prom"] {
        let file = std::fs::File::options().append(true).open(dir.join("textfile").join(f)).unwrap();
        file.set_modified(fixed).unwrap();
    }
    let paths = Paths::under(&dir);
    let mut config = Config::default();
    config.textfile.directory = Some(dir.join("textfile"));
    let shared = Arc::new(Shared::default());
    let ctx = Context { paths: &paths, config: &config, shared: &shared };
    let mut collectors: Vec<Box<dyn Collector>> =
        [cpu::build, diskstats::build, loadavg::build, meminfo::build, netdev::build, pressure::build, stat::build, textfile::build]
            .iter()
            .map(|build| build(&ctx).unwrap())
            .collect();
    collectors.push(Box::new(Filesystem::new(&ctx, Arc::new(fake_statfs))));
    let mut families = Vec::new();
    for c in &collectors {
        c.collect(&mut families).unwrap();
    }
    merge(families)
}

fn check(name: &str, actual: &str) {
    goldenutil::check(&fixtures(), name, actual);
}

#[test]
fn host_collectors_match_golden_text_and_openmetrics() {
    let families = collect_fixture();
    let text = encode(&families, Format::Text);
    parse_text(&text).expect("our own output parses");
    check("golden.prom", &text);
    check("golden.om", &encode(&families, Format::OpenMetrics { v1: true }));
}

#[test]
fn fixture_covers_the_interesting_cases() {
    let text = encode(&collect_fixture(), Format::Text);
    let has = |s: &str| text.lines().any(|l| l == s);
    // Partitions and loop devices are skipped; whole disks and device-mapper devices are kept.
    assert!(text.contains("node_disk_reads_completed_total{device=\"nvme0n1\"} 5000"));
    for skipped in ["nvme0n1p1", "loop0", "sda1"] {
        assert!(
            !text.lines().any(|l| l.starts_with("node_disk_") && l.contains(&format!("device=\"{skipped}\""))),
            "{skipped} not skipped"
        );
    }
    assert!(text.contains("node_disk_reads_completed_total{device=\"sda\"} 10"));
    assert!(has("node_disk_info{device=\"vda\",major=\"254\",minor=\"0\",model=\"QEMU_HARDDISK\",path=\"pci-0000:00:05.0\",revision=\"2.5+\",serial=\"QM0001\",wwn=\"0x5000c500a1b2c3d4\"} 1"));
    assert!(has("node_disk_device_mapper_info{device=\"dm-0\",lv_layer=\"\",lv_name=\"data\",name=\"vg-data\",uuid=\"LVM-abc123\",vg_name=\"vg\"} 1"));
    // 11-field (pre-4.18) lines give the classic families only.
    assert!(text.contains("node_disk_io_time_seconds_total{device=\"dm-0\"} 0.035"));
    assert!(!text.contains("node_disk_discards_completed_total{device=\"dm-0\"}"));
    // Sectors are 512 bytes; milliseconds become seconds.
    assert!(has("node_disk_read_bytes_total{device=\"nvme0n1\"} 40960000"));
    assert!(has("node_disk_read_time_seconds_total{device=\"nvme0n1\"} 0.9"));
    // Escaped mount points, read-only flags, excluded fs types, and a failing statfs.
    assert!(has("node_filesystem_readonly{device=\"/dev/mapper/vg-data\",fstype=\"xfs\",mountpoint=\"/srv/my data\"} 1"));
    assert!(has("node_filesystem_device_error{device=\"server:/export\",fstype=\"nfs4\",mountpoint=\"/mnt/nfs\"} 1"));
    assert!(!text.contains("node_filesystem_size_bytes{device=\"server:/export\""));
    assert!(!text.contains("fstype=\"overlay\"") && !text.contains("fstype=\"cgroup\"") && !text.contains("mountpoint=\"/proc\""));
    // Textfile: the good file is exported, the broken one flagged.
    assert!(has("backup_last_success_timestamp_seconds{target=\"db\"} 1700000000"));
    assert!(has("node_textfile_mtime_seconds{file=\"backup.prom\"} 1700000000"));
    assert!(has("node_textfile_scrape_error 1"));
}
