//! Runs the `containers` collector against the cgroup trees in `fixtures/containers/{v1,v2,hybrid}`
//! (hybrid: recorded on a hybrid host plus hand-added cases; v1 and v2: synthetic, see synth.sh)
//! and compares the exposition with `fixtures/containers/<layout>.prom`.
//! `UPDATE_GOLDEN=1 cargo test -p fleetwatch-exporter --test containers_golden` regenerates them.

mod goldenutil;

use fleetwatch_common::expfmt::{encode, parse_text, Family, Format};
use fleetwatch_exporter::collector::containers::Containers;
use fleetwatch_exporter::collector::{Collector, Context, Shared};
use fleetwatch_exporter::config::Config;
use fleetwatch_exporter::containers::metadata::{Meta, MetaMap};
use fleetwatch_exporter::paths::Paths;
use fleetwatch_exporter::scrape::merge;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DOCKER_V2: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const DOCKER_V1: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const RECORDED: &str = "4c1e2d5b6a7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/containers")
}

fn fixed_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_100)
}

/// Pins every directory's mtime (the start time) under the tree, as a checkout leaves them random.
fn pin_mtimes(dir: &Path) {
    let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            pin_mtimes(&entry.path());
            std::fs::File::open(entry.path()).unwrap().set_modified(when).unwrap();
        }
    }
}

/// Names for two containers, with one allow-listed label; the rest fall back to short ids.
fn metadata() -> MetaMap {
    let meta = |name: &str, image: &str, labels: Vec<(String, String)>| {
        Arc::new(Meta { name: name.to_string(), image: image.to_string(), labels })
    };
    let mut map = MetaMap::new();
    map.insert(DOCKER_V2.to_string(), meta("web", "nginx:1.25", vec![("com.docker.compose.service".into(), "web".into())]));
    map.insert(DOCKER_V1.to_string(), meta("db", "postgres:16", vec![]));
    map.insert(RECORDED.to_string(), meta("burner", "busybox:stable", vec![]));
    map
}

fn collect(layout: &str, systemd_services: bool) -> Vec<Family> {
    let dir = fixtures().join(layout);
    pin_mtimes(&dir.join("sys/fs/cgroup"));
    let paths = Paths { procfs: dir.join("proc"), sysfs: dir.join("sys"), rootfs: dir.clone(), udev_data: dir.join("udev") };
    let mut config = Config::default();
    config.containers.docker_socket = None;
    config.containers.systemd_services = systemd_services;
    config.containers.labels = vec!["com.docker.compose.service".to_string()];
    let shared = Arc::new(Shared::default());
    shared.containers.replace(metadata());
    let ctx = Context { paths: &paths, config: &config, shared: &shared };
    let collector = Containers::new(&ctx, fixed_now);
    let mut families = Vec::new();
    collector.collect(&mut families).unwrap();
    merge(families)
}

fn check(name: &str, actual: &str) {
    goldenutil::check(&fixtures(), name, actual);
}

fn text(layout: &str, systemd_services: bool) -> String {
    let text = encode(&collect(layout, systemd_services), Format::Text);
    parse_text(&text).expect("our own output parses");
    text
}

#[test]
fn every_layout_matches_its_golden_file() {
    check("v2.prom", &text("v2", true));
    check("v1.prom", &text("v1", false));
    check("hybrid.prom", &text("hybrid", false));
}

