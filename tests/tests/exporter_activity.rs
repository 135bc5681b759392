//! The `activity` collector end to end, against the real exporter binary: the idle action runs
//! exactly once per idle period after `idle.after` and is held off by activity (a busy process,
//! file changes); a real SSH login through Debian's OpenSSH server shows in
//! `activity_ssh_sessions` and disappears after logout (so does a session without a terminal);
//! file changes under a root, in new directories too, show in
//! `activity_file_modifications_total`, excluded ones do not.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{eventually, exporter, get, run, Proc};

/// The value of a sample (`name` or `name{labels}` exactly as exposed), if present.
fn value(port: u16, series: &str) -> Option<f64> {
    let text = get(port, "/metrics", &[]).text();
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

/// The user the test runs as.
fn me() -> String {
    let (_, out, _) = run(Command::new("id").arg("-un"));
    out.trim().to_string()
}

/// A copy of `yes` named `fwbusy` writing to /dev/null: a process that uses a whole CPU.
fn busy_process(dir: &Path) -> Proc {
    let exe = dir.join("fwbusy");
    std::fs::copy("/usr/bin/yes", &exe).unwrap();
    Proc::spawn("fwbusy", Command::new(&exe).stdout(Stdio::null()))
}

fn idle_config(dir: &Path, projects: &Path) -> PathBuf {
    let config = dir.join("exporter.yml");
    let marker = dir.join("marker");
    let warned = dir.join("warned");
    std::fs::write(
        &config,
        format!(
            r#"activity:
  roots: ['{projects}']
  users: ['{me}']
  interval: 1s
  utmp_path: '{utmp}'
  event_log: {{path: '{events}'}}
  idle:
    # The test machine's CPU is shared with other work: only the conditions under test count.
    cpu_busy_below: 1.5
    count_ssh: false
    after: 3s
    busy_processes: [fwbusy]
    action:
      command: [sh, -c, 'echo fired >> "$0"', '{marker}']
      warn_command: [sh, -c, 'echo warned >> "$0"', '{warned}']
      warn_before: 2s
      timeout: 10s
"#,
            projects = projects.display(),
            me = me(),
            utmp = dir.join("no-utmp").display(),
            events = dir.join("events.jsonl").display(),
            marker = marker.display(),
            warned = warned.display(),
        ),
    )
    .unwrap();
    config
}

#[test]
fn idle_action_runs_once_after_the_idle_period_and_activity_holds_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects");
    std::fs::create_dir_all(projects.join("app")).unwrap();
    let config = idle_config(dir.path(), &projects);
    let marker = dir.path().join("marker");
    let mut busy = Some(busy_process(dir.path()));
    let started = Instant::now();
    let (_exporter, port) =
        exporter(&["--collector.disable-defaults", "--collector.activity", &format!("--config.file={}", config.display())]);

    // A busy process keeps the machine active well past `after` (3 s).
    eventually(Duration::from_secs(10), "activity_idle 0 with the busy process", || {
        (value(port, "activity_idle") == Some(0.0)).then_some(())
    });
    while started.elapsed() < Duration::from_secs(6) {
        assert_eq!(value(port, "activity_idle"), Some(0.0));
        std::thread::sleep(Duration::from_millis(250));
    }
    // File changes in a root keep it active too. They count once gathered (about a second), so
    // the touching starts before the busy process goes, for one unbroken active period.
    let touching = Instant::now();
    while touching.elapsed() < Duration::from_secs(7) {
        if touching.elapsed() > Duration::from_secs(2) {
            busy.take();
        }
        // A new file each time: changes to one path are gathered for a second before they count,
        // which with a 1 s interval could leave one sample without a change.
        let n = touching.elapsed().as_millis();
        std::fs::write(projects.join(format!("app/f{n}.rs")), format!("{n}")).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(lines(&marker), 0, "the idle action ran while the machine was active");
    assert_eq!(value(port, "activity_idle_actions_total"), Some(0.0));

    // Quiet: the action runs once `after` into the idle period, the warning two seconds before.
    eventually(Duration::from_secs(20), "the idle action's marker", || (lines(&marker) == 1).then_some(()));
    let idle_for = value(port, "activity_idle_seconds").unwrap();
    assert!(idle_for >= 2.0, "acted after {idle_for} s idle");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lines(&marker), 1, "the idle action ran more than once in one idle period");
    assert_eq!(lines(&dir.path().join("warned")), 1);
    assert_eq!(value(port, "activity_idle"), Some(1.0));
    assert_eq!(value(port, "activity_idle_actions_total"), Some(1.0));
    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let kinds: Vec<String> =
        events.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event_type"].as_str().unwrap().to_string()).collect();
    assert!(kinds.contains(&"activity_detected".to_string()), "{events}");
    assert_eq!(kinds.iter().filter(|k| *k == "idle_started").count(), 1, "{events}");
    assert_eq!(kinds.iter().filter(|k| *k == "idle_action").count(), 1, "{events}");
    // Every file written while touching is in some event's modified_files.
    let modified: u64 =
        events.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["details"]["modified_files"].as_u64().unwrap()).sum();
    assert!(modified >= 10, "{modified} file modifications logged: {events}");

    // Activity starts a new idle period: the busy process resets it, and the action runs again.
    let busy = busy_process(dir.path());
    eventually(Duration::from_secs(10), "activity_idle 0 again", || (value(port, "activity_idle") == Some(0.0)).then_some(()));
    drop(busy);
    eventually(Duration::from_secs(20), "the second idle period's action", || (lines(&marker) == 2).then_some(()));
}

