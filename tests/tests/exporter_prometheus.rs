//! The exporter against the real Prometheus tools: Debian's `promtool check metrics` (no lint
//! problem that node_exporter's own output does not also get), a real `prometheus` server
//! scraping it (`up == 1`, `node_load1` queryable), and every panel query of every dashboard in
//! `dashboards/` returning data from that server (with health checks configured, for
//! `health.json`, and a git root holding a repository with recent commits, an upstream and a
//! stash, for `activity.json`, also watched by the activity collector, which counts the user the
//! test runs as).

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{exporter, free_port, get, require, wait_port, Pki, Proc, Prometheus};

const SAME_COLLECTORS: [&str; 11] = [
    "--collector.disable-defaults",
    "--collector.cpu",
    "--collector.meminfo",
    "--collector.loadavg",
    "--collector.filesystem",
    "--collector.diskstats",
    "--collector.netdev",
    "--collector.stat",
    "--collector.time",
    "--collector.uname",
    "--collector.pressure",
];

/// Runs `promtool check metrics` on an exposition; returns (exit code, lint lines).
fn promtool_lint(body: &str) -> (i32, Vec<String>) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text.lines().map(str::to_string).collect())
}

#[test]
fn promtool_finds_no_lint_problem_node_exporter_does_not_have() {
    if !require("promtool", "promtool_check_metrics") || !require("prometheus-node-exporter", "promtool_check_metrics") {
        return;
    }
    let (_ours, port) = exporter(&SAME_COLLECTORS);
    let ne_port = free_port();
    let mut cmd = Command::new("prometheus-node-exporter");
    cmd.arg(format!("--web.listen-address=127.0.0.1:{ne_port}")).args(SAME_COLLECTORS).stderr(Stdio::null());
    let _ne = Proc::spawn("node_exporter", &mut cmd);
    wait_port(ne_port, "node_exporter");

    let (code, ours) = promtool_lint(&get(port, "/metrics", &[]).text());
    assert_ne!(code, 1, "promtool could not parse our output: {ours:?}");
    let (_, theirs) = promtool_lint(&get(ne_port, "/metrics", &[]).text());
    let theirs: BTreeSet<String> = theirs.into_iter().collect();
    let extra: Vec<&String> = ours.iter().filter(|l| !theirs.contains(*l)).collect();
    assert!(extra.is_empty(), "lint problems node_exporter does not have: {extra:#?}");
}

/// Every `expr` in a dashboard, with the panel title, from panels nested in rows too.
fn dashboard_queries(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            let title = map.get("title").and_then(Value::as_str).unwrap_or(title).to_string();
            if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                out.push((title.clone(), expr.to_string()));
            }
            for (k, child) in map {
                if k != "templating" {
                    dashboard_queries(child, &title, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_queries(i, title, out)),
        _ => {}
    }
}

/// Panels that may rightly be empty on this machine: (dashboard file, expression fragment, why).
const MAY_BE_EMPTY: &[(&str, &str, &str)] = &[
    ("containers.json", "container_fs_", "the test's container cgroup only sleeps: no block I/O, so no per-device rows"),
    (
        "containers.json",
        "container_network_",
        "the test's container process shares the test's network namespace, which is not reported when it is the host's (PID 1's)",
    ),
];

/// Runs git in `dir` (commits dated now) with a fixed identity and no user config.
fn git(home: &std::path::Path, dir: &std::path::Path, args: &[&str]) {
    support::git_as_alice(home, dir, None, args);
}

/// `projects/app`: a clone of a local `origin` with two commits of its own (ahead 2), a stash
/// and a staged, an unstaged and an untracked file. Returns the `projects` directory.
fn git_projects(dir: &std::path::Path) -> std::path::PathBuf {
    let (home, origin, projects) = (dir.join("home"), dir.join("origin"), dir.join("projects"));
    for d in [&home, &origin, &projects] {
        std::fs::create_dir_all(d).unwrap();
    }
    git(&home, &origin, &["init", "-q", "-b", "main"]);
    std::fs::write(origin.join("README"), "hello\n").unwrap();
    git(&home, &origin, &["add", "-A"]);
    git(&home, &origin, &["commit", "-q", "-m", "first"]);
    git(&home, &projects, &["clone", "-q", origin.to_str().unwrap(), "app"]);
    let app = projects.join("app");
    for (file, text) in [("a.txt", "a\nb\n"), ("b.txt", "c\n")] {
        std::fs::write(app.join(file), text).unwrap();
        git(&home, &app, &["add", "-A"]);
        git(&home, &app, &["commit", "-q", "-m", file]);
    }
    std::fs::write(app.join("a.txt"), "stashed\n").unwrap();
    git(&home, &app, &["stash", "-q"]);
    std::fs::write(app.join("c.txt"), "staged\n").unwrap();
    git(&home, &app, &["add", "c.txt"]);
    std::fs::write(app.join("b.txt"), "changed\n").unwrap();
    std::fs::write(app.join("notes.txt"), "untracked\n").unwrap();
    projects
}

