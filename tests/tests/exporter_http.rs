//! The exporter's HTTP surface against real clients: both exposition formats, gzip, the
//! max-requests limit, collector filters, TLS (server and client certificates, via curl), and
//! basic auth with a web config that is re-read when it changes.

mod support;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;
use support::{exporter, get, require, run, Pki};

const PROMETHEUS_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[test]
fn serves_text_openmetrics_and_gzip() {
    let (_p, port) = exporter(&[]);
    let text = get(port, "/metrics", &[]);
    assert_eq!(text.status, 200);
    assert_eq!(text.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let body = text.text();
    assert!(body.contains("# TYPE node_cpu_seconds_total counter\n"));
    assert!(body.contains("\nnode_load1 "));
    assert!(body.contains("fleetwatch_exporter_scrape_collector_success{collector=\"cpu\"} 1\n"));
    assert!(body.contains("fleetwatch_exporter_build_info{"));
    assert!(body.contains("\nprocess_resident_memory_bytes "));
    assert!(!body.contains("# EOF"));

    let om = get(port, "/metrics", &[("Accept", PROMETHEUS_ACCEPT)]);
    assert_eq!(om.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    let om_body = om.text();
    assert!(om_body.ends_with("# EOF\n"));
    assert!(om_body.contains("# TYPE node_cpu_seconds counter\n"));
    assert!(om_body.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}"));

    let gz = get(port, "/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&gz.body[..]).read_to_string(&mut plain).unwrap();
    assert!(plain.contains("# TYPE node_load1 gauge"));

    assert_eq!(get(port, "/healthz", &[]).status, 200);
    let landing = get(port, "/", &[]);
    assert!(landing.text().contains("href=\"/metrics\""));
    assert_eq!(get(port, "/nope", &[]).status, 404);
}

#[test]
fn collect_and_exclude_filter_collectors() {
    let (_p, port) = exporter(&[]);
    let only = get(port, "/metrics?collect[]=loadavg&collect%5B%5D=uname", &[]).text();
    assert!(only.contains("node_load1 ") && only.contains("node_uname_info{"));
    assert!(!only.contains("node_cpu_seconds_total"));
    assert!(!only.contains("collector=\"cpu\""));
    let without = get(port, "/metrics?exclude[]=cpu", &[]).text();
    assert!(!without.contains("node_cpu_seconds_total") && without.contains("node_load1 "));
    assert_eq!(get(port, "/metrics?collect[]=nosuch", &[]).status, 400);
    assert_eq!(get(port, "/metrics?collect[]=cpu&exclude[]=uname", &[]).status, 400);
}

/// A procfs whose `stat` is a FIFO: a scrape of the cpu collector blocks until we write to it.
#[test]
fn answers_503_beyond_max_requests() {
    let dir = tempfile::tempdir().unwrap();
    let proc_dir = dir.path().join("proc");
    std::fs::create_dir(&proc_dir).unwrap();
    let fifo = proc_dir.join("stat");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let procfs = format!("--path.procfs={}", proc_dir.display());
    let (_p, port) = exporter(&["--web.max-requests=1", "--collector.disable-defaults", "--collector.cpu", &procfs]);

    let blocked = std::thread::spawn(move || get(port, "/metrics", &[]));
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let rejected = get(port, "/metrics", &[]);
    assert_eq!(rejected.status, 503);
    assert!(started.elapsed() < Duration::from_secs(1), "503 must be immediate");
    assert_eq!(get(port, "/healthz", &[]).status, 200, "other routes are not limited");

    std::fs::OpenOptions::new().write(true).open(&fifo).unwrap().write_all(b"cpu0 100 0 100 100 0 0 0 0 0 0\n").unwrap();
    let first = blocked.join().unwrap();
    assert_eq!(first.status, 200);
    assert!(first.text().contains("node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 1\n"));
}

fn curl(args: &[&str]) -> (i32, String) {
    let (code, out, err) = run(Command::new("curl").args(["-s", "-S", "--max-time", "10"]).args(args));
    (code, format!("{out}{err}"))
}

#[test]
fn tls_with_server_and_client_certificates() {
    if !require("curl", "tls_with_server_and_client_certificates") {
        return;
    }
    let pki = Pki::new();
    let web = pki.dir.path().join("web.yml");
    std::fs::write(&web, format!("tls_server_config:\n  cert_file: {}\n  key_file: {}\n", pki.path("server.pem"), pki.path("server.key")))
        .unwrap();
    let (_p, port) = exporter(&[&format!("--web.config.file={}", web.display())]);
    let url = format!("https://127.0.0.1:{port}/metrics");
    let (code, out) = curl(&["--cacert", &pki.path("ca.pem"), &url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("node_load1 "));
    let (code, _) = curl(&[&url]);
    assert_ne!(code, 0, "an unknown CA must be rejected by the client");
    let (code, _) = curl(&[&format!("http://127.0.0.1:{port}/metrics"), "-f"]);
    assert_ne!(code, 0, "plain HTTP must not be served on a TLS listener");

    // Require verified client certificates: without one the handshake fails, with one it works.
    let mtls = pki.dir.path().join("mtls.yml");
    std::fs::write(
        &mtls,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n  min_version: TLS13\n",
            pki.path("server.pem"),
            pki.path("server.key"),
            pki.path("ca.pem")
        ),
    )
    .unwrap();
    let (_p2, port2) = exporter(&[&format!("--web.config.file={}", mtls.display())]);
    let url2 = format!("https://127.0.0.1:{port2}/metrics");
    let (code, _) = curl(&["--cacert", &pki.path("ca.pem"), &url2]);
    assert_ne!(code, 0, "no client certificate must fail");
    let (code, out) = curl(&["--cacert", &pki.path("ca.pem"), "--cert", &pki.path("client.pem"), "--key", &pki.path("client.key"), &url2]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("node_load1 "));
    let (code, _) = curl(&[
        "--cacert",
        &pki.path("ca.pem"),
        "--tls-max",
        "1.2",
        "--cert",
        &pki.path("client.pem"),
        "--key",
        &pki.path("client.key"),
        &url2,
    ]);
    assert_ne!(code, 0, "TLS 1.2 is below min_version TLS13");
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

#[test]
fn basic_auth_and_web_config_reload() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {hash}\n")).unwrap();
    let (_p, port) = exporter(&[&format!("--web.config.file={}", web.display())]);
    assert_eq!(get(port, "/metrics", &[]).status, 401);
    let wrong = get(port, "/metrics", &[("Authorization", &basic("prometheus", "nope"))]);
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("www-authenticate"), Some("Basic"));
    assert_eq!(get(port, "/metrics", &[("Authorization", &basic("other", "s3cret"))]).status, 401);
    let ok = get(port, "/metrics", &[("Authorization", &basic("prometheus", "s3cret"))]);
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains("node_load1 "));

    // A changed file is picked up without a restart.
    let new_hash = bcrypt::hash("rotated", 4).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {new_hash}\n")).unwrap();
    support::eventually(Duration::from_secs(5), "new password accepted", || {
        (get(port, "/metrics", &[("Authorization", &basic("prometheus", "rotated"))]).status == 200).then_some(())
    });
    assert_eq!(get(port, "/metrics", &[("Authorization", &basic("prometheus", "s3cret"))]).status, 401);
}