/// Runs as root only (sshd, useradd, /run/utmp); says so loudly otherwise, fails in CI.
fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root");
    }
    eprintln!("SKIP {test}: needs root (sshd, useradd, /run/utmp)");
    false
}

const SSH_USER: &str = "fwactivity";

/// The test user, created when missing, with a password that is not locked (sshd refuses locked
/// accounts without PAM) and that no one can log in with.
fn ssh_user() {
    if run(Command::new("id").arg(SSH_USER)).0 != 0 {
        let (code, _, err) = run(Command::new("useradd").args(["-m", "-s", "/bin/sh", SSH_USER]));
        assert_eq!(code, 0, "useradd: {err}");
    }
    let (code, _, err) = run(Command::new("usermod").args(["-p", "*", SSH_USER]));
    assert_eq!(code, 0, "usermod: {err}");
}

fn keygen(path: &Path) {
    let (code, _, err) = run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", ""]).arg("-f").arg(path));
    assert_eq!(code, 0, "ssh-keygen: {err}");
}

/// Debian's sshd on 127.0.0.1:`port`, key auth for the test user only.
fn sshd(dir: &Path, port: u16) -> Proc {
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    // sshd reads the keys file as the user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.join("authorized_keys"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile none\nUsePAM no\nStrictModes no\nAuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowUsers {SSH_USER}\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.args(["-D", "-e", "-f"]).arg(dir.join("sshd_config")).stderr(Stdio::null());
    let p = Proc::spawn("sshd", &mut cmd);
    support::wait_port(port, "sshd");
    p
}

