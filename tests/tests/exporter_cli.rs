//! The exporter's command line: `--config.check`, located config errors with exit code 1, a port
//! already in use, and reload of the config file on SIGHUP.

mod support;

use std::process::Command;
use std::time::Duration;
use support::{bin, exporter, get, run};

fn check(config: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.yml");
    std::fs::write(&path, config).unwrap();
    let (code, out, err) =
        run(Command::new(bin("fleetwatch-exporter")).arg(format!("--config.file={}", path.display())).arg("--config.check"));
    (code, out, err.replace(&path.display().to_string(), "FILE"))
}

#[test]
fn config_check_accepts_good_and_locates_bad_files() {
    let (code, out, _) = check("collectors:\n  uname: false\ntextfile:\n  directory: /tmp\n");
    assert_eq!(code, 0);
    assert!(out.contains("config OK") && !out.contains("uname"), "{out}");

    let (code, _, err) = check("filesystem:\n  mount_timeout: 5s\n  mount_timeuot: 1s\n");
    assert_eq!(code, 1);
    assert!(err.contains("FILE:3:") && err.contains("mount_timeuot"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let (code, _, err) = check("diskstats:\n  device_exclude: \"[\"\n");
    assert_eq!(code, 1);
    assert!(err.contains("FILE:2:") && err.contains("diskstats.device_exclude") && err.contains("invalid regex"), "{err}");

    let (code, _, err) = check("textfile:\n  directory: ${FLEETWATCH_SURELY_UNSET}\n");
    assert_eq!(code, 1);
    assert!(err.contains("FILE:2:") && err.contains("FLEETWATCH_SURELY_UNSET"), "{err}");

    let (code, _, err) = run(Command::new(bin("fleetwatch-exporter")).args(["--config.file=/nonexistent/exporter.yml", "--config.check"]));
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/exporter.yml"), "{err}");
}

#[test]
fn env_variables_expand_in_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.prom"), "expanded_ok 1\n").unwrap();
    let cfg = dir.path().join("exporter.yml");
    std::fs::write(&cfg, "textfile:\n  directory: ${FW_TEXTFILE_DIR}\n").unwrap();
    let port = support::free_port();
    let mut cmd = Command::new(bin("fleetwatch-exporter"));
    cmd.env("FW_TEXTFILE_DIR", dir.path())
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--config.file={}", cfg.display()));
    let _p = support::Proc::spawn("exporter", &mut cmd);
    support::wait_port(port, "exporter");
    assert!(get(port, "/metrics", &[]).text().contains("\nexpanded_ok 1\n"));
}

#[test]
fn port_in_use_is_one_clear_line_and_exit_1() {
    let (_p, port) = exporter(&[]);
    let (code, _, err) = run(Command::new(bin("fleetwatch-exporter")).arg(format!("--web.listen-address=127.0.0.1:{port}")));
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")) && err.to_lowercase().contains("address already in use"), "{err}");
}

#[test]
fn bad_flags_exit_nonzero() {
    let (code, _, err) = run(Command::new(bin("fleetwatch-exporter")).args(["--log.format=xml", "--config.check"]));
    assert_eq!(code, 1);
    assert!(err.contains("--log.format"), "{err}");
    let (code, _, _) = run(Command::new(bin("fleetwatch-exporter")).args(["--collector.nosuch"]));
    assert_ne!(code, 0);
}

#[test]
fn sighup_reloads_config_and_keeps_running_on_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("exporter.yml");
    std::fs::write(&cfg, "collectors:\n  uname: true\n").unwrap();
    let (p, port) = exporter(&[&format!("--config.file={}", cfg.display())]);
    assert!(get(port, "/metrics", &[]).text().contains("node_uname_info{"));

    std::fs::write(&cfg, "collectors:\n  uname: false\n").unwrap();
    p.signal(libc::SIGHUP);
    support::eventually(Duration::from_secs(5), "uname collector disabled", || {
        (!get(port, "/metrics", &[]).text().contains("node_uname_info{")).then_some(())
    });

    std::fs::write(&cfg, "collectors:\n  unamee: true\n").unwrap();
    p.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    let body = get(port, "/metrics", &[]).text();
    assert!(body.contains("node_load1 ") && !body.contains("node_uname_info{"), "the previous config stays in force");
}

/// Real kernel: a tmpfs mounted and unmounted while the exporter runs appears and disappears
/// (the mount table is re-read when the kernel reports a change).
#[test]
fn filesystem_follows_mounts_and_unmounts() {
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var_os("CI").is_some() {
            panic!("filesystem_follows_mounts_and_unmounts needs root to mount a tmpfs");
        }
        eprintln!("SKIP filesystem_follows_mounts_and_unmounts: needs root to mount a tmpfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("fw-mnt");
    std::fs::create_dir(&mnt).unwrap();
    let (_p, port) = exporter(&["--collector.disable-defaults", "--collector.filesystem"]);
    let series = format!("node_filesystem_size_bytes{{device=\"fwtest\",fstype=\"tmpfs\",mountpoint=\"{}\"}} 1048576", mnt.display());
    assert!(!get(port, "/metrics", &[]).text().contains(&series));
    let (code, _, err) = run(Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "fwtest"]).arg(&mnt));
    assert_eq!(code, 0, "mount failed: {err}");
    let mounted = get(port, "/metrics", &[]).text();
    let _ = run(Command::new("umount").arg(&mnt));
    assert!(mounted.contains(&series), "new mount not reported");
    assert!(!get(port, "/metrics", &[]).text().contains(&series), "unmounted filesystem still reported");
}

#[test]
fn shipped_example_config_and_embedded_default_are_valid() {
    let example = support::repo_root().join("deploy/exporter.yml");
    let (code, out, err) =
        run(Command::new(bin("fleetwatch-exporter")).arg(format!("--config.file={}", example.display())).arg("--config.check"));
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(Command::new(bin("fleetwatch-exporter")).arg("--config.check"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cpu") && out.contains("textfile"), "{out}");
}