#[test]
fn prometheus_scrapes_exporter_and_every_dashboard_query_has_data() {
    if !require("prometheus", "prometheus_scrapes_exporter") || !require("git", "prometheus_scrapes_exporter") {
        return;
    }
    // Health checks so that dashboards/health.json has data: plain HTTP against a static server,
    // HTTPS against a second exporter serving TLS (certificate expiry panels).
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("tls_server_config:\n  cert_file: {}\n  key_file: {}\n", pki.path("server.pem"), pki.path("server.key")))
        .unwrap();
    let (_tls_exporter, tls_port) = exporter(&["--collector.disable-defaults", &format!("--web.config.file={}", web.display())]);
    let plain_port = support::static_server("text/plain", "ok\n".to_string());
    let projects = git_projects(dir.path());
    // The activity collector counts the user the test runs as and watches the git projects.
    let me = support::run(Command::new("id").arg("-un")).1.trim().to_string();
    let config = dir.path().join("exporter.yml");
    std::fs::write(
        &config,
        format!(
            "health:\n  interval: 1s\n  checks:\n    - {{name: web, url: 'http://127.0.0.1:{plain_port}/'}}\n    - name: tls\n      url: 'https://127.0.0.1:{tls_port}/healthz'\n      tls_config: {{ca_file: '{}'}}\ngit:\n  roots: ['{}']\n  refresh_interval: 1s\nactivity:\n  users: ['{}']\n  roots: ['{}']\n  interval: 1s\n",
            pki.path("ca.pem"),
            projects.display(),
            me,
            projects.display()
        ),
    )
    .unwrap();
    // A cgroup named like a Docker container, with limits and a sleeping process, so that
    // dashboards/containers.json has data (needs root; elsewhere its panels are not checked).
    let containers = support::cgroups_writable("every_dashboard_query_has_data (containers.json)");
    let _container = containers.then(|| {
        let mut c = support::FakeContainer::create(&support::fake_container_id(7));
        c.limit(256 << 20);
        c.start_sleeper();
        c
    });
    let (_exporter, port) = exporter(&[&format!("--config.file={}", config.display())]);
    let prom = Prometheus::scraping("fleetwatch", port);
    support::eventually(Duration::from_secs(30), "up == 1", || {
        let r = prom.query("up{job=\"fleetwatch\"} == 1");
        (!r.is_empty()).then_some(())
    });
    let load = prom.query("node_load1{job=\"fleetwatch\"}");
    assert_eq!(load.len(), 1, "{load:?}");
    assert_eq!(load[0]["metric"]["instance"], format!("127.0.0.1:{port}"));
    // Rates need two samples in the window.
    support::eventually(Duration::from_secs(30), "rate() data", || {
        (!prom.query("rate(node_cpu_seconds_total[1m])").is_empty()).then_some(())
    });
    support::eventually(Duration::from_secs(30), "health checks in Prometheus", || {
        (prom.query("probe_ssl_earliest_cert_expiry{check=\"tls\"}").len() == 1
            && prom.query("probe_success{check=\"web\"} == 1").len() == 1)
            .then_some(())
    });
    support::eventually(Duration::from_secs(30), "git repositories in Prometheus", || {
        (prom.query("git_repo_ahead_commits{repo=\"app\"}").len() == 1).then_some(())
    });
    support::eventually(Duration::from_secs(30), "activity samples in Prometheus", || {
        (!prom.query("activity_top_process_cpu_ratio").is_empty() && !prom.query("activity_cpu_busy_ratio").is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));

    let instance = format!("127.0.0.1:{port}");
    let mut empty = Vec::new();
    let mut checked = 0;
    let dir = support::repo_root().join("dashboards");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards found in {}", dir.display());
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name == "containers.json" && !containers {
            continue;
        }
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut queries = Vec::new();
        dashboard_queries(&json["panels"], "", &mut queries);
        assert!(!queries.is_empty(), "{name} has no queries");
        for (title, expr) in queries {
            let q = expr
                .replace("$__rate_interval", "1m")
                .replace("${job}", "fleetwatch")
                .replace("$job", "fleetwatch")
                .replace("${instance}", &instance)
                .replace("$instance", &instance)
                .replace("${check}", ".*")
                .replace("$check", ".*")
                .replace("${repo}", ".*")
                .replace("$repo", ".*")
                .replace("${window}", "24h")
                .replace("$window", "24h")
                .replace("${name}", ".*")
                .replace("$name", ".*");
            assert!(!q.contains('$'), "{name} / {title}: unsubstituted variable in {expr}");
            checked += 1;
            if prom.query(&q).is_empty() && !MAY_BE_EMPTY.iter().any(|(f, frag, _)| *f == name && expr.contains(frag)) {
                empty.push(format!("{name} / {title}: {expr}"));
            }
        }
    }
    assert!(empty.is_empty(), "{} of {checked} dashboard queries returned nothing:\n{}", empty.len(), empty.join("\n"));
    eprintln!("{checked} dashboard queries returned data");
}