#[test]
fn a_real_ssh_login_is_counted_while_it_lasts() {
    let test = "a_real_ssh_login_is_counted_while_it_lasts";
    if !root_or_skip(test) || !support::require("ssh", test) || !support::require("ssh-keygen", test) {
        return;
    }
    assert!(Path::new("/usr/sbin/sshd").exists() || std::env::var_os("CI").is_none(), "{test}: openssh-server is not installed");
    if !Path::new("/usr/sbin/sshd").exists() {
        eprintln!("SKIP {test}: /usr/sbin/sshd is missing (tests/run.sh installs openssh-server)");
        return;
    }
    ssh_user();
    // sshd writes its login records to /run/utmp only when the file exists.
    if !Path::new("/run/utmp").exists() {
        std::fs::write("/run/utmp", b"").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let _sshd = sshd(dir.path(), port);
    let config = dir.path().join("exporter.yml");
    std::fs::write(&config, format!("activity:\n  users: [{SSH_USER}]\n  interval: 1s\n  utmp_path: /run/utmp\n")).unwrap();
    let (_exporter, exporter_port) =
        exporter(&["--collector.disable-defaults", "--collector.activity", &format!("--config.file={}", config.display())]);
    eventually(Duration::from_secs(10), "no SSH session at first", || {
        (value(exporter_port, "activity_ssh_sessions") == Some(0.0)).then_some(())
    });

    let ssh = |tty: &str| {
        let mut ssh = Command::new("ssh");
        ssh.arg(tty)
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .arg("-i")
            .arg(dir.path().join("client_key"))
            .args(["-p", &port.to_string(), &format!("{SSH_USER}@127.0.0.1")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        ssh
    };
    let mut session = ssh("-tt").spawn().unwrap();
    let user_sessions = format!("activity_user_sessions{{user=\"{SSH_USER}\"}}");
    eventually(Duration::from_secs(20), "activity_ssh_sessions 1 while logged in", || {
        (value(exporter_port, "activity_ssh_sessions") == Some(1.0)).then_some(())
    });
    assert_eq!(value(exporter_port, &user_sessions), Some(1.0));

    session.stdin.as_mut().unwrap().write_all(b"exit\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ssh did not log out");
        std::thread::sleep(Duration::from_millis(100));
    }
    eventually(Duration::from_secs(20), "activity_ssh_sessions 0 after logout", || {
        (value(exporter_port, "activity_ssh_sessions") == Some(0.0)).then_some(())
    });
    assert_eq!(value(exporter_port, &user_sessions), Some(0.0));

    // A session without a terminal (`ssh host cmd`, as IDE remotes use) has no utmp record: it
    // is counted from its `sshd: user@notty` process, while it lasts.
    let mut command = ssh("-T").arg("sleep 30").spawn().unwrap();
    eventually(Duration::from_secs(20), "the notty session counted", || {
        (value(exporter_port, "activity_ssh_sessions") == Some(1.0)).then_some(())
    });
    command.kill().unwrap();
    command.wait().unwrap();
    eventually(Duration::from_secs(20), "the notty session gone", || {
        (value(exporter_port, "activity_ssh_sessions") == Some(0.0)).then_some(())
    });
}

#[test]
fn file_changes_under_a_root_are_counted_through_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects");
    std::fs::create_dir_all(projects.join("app/node_modules/dep")).unwrap();
    std::fs::write(projects.join("app/main.rs"), "fn main() {}\n").unwrap();
    let config = dir.path().join("exporter.yml");
    std::fs::write(&config, format!("activity:\n  roots: ['{}']\n  users: []\n  interval: 1s\n", projects.display())).unwrap();
    let (_exporter, port) =
        exporter(&["--collector.disable-defaults", "--collector.activity", &format!("--config.file={}", config.display())]);
    let root = projects.display().to_string();
    let total = format!("activity_file_modifications_total{{root=\"{root}\"}}");
    let inotify = format!("activity_watched_directories{{root=\"{root}\",mode=\"inotify\"}}");
    // projects, app (node_modules is excluded).
    eventually(Duration::from_secs(10), "the root watched", || (value(port, &inotify) == Some(2.0)).then_some(()));
    assert_eq!(value(port, &total), Some(0.0));

    // Excluded: nothing counts.
    std::fs::write(projects.join("app/node_modules/dep/index.js"), "x").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(value(port, &total), Some(0.0), "a change under node_modules/ was counted");

    // A modification, a new directory with a file in it, a rename and a delete: 5 changes
    // (the new directory itself counts too).
    std::fs::write(projects.join("app/main.rs"), "fn main() { println!(); }\n").unwrap();
    std::fs::create_dir(projects.join("app/src")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(projects.join("app/src/lib.rs"), "\n").unwrap();
    std::fs::rename(projects.join("app/src/lib.rs"), projects.join("app/src/mod.rs")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::remove_file(projects.join("app/src/mod.rs")).unwrap();
    let n = eventually(Duration::from_secs(10), "the changes counted", || value(port, &total).filter(|n| *n >= 4.0));
    assert!(n >= 4.0, "{n}");
    eventually(Duration::from_secs(10), "the new directory watched", || (value(port, &inotify) == Some(3.0)).then_some(()));
    let last = format!("activity_last_file_modification_timestamp_seconds{{root=\"{root}\"}}");
    let at = value(port, &last).expect("last modification time");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - at).abs() < 60.0, "{at} vs {now}");
}
