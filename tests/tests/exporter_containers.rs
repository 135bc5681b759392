//! The exporter's `containers` collector against this machine's real kernel and a real container
//! runtime: (a) cgroups made here, named like a Docker container, with a process that burns CPU
//! and allocates memory in them; (b) two podman (runc) containers from a locally imported
//! busybox image, with names and images read from `podman system service`'s Docker-compatible
//! API on a unix socket. Both need root and a writable cgroupfs; (b) needs podman, runc and
//! busybox (tests/run.sh installs them).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{cgroups_writable, eventually, exporter, get, require, run, FakeContainer, Proc};

/// The value of `metric` for the series whose labels contain `needle`.
fn value(text: &str, metric: &str, needle: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(&format!("{metric}{{")) && l.contains(needle)).and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

fn scrape(port: u16) -> String {
    get(port, "/metrics?collect[]=containers", &[]).text()
}

fn config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("exporter.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn real_cgroup_cpu_and_memory_rise() {
    if !cgroups_writable("real_cgroup_cpu_and_memory_rise") {
        return;
    }
    let id = support::fake_container_id(1);
    let mut fc = FakeContainer::create(&id);
    let dir = tempfile::tempdir().unwrap();
    // A socket that does not exist: names fall back to the short id and metadata_up says 0.
    let cfg = config(dir.path(), &format!("containers:\n  docker_socket: {}\n", dir.path().join("none.sock").display()));
    let (_exp, port) = exporter(&["--collector.disable-defaults", "--collector.containers", &format!("--config.file={}", cfg.display())]);
    let needle = format!("id=\"/docker/{id}\",image=\"\",name=\"{}\"", &id[..12]);
    let before = scrape(port);
    let cpu0 = value(&before, "container_cpu_usage_seconds_total", &needle).expect("empty container listed");
    let mem0 = value(&before, "container_memory_usage_bytes", &needle).expect("memory listed");
    assert!(before.contains("fleetwatch_containers_metadata_up 0"), "{before}");
    // The process is in the host's network namespace (like `--network host`): no network series,
    // also where PID 1's namespace cannot be inspected (the exporter's own is the host's then).
    assert!(!before.lines().any(|l| l.starts_with("container_network_") && l.contains(&needle)), "{before}");
    fc.start_burner();
    let (cpu1, mem1) = eventually(Duration::from_secs(20), "CPU and memory to rise", || {
        let t = scrape(port);
        let cpu = value(&t, "container_cpu_usage_seconds_total", &needle)?;
        let mem = value(&t, "container_memory_usage_bytes", &needle)?;
        (cpu > cpu0 + 0.5 && mem > mem0 + 30e6).then_some((cpu, mem))
    });
    std::thread::sleep(Duration::from_millis(500));
    let later = scrape(port);
    assert!(value(&later, "container_cpu_usage_seconds_total", &needle).unwrap() > cpu1, "CPU keeps rising");
    assert!(value(&later, "container_memory_working_set_bytes", &needle).unwrap() > 30e6, "working set {mem1}");
    assert!(value(&later, "container_processes", &needle).unwrap_or(1.0) >= 1.0);
    // A restart between two scrapes: the same cgroup path removed and made again. The new
    // cgroup's figures are reported (not the old open files'), with a later start time.
    let start1 = value(&later, "container_start_time_seconds", &needle).unwrap();
    drop(fc);
    std::thread::sleep(Duration::from_millis(1100));
    let fc = FakeContainer::create(&id);
    let restarted = scrape(port);
    assert!(value(&restarted, "container_start_time_seconds", &needle).unwrap() > start1, "{restarted}");
    assert!(value(&restarted, "container_cpu_usage_seconds_total", &needle).unwrap() < cpu1, "the new cgroup's counter");
    drop(fc);
    let gone = scrape(port);
    assert!(!gone.contains(&id), "the removed cgroup is no longer reported");
}

// ---------------------------------------------------------------------------------------------
// podman
// ---------------------------------------------------------------------------------------------

const PODMAN_FLAGS: [&str; 6] = ["--runtime", "runc", "--network", "none", "--ulimit", "nofile=20000:20000"];

