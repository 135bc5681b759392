//! The alerter's scrape client against a real exporter behind TLS with client certificates and
//! basic auth (the exporter-toolkit web config of fleetwatch-exporter), and HTTP service
//! discovery from a server answering Prometheus's HTTP SD JSON.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::{alerter, eventually, exporter, get, static_server, Pki};

fn targets(port: u16) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&get(port, "/api/v1/targets", &[]).body).unwrap();
    v["data"]["activeTargets"].as_array().cloned().unwrap_or_default()
}

fn health_of(port: u16, job: &str) -> Option<(String, String)> {
    let all = targets(port);
    let t = all.iter().find(|t| t["scrapePool"] == job)?;
    (t["health"] != "unknown").then(|| (t["health"].as_str().unwrap().to_string(), t["lastError"].as_str().unwrap().to_string()))
}

#[test]
fn scrapes_over_mutual_tls_with_basic_auth() {
    let pki = Pki::new();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = pki.dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\nbasic_auth_users:\n  prom: '{hash}'\n",
            pki.path("server.pem"),
            pki.path("server.key"),
            pki.path("ca.pem")
        ),
    )
    .unwrap();
    let (_e, exporter_port) = exporter(&[&format!("--web.config.file={}", web.display())]);
    std::fs::write(pki.dir.path().join("password"), "s3cret\n").unwrap();
    std::fs::write(pki.dir.path().join("wrong"), "nope\n").unwrap();
    let dir = pki.dir.path().display().to_string();
    let job = |name: &str, password_file: &str, client_cert: bool| {
        let cert =
            if client_cert { format!("\n      cert_file: {dir}/client.pem\n      key_file: {dir}/client.key") } else { String::new() };
        format!(
            "  - job_name: {name}\n    scheme: https\n    basic_auth: {{username: prom, password_file: {dir}/{password_file}}}\n    tls_config:\n      ca_file: {dir}/ca.pem{cert}\n    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
        )
    };
    let config = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n{}{}{}",
        job("ok", "password", true),
        job("wrong_password", "wrong", true),
        job("no_client_cert", "password", false)
    );
    let path = pki.dir.path().join("alerter.yml");
    std::fs::write(&path, config).unwrap();
    let (_a, port) = alerter(&path, &[]);
    let ok = eventually(Duration::from_secs(15), "ok scraped", || health_of(port, "ok"));
    assert_eq!(ok, ("up".to_string(), String::new()));
    let wrong = eventually(Duration::from_secs(15), "wrong_password scraped", || health_of(port, "wrong_password"));
    assert_eq!(wrong, ("down".to_string(), "server returned HTTP status 401 Unauthorized".to_string()));
    let no_cert = eventually(Duration::from_secs(15), "no_client_cert scraped", || health_of(port, "no_client_cert"));
    assert_eq!(no_cert.0, "down", "{no_cert:?}");
    // Rotating the password file takes effect without a reload.
    std::fs::write(pki.dir.path().join("wrong"), "s3cret\n").unwrap();
    eventually(Duration::from_secs(15), "rotated password works", || (health_of(port, "wrong_password")?.0 == "up").then_some(()));
}

#[test]
fn http_service_discovery_finds_targets() {
    let (_e, exporter_port) = exporter(&[]);
    let sd_body = format!(r#"[{{"targets": ["127.0.0.1:{exporter_port}"], "labels": {{"team": "infra", "__meta_x": "y"}}}}]"#);
    let sd_port = static_server("application/json", sd_body);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerter.yml");
    std::fs::write(
        &path,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n  - job_name: sd\n    http_sd_configs: [{{url: 'http://127.0.0.1:{sd_port}/targets', refresh_interval: 1s}}]\n    relabel_configs:\n      - {{source_labels: [__meta_x], target_label: from_meta}}\n"
        ),
    )
    .unwrap();
    let (_a, port) = alerter(&path, &[]);
    let t = eventually(Duration::from_secs(15), "http_sd target up", || {
        let all = targets(port);
        all.into_iter().find(|t| t["health"] == "up")
    });
    assert_eq!(t["labels"]["team"], "infra");
    assert_eq!(t["labels"]["from_meta"], "y");
    assert_eq!(t["labels"]["instance"], format!("127.0.0.1:{exporter_port}"));
    assert_eq!(t["discoveredLabels"]["__meta_url"], format!("http://127.0.0.1:{sd_port}/targets"));
}