fn value(text: &str, metric: &str, id_part: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{metric}{{")) && l.contains(id_part))
        .and_then(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.parse().unwrap())
}

#[test]
fn v2_values_units_and_labels() {
    let t = text("v2", true);
    let id = format!("id=\"/system.slice/docker-{DOCKER_V2}.scope\",image=\"nginx:1.25\",name=\"web\",container_label_com_docker_compose_service=\"web\"");
    let has = |s: &str| t.lines().any(|l| l == s);
    assert!(has(&format!("container_cpu_usage_seconds_total{{{id},cpu=\"total\"}} 5.123456")), "{t}");
    assert!(has(&format!("container_memory_working_set_bytes{{{id}}} 39845888")), "usage - inactive_file");
    assert!(has(&format!("container_spec_cpu_quota{{{id}}} 50000")));
    assert!(has(&format!("container_spec_memory_limit_bytes{{{id}}} 67108864")));
    assert!(has(&format!("container_oom_events_total{{{id}}} 1")));
    assert!(has(&format!("container_fs_reads_bytes_total{{{id},device=\"/dev/vda\"}} 1048576")));
    assert!(has(&format!("container_network_receive_bytes_total{{{id},interface=\"eth0\"}} 1234567")));
    assert!(!t.contains("interface=\"lo\""), "loopback skipped");
    assert!(has(&format!("container_start_time_seconds{{{id}}} 1700000000")));
    assert!(has(&format!("container_last_seen{{{id}}} 1700000100")));
    // Podman: no metadata → short id; shares the host network namespace → no network series;
    // no quota → no container_spec_cpu_quota, unlimited memory → 0.
    let podman = "id=\"/machine.slice/libpod-3333333333333333333333333333333333333333333333333333333333333333.scope\",image=\"\",name=\"333333333333\"";
    assert!(has(&format!("container_spec_memory_limit_bytes{{{podman}}} 0")));
    assert!(!t.lines().any(|l| l.starts_with("container_spec_cpu_quota{") && l.contains(podman)));
    assert!(!t.lines().any(|l| l.starts_with("container_network_") && l.contains(podman)));
    // CRI under kubepods; weight 39 → shares 998; systemd service named by its unit.
    assert_eq!(value(&t, "container_spec_cpu_shares", "cri-containerd-4444"), Some(998.0));
    assert_eq!(value(&t, "container_processes", "cri-containerd-4444"), Some(12.0));
    assert!(has("container_processes{id=\"/system.slice/cron.service\",image=\"\",name=\"cron.service\"} 1"));
    assert!(!t.contains("libpod-conmon"), "conmon is not a container");
    assert!(
        !t.contains("timestamp") && t.lines().filter(|l| !l.starts_with('#')).all(|l| l.split(' ').count() == 2),
        "no explicit timestamps"
    );
}

#[test]
fn v1_and_hybrid_units() {
    let t = text("v1", false);
    let db = format!("id=\"/docker/{DOCKER_V1}\",image=\"postgres:16\",name=\"db\"");
    let has = |s: &str| t.lines().any(|l| l == s);
    assert!(has(&format!("container_cpu_usage_seconds_total{{{db},cpu=\"total\"}} 7.5")), "{t}");
    assert!(has(&format!("container_cpu_user_seconds_total{{{db}}} 6")), "USER_HZ ticks");
    assert!(has(&format!("container_spec_memory_limit_bytes{{{db}}} 0")), "v1 unlimited");
    assert!(has(&format!("container_fs_writes_bytes_total{{{db},device=\"/dev/sda\"}} 1048576")));
    assert_eq!(value(&t, "container_cpu_cfs_throttled_seconds_total", "kubepods"), Some(0.2));
    assert_eq!(value(&t, "container_memory_failcnt", "kubepods"), Some(5.0));
    assert!(!t.contains("id=\"/docker\""), "the parent cgroup is not a container");

    let h = text("hybrid", false);
    let rec = format!("id=\"/docker/{RECORDED}\",image=\"busybox:stable\",name=\"burner\"");
    assert!(h.lines().any(|l| l == format!("container_spec_cpu_quota{{{rec}}} 50000")), "{h}");
    assert!(h.lines().any(|l| l == format!("container_spec_memory_limit_bytes{{{rec}}} 268435456")));
    // The podman container has only memory and cpuacct files: what exists is reported.
    let pod = "libpod_parent/libpod-5555";
    assert_eq!(value(&h, "container_memory_rss", pod), Some(4194304.0));
    assert_eq!(value(&h, "container_cpu_usage_seconds_total", pod), Some(0.042));
    assert_eq!(value(&h, "container_processes", pod), None);
    assert!(!h.contains("conmon"));
}

#[test]
fn cap_drops_and_counts() {
    let dir = fixtures().join("v2");
    let paths = Paths { procfs: dir.join("proc"), sysfs: dir.join("sys"), rootfs: dir.clone(), udev_data: dir.join("udev") };
    let mut config = Config::default();
    config.containers.docker_socket = None;
    config.containers.max_containers = 1;
    let shared = Arc::new(Shared::default());
    let ctx = Context { paths: &paths, config: &config, shared: &shared };
    let collector = Containers::new(&ctx, fixed_now);
    for scrape in 1..=2 {
        let mut families = Vec::new();
        collector.collect(&mut families).unwrap();
        let t = encode(&families, Format::Text);
        assert_eq!(t.lines().filter(|l| l.starts_with("container_last_seen{")).count(), 1);
        assert!(t.contains(&format!("fleetwatch_containers_dropped_total {}", 2 * scrape)), "{t}");
    }
}

#[test]
fn no_container_cgroups_means_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    let mut config = Config::default();
    config.containers.docker_socket = Some(dir.path().join("missing.sock"));
    let shared = Arc::new(Shared::default());
    let ctx = Context { paths: &paths, config: &config, shared: &shared };
    let mut families = Vec::new();
    Containers::new(&ctx, fixed_now).collect(&mut families).unwrap();
    assert!(families.is_empty());
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The counters that are not read again every scrape (v1): the OOM kill counts while
/// /proc/vmstat's oom_kill stands still, cpuacct.stat while cpuacct.usage stands still, and
/// memory.failcnt of a container without a memory limit. Each is read again once its trigger
/// moves (a limited container's failcnt every scrape).
#[test]
fn v1_rare_counters_are_read_when_they_can_have_moved() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("v1"), dir.path());
    std::fs::write(dir.path().join("proc/vmstat"), "pgfault 10\noom_kill 0\n").unwrap();
    let paths = Paths::under(dir.path());
    let mut config = Config::default();
    config.containers.docker_socket = None;
    let shared = Arc::new(Shared::default());
    let ctx = Context { paths: &paths, config: &config, shared: &shared };
    let collector = Containers::new(&ctx, fixed_now);
    let scrape = || {
        let mut families = Vec::new();
        collector.collect(&mut families).unwrap();
        encode(&merge(families), Format::Text)
    };
    let cg = dir.path().join("sys/fs/cgroup");
    let db = cg.join(format!("cpu,cpuacct/docker/{DOCKER_V1}"));
    let db_mem = cg.join(format!("memory/docker/{DOCKER_V1}"));
    let pod = "kubepods/burstable/pod7a8b9c0d-1e2f-3a4b-5c6d-7e8f9a0b1c2d/4444444444444444444444444444444444444444444444444444444444444444";
    let db_id = &DOCKER_V1[..12];
    for _ in 0..3 {
        scrape();
    }
    // oom_kill moved in the cgroup only: not read (the kernel moves vmstat's count with it).
    std::fs::write(db_mem.join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
    assert_eq!(value(&scrape(), "container_oom_events_total", db_id), Some(0.0));
    std::fs::write(dir.path().join("proc/vmstat"), "pgfault 10\noom_kill 1\n").unwrap();
    assert_eq!(value(&scrape(), "container_oom_events_total", db_id), Some(3.0));
    // cpuacct.stat is read again only when cpuacct.usage moved.
    std::fs::write(db.join("cpuacct.stat"), "user 700\nsystem 150\n").unwrap();
    assert_eq!(value(&scrape(), "container_cpu_user_seconds_total", db_id), Some(6.0));
    std::fs::write(db.join("cpuacct.usage"), "8500000000\n").unwrap();
    let t = scrape();
    assert_eq!(value(&t, "container_cpu_user_seconds_total", db_id), Some(7.0));
    assert_eq!(value(&t, "container_cpu_usage_seconds_total", db_id), Some(8.5));
    // failcnt: the unlimited container's is kept (read with the limits, every 30 s); the
    // limited one's is read every scrape.
    std::fs::write(db_mem.join("memory.failcnt"), "9\n").unwrap();
    std::fs::write(cg.join("memory").join(pod).join("memory.failcnt"), "6\n").unwrap();
    let t = scrape();
    assert_eq!(value(&t, "container_memory_failcnt", db_id), Some(0.0));
    assert_eq!(value(&t, "container_memory_failcnt", "kubepods"), Some(6.0));
}