fn podman(args: &[&str]) -> (i32, String, String) {
    run(Command::new("podman").args(args))
}

/// Containers, then their image, removed (forcibly) when dropped, also when the test fails.
struct Cleanup {
    containers: Vec<String>,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = podman(&["rm", "-f", "-t", "0", name]);
        }
        let _ = podman(&["rmi", "-f", &self.image]);
    }
}

/// Imports a busybox image made from Debian's busybox-static (`/bin/busybox` and an `sh` and
/// `sleep` link).
fn import_busybox(dir: &Path, image: &str) {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tar = dir.join("busybox.tar");
    let (code, _, err) = run(Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg("."));
    assert_eq!(code, 0, "tar: {err}");
    let (code, _, err) = podman(&["import", tar.to_str().unwrap(), image]);
    assert_eq!(code, 0, "podman import: {err}");
}

fn start(name: &str, image: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend(PODMAN_FLAGS);
    args.extend(["--ulimit", "nproc=32768:32768"]);
    args.extend(extra);
    args.extend([image, "sleep", "3600"]);
    let (code, out, err) = podman(&args);
    assert_eq!(code, 0, "podman run {name}: {err}");
    out.trim().to_string()
}

#[test]
fn podman_containers_named_limited_and_dropped() {
    let test = "podman_containers_named_limited_and_dropped";
    if !cgroups_writable(test) || !require("podman", test) || !require("runc", test) || !require("busybox", test) {
        return;
    }
    if !Path::new("/bin/busybox").exists() {
        assert!(std::env::var_os("CI").is_none(), "{test}: /bin/busybox (busybox-static) missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tag = std::process::id();
    let image = format!("localhost/fleetwatch-busybox:{tag}");
    import_busybox(dir.path(), &image);
    let socket = dir.path().join("podman.sock");
    let _service = Proc::spawn(
        "podman system service",
        Command::new("podman").args(["system", "service", "--time=0"]).arg(format!("unix://{}", socket.display())),
    );
    let (a, b) = (format!("fw-plain-{tag}"), format!("fw-limited-{tag}"));
    let _cleanup = Cleanup { containers: vec![a.clone(), b.clone()], image: image.clone() };
    let id_a = start(&a, &image, &[]);
    let id_b = start(&b, &image, &["--memory", "64m", "--cpus", "0.5"]);
    let cfg = config(dir.path(), &format!("containers:\n  docker_socket: {}\n  metadata_interval: 2s\n", socket.display()));
    let (_exp, port) = exporter(&["--collector.disable-defaults", "--collector.containers", &format!("--config.file={}", cfg.display())]);

    let text = eventually(Duration::from_secs(30), "both containers with names and images", || {
        let t = scrape(port);
        (t.contains(&format!("name=\"{a}\"")) && t.contains(&format!("name=\"{b}\""))).then_some(t)
    });
    assert!(text.contains("fleetwatch_containers_metadata_up 1"), "{text}");
    // The id label is the cgroup path (`/libpod_parent/libpod-<id>` with podman's cgroupfs manager).
    let labels_a = format!("libpod-{id_a}\",image=\"{image}\",name=\"{a}\"");
    let labels_b = format!("libpod-{id_b}\",image=\"{image}\",name=\"{b}\"");
    assert_eq!(value(&text, "container_spec_memory_limit_bytes", &labels_b), Some(67_108_864.0), "{text}");
    assert_eq!(value(&text, "container_spec_cpu_quota", &labels_b), Some(50_000.0));
    assert_eq!(value(&text, "container_spec_memory_limit_bytes", &labels_a), Some(0.0), "no limit");
    assert!(value(&text, "container_processes", &labels_a).unwrap() >= 1.0);

    let (code, _, err) = podman(&["rm", "-f", "-t", "0", &a]);
    assert_eq!(code, 0, "podman rm: {err}");
    eventually(Duration::from_secs(20), "the removed container to leave the output", || {
        let t = scrape(port);
        (!t.contains(&id_a) && t.contains(&format!("name=\"{b}\""))).then_some(())
    });
}
