//! The alerter's command line: `check metrics` against Debian's `promtool check metrics` on the
//! same inputs (same exit codes, same findings), `scrape URL`, `--config.check` with a located
//! error, the embedded default, and reloads by SIGHUP and `POST /-/reload`.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{alerter, bin, eventually, exporter, free_port, get, post, require, run, wait_port, Proc};

fn with_stdin(cmd: &mut Command, input: &str) -> (i32, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn findings(output: &str) -> Vec<String> {
    let mut v: Vec<String> = output.lines().filter(|l| !l.starts_with("error while linting")).map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn check_metrics_agrees_with_promtool() {
    if !require("promtool", "check_metrics_agrees_with_promtool") {
        return;
    }
    let cases = [
        "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n",
        "# TYPE requests counter\nrequests 1\n",
        "# HELP x_seconds_total X.\n# TYPE x_seconds_total gauge\nx_seconds_total 1\n",
        "# HELP latency_milliseconds L.\n# TYPE latency_milliseconds gauge\nlatency_milliseconds 3\n",
        "# HELP memFree M.\n# TYPE memFree gauge\nmemFree{someLabel=\"a\"} 1\n",
        "# HELP h_seconds H.\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 3\nh_seconds_count 2\n",
        "# HELP g G.\n# TYPE g gauge\ng{le=\"1\"} 1\n",
        "# HELP uptime_h U.\n# TYPE uptime_h gauge\nuptime_h 1\n",
        "# HELP job:requests:rate5m R.\n# TYPE job:requests:rate5m gauge\njob:requests:rate5m 1\n",
        "# HELP requests_counter R.\n# TYPE requests_counter gauge\nrequests_counter 1\n",
        "# HELP x_seconds_counter X.\nx_seconds_counter 1\n",
        "# HELP size_kilobytes S.\n# TYPE size_kilobytes gauge\nsize_kilobytes 1\n",
        "# HELP q Q.\n# TYPE q gauge\nq{quantile=\"0.5\"} 1\n",
        "# HELP c_count C.\n# TYPE c_count gauge\nc_count 1\n",
        "a{b=\"1\" 1\n",
        "# HELP a A.\n# TYPE a gauge\na 1 2 3\n",
    ];
    for input in cases {
        let (p_code, p_out) = with_stdin(Command::new("promtool").args(["check", "metrics"]), input);
        let (o_code, o_out) = with_stdin(Command::new(bin("fleetwatch-alerter")).args(["check", "metrics"]), input);
        assert_eq!(o_code, p_code, "exit codes differ for {input:?}\npromtool: {p_out}\nalerter: {o_out}");
        if p_code != 1 {
            assert_eq!(findings(&o_out), findings(&p_out), "findings differ for {input:?}");
        }
    }
}

#[test]
fn check_metrics_on_a_real_exporter_matches_promtool() {
    if !require("promtool", "check_metrics_on_a_real_exporter") {
        return;
    }
    let (_e, port) = exporter(&[]);
    let body = get(port, "/metrics", &[]).text();
    let (p_code, p_out) = with_stdin(Command::new("promtool").args(["check", "metrics"]), &body);
    let (o_code, o_out) = with_stdin(Command::new(bin("fleetwatch-alerter")).args(["check", "metrics"]), &body);
    assert_eq!((o_code, findings(&o_out)), (p_code, findings(&p_out)));
}

#[test]
fn scrape_prints_the_parsed_samples() {
    let (_e, port) = exporter(&[]);
    let (code, out, err) = run(Command::new(bin("fleetwatch-alerter")).args(["scrape", &format!("http://127.0.0.1:{port}/metrics")]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("# TYPE node_load1 gauge"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("node_cpu_seconds_total{cpu=\"0\", mode=\"idle\"} ")), "{out}");
    assert!(err.contains("OpenMetrics"), "the exporter answers OpenMetrics to Prometheus's Accept header: {err}");
    let (code, _, err) =
        run(Command::new(bin("fleetwatch-alerter")).args(["scrape", &format!("http://127.0.0.1:{}/metrics", free_port())]));
    assert_eq!(code, 1);
    assert!(err.contains("scrape failed"), "{err}");
}

#[test]
fn config_check_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    static_config: []\n").unwrap();
    let (code, _, err) =
        run(Command::new(bin("fleetwatch-alerter")).arg(format!("--config.file={}", path.display())).arg("--config.check"));
    assert_eq!(code, 1);
    assert!(err.contains("bad.yml:5:") && err.contains("static_config"), "{err}");
    let (code, out, err) = run(Command::new(bin("fleetwatch-alerter")).arg("--config.check"));
    assert_eq!(code, 0, "the embedded default must be valid: {err}");
    assert!(out.contains("1 scrape configs"), "{out}");
}

#[test]
fn embedded_default_scrapes_the_local_exporter_port() {
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin("fleetwatch-alerter"));
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}")).arg(format!("--storage.path={}", data.path().display()));
    let _a = Proc::spawn("fleetwatch-alerter", &mut cmd);
    wait_port(port, "fleetwatch-alerter");
    let v = eventually(Duration::from_secs(10), "the default target", || {
        let v: serde_json::Value = serde_json::from_slice(&get(port, "/api/v1/targets", &[]).body).unwrap();
        (!v["data"]["activeTargets"][0].is_null()).then_some(v)
    });
    assert_eq!(v["data"]["activeTargets"][0]["scrapeUrl"], "http://127.0.0.1:9910/metrics", "{v}");
    let metrics = get(port, "/metrics", &[]).text();
    let rules: f64 = metrics.lines().find_map(|l| l.strip_prefix("fleetwatch_alerter_rules ")).unwrap().parse().unwrap();
    assert!(rules >= 10.0, "the shipped rules are loaded: {rules}");
}

#[test]
fn reload_by_sighup_and_post() {
    let (_e, exporter_port) = exporter(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    let config = |job: &str| {
        format!("global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n  - job_name: {job}\n    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n")
    };
    std::fs::write(&path, config("first")).unwrap();
    let (a, port) = alerter(&path, &[]);
    let pool = || {
        let v: serde_json::Value = serde_json::from_slice(&get(port, "/api/v1/targets", &[]).body).unwrap();
        v["data"]["activeTargets"][0]["scrapePool"].as_str().unwrap_or("").to_string()
    };
    eventually(Duration::from_secs(10), "first target", || (pool() == "first").then_some(()));
    std::fs::write(&path, config("second")).unwrap();
    a.signal(libc::SIGHUP);
    eventually(Duration::from_secs(10), "SIGHUP reload", || (pool() == "second").then_some(()));
    std::fs::write(&path, config("third")).unwrap();
    assert_eq!(post(port, "/-/reload", "text/plain", "").status, 200);
    eventually(Duration::from_secs(10), "POST reload", || (pool() == "third").then_some(()));
    // A bad file keeps the running config and says why.
    std::fs::write(&path, "scrape_configs: [{job_name: x, bogus: 1}]\n").unwrap();
    let r = post(port, "/-/reload", "text/plain", "");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("bogus"), "{}", r.text());
    assert_eq!(pool(), "third");
    assert!(get(port, "/metrics", &[]).text().contains("fleetwatch_alerter_config_last_reload_successful 0"));
    assert_eq!(get(port, "/-/healthy", &[]).status, 200);
    assert_eq!(get(port, "/-/ready", &[]).status, 200);
}
