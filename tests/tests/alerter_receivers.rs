//! The alerter's notification integrations against real peers, built from YAML and called
//! directly through `fleetwatch_alerter::notify::receiver::build`: a local HTTP receiver for the
//! webhook and Slack payloads (and their failures), a command for `exec`, Debian's Alertmanager
//! receiving alerts through the `alertmanager` integration and delivering them through its own
//! webhook, and aiosmtpd (plain and STARTTLS) receiving email.

mod support;

use fleetwatch_alerter::notify::message::{Notification, NotifiedAlert, Status, KV};
use fleetwatch_alerter::notify::receiver::{build, BuildContext, Integration, ReceiverConfig, SendError};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{eventually, free_port, require, wait_port, Proc};

fn kv(pairs: &[(&str, &str)]) -> KV {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn alert(instance: &str, severity: &str, status: Status) -> NotifiedAlert {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    NotifiedAlert {
        status,
        labels: kv(&[("alertname", "DiskFull"), ("instance", instance), ("severity", severity)]),
        annotations: kv(&[("summary", &format!("disk almost full on {instance}")), ("description", "<90% used & rising>")]),
        starts_at_ms: now - 120_000,
        ends_at_ms: (status == Status::Resolved).then_some(now - 1_000),
        generator_url: "http://alerter.test:9911/graph?g0.expr=disk".into(),
        fingerprint: format!("{:016x}", instance.len()),
    }
}

fn notification(receiver: &str, alerts: Vec<NotifiedAlert>) -> Notification {
    let mut n = Notification {
        receiver: receiver.into(),
        status: Status::Firing,
        group_key: "{}:{alertname=\"DiskFull\"}".into(),
        group_labels: kv(&[("alertname", "DiskFull")]),
        common_labels: KV::new(),
        common_annotations: KV::new(),
        external_url: "http://alerter.test:9911".into(),
        alerts,
        truncated_alerts: 0,
    };
    n.summarize();
    n
}

fn firing() -> Notification {
    notification("ops", vec![alert("db-1:9100", "critical", Status::Firing), alert("db-2:9100", "critical", Status::Firing)])
}

fn resolved() -> Notification {
    notification("ops", vec![alert("db-1:9100", "critical", Status::Resolved)])
}

/// Builds a receiver from YAML (with `${ENV}` expansion, as the config loader does).
fn receiver(yaml: &str, base: &Path) -> Vec<Integration> {
    let cfg: ReceiverConfig = fleetwatch_common::config::parse_yaml(yaml, "receiver.yml").unwrap_or_else(|e| panic!("{e}"));
    build(&cfg, &BuildContext { base_dir: base.to_path_buf() }).unwrap_or_else(|e| panic!("{e}"))
}

fn send(i: &Integration, n: &Notification) -> Result<(), SendError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(i.sender.send(n))
}

/// A request the test HTTP server received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// An HTTP receiver answering every request with `status`, recording what it got.
struct Server {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    fn start(status: u16) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || serve(stream, status, &sink));
            }
        });
        Server { port, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn serve(mut s: TcpStream, status: u16, sink: &Mutex<Vec<Received>>) {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    loop {
        let Some(req) = read_http_request(&mut s) else { return };
        sink.lock().unwrap().push(req);
        let body = if status < 300 { "ok" } else { "nope" };
        let head = format!("HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
    }
}

fn read_http_request(s: &mut TcpStream) -> Option<Received> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).ok().filter(|n| *n > 0)?;
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let len: usize = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = raw[end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut buf).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&buf[..n]);
    }
    Some(Received { path, headers, body })
}

#[test]
fn webhook_posts_alertmanager_json_with_auth_and_headers() {
    let server = Server::start(200);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), "s3cret\n").unwrap();
    std::env::set_var("FLEETWATCH_TEST_HOOK_TOKEN", "tok-123");
    let yaml = format!(
        "name: ops\nwebhook_configs:\n  - url: http://127.0.0.1:{}/hook\n    max_alerts: 1\n    http_config:\n      basic_auth: {{username: alice, password_file: password}}\n      headers: {{X-Token: '${{FLEETWATCH_TEST_HOOK_TOKEN}}'}}\n",
        server.port
    );
    let integrations = receiver(&yaml, dir.path());
    assert_eq!((integrations[0].kind, integrations[0].index), ("webhook", 0));
    send(&integrations[0], &firing()).unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-token"), Some("tok-123"));
    assert_eq!(r.header("authorization"), Some("Basic YWxpY2U6czNjcmV0")); // alice:s3cret
    let j = r.json();
    assert_eq!(j["version"], "4");
    assert_eq!(j["status"], "firing");
    assert_eq!(j["receiver"], "ops");
    assert_eq!(j["groupLabels"]["alertname"], "DiskFull");
    assert_eq!(j["commonLabels"]["severity"], "critical");
    assert_eq!(j["truncatedAlerts"], 1);
    assert_eq!(j["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(j["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(j["alerts"][0]["labels"]["instance"], "db-1:9100");
    send(&integrations[0], &resolved()).unwrap();
    let j = server.received()[1].json();
    assert_eq!((j["status"].as_str(), j["alerts"][0]["status"].as_str()), (Some("resolved"), Some("resolved")));
    assert_ne!(j["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
}

#[test]
fn webhook_failures_are_retryable_or_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let hook =
        |port: u16| receiver(&format!("name: ops\nwebhook_configs: [{{url: 'http://127.0.0.1:{port}/', timeout: 5s}}]\n"), dir.path());
    let e = send(&hook(Server::start(500).port)[0], &firing()).unwrap_err();
    assert!(e.retryable && e.msg.contains("500"), "{e}");
    let e = send(&hook(Server::start(429).port)[0], &firing()).unwrap_err();
    assert!(e.retryable, "{e}");
    let e = send(&hook(Server::start(400).port)[0], &firing()).unwrap_err();
    assert!(!e.retryable && e.msg.contains("400"), "{e}");
    let e = send(&hook(free_port())[0], &firing()).unwrap_err();
    assert!(e.retryable, "connection refused must be retryable: {e}");
}

#[test]
fn slack_message_is_colored_by_severity_and_resolution() {
    let server = Server::start(200);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slack_url"), format!("http://127.0.0.1:{}/services/T0/B0/XYZ\n", server.port)).unwrap();
    let integrations =
        receiver("name: ops\nslack_configs: [{api_url_file: slack_url, channel: '#ops', username: fleetwatch}]\n", dir.path());
    send(&integrations[0], &firing()).unwrap();
    send(&integrations[0], &resolved()).unwrap();
    let warn = notification("ops", vec![alert("web-1:9100", "warning", Status::Firing)]);
    send(&integrations[0], &warn).unwrap();
    let got = server.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].path, "/services/T0/B0/XYZ");
    let first = got[0].json();
    assert_eq!(first["channel"], "#ops");
    assert_eq!(first["username"], "fleetwatch");
    let a = &first["attachments"][0];
    assert_eq!(a["color"], "danger");
    assert_eq!(a["title"], "[FIRING:2] DiskFull (critical)");
    assert!(a["text"].as_str().unwrap().contains("*FIRING* DiskFull on db-2:9100: disk almost full on db-2:9100"), "{a}");
    let a = &got[1].json()["attachments"][0];
    assert_eq!((a["color"].as_str(), a["title"].as_str()), (Some("good"), Some("[RESOLVED] DiskFull (db-1:9100 critical)")));
    assert_eq!(got[2].json()["attachments"][0]["color"], "warning");
}

#[test]
fn exec_gets_the_json_on_stdin_and_the_env() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let yaml = format!(
        "name: ops\nexec_configs:\n  - command: [sh, -c, 'cat > {0}/stdin.json; env | grep ^FLEETWATCH_ | sort > {0}/env; echo \"$EXTRA\" > {0}/extra']\n    env: {{EXTRA: hello}}\n  - command: [sh, -c, 'cat >/dev/null; echo broken >&2; exit 1']\n",
        out.display()
    );
    let integrations = receiver(&yaml, dir.path());
    send(&integrations[0], &firing()).unwrap();
    let stdin: Value = serde_json::from_slice(&std::fs::read(out.join("stdin.json")).unwrap()).unwrap();
    assert_eq!((stdin["version"].as_str(), stdin["status"].as_str()), (Some("4"), Some("firing")));
    assert_eq!(stdin["alerts"].as_array().unwrap().len(), 2);
    let env = std::fs::read_to_string(out.join("env")).unwrap();
    for want in [
        "FLEETWATCH_ALERTNAME=DiskFull",
        "FLEETWATCH_ALERTS=2",
        "FLEETWATCH_GROUP_KEY={}:{alertname=\"DiskFull\"}",
        "FLEETWATCH_RECEIVER=ops",
        "FLEETWATCH_STATUS=firing",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing from:\n{env}");
    }
    assert_eq!(std::fs::read_to_string(out.join("extra")).unwrap(), "hello\n");
    let e = send(&integrations[1], &firing()).unwrap_err();
    assert!(e.retryable && e.msg.contains("broken"), "{e}");
}

/// Starts Debian's Alertmanager with a webhook receiver pointing at `hook_port`.
fn alertmanager(dir: &Path, hook_port: u16) -> (Proc, u16) {
    let port = free_port();
    let config = format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{hook_port}/am\n        send_resolved: true\n"
    );
    std::fs::write(dir.join("alertmanager.yml"), config).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut cmd = Command::new("prometheus-alertmanager");
    cmd.arg(format!("--config.file={}", dir.join("alertmanager.yml").display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("alertmanager.log")).unwrap());
    let p = Proc::spawn("prometheus-alertmanager", &mut cmd);
    wait_port(port, "prometheus-alertmanager");
    eventually(Duration::from_secs(20), "Alertmanager ready", || (support::get(port, "/-/ready", &[]).status == 200).then_some(()));
    (p, port)
}

#[test]
fn alertmanager_receives_alerts_and_delivers_them_through_its_webhook() {
    if !require("prometheus-alertmanager", "alertmanager_receives_alerts_and_delivers_them_through_its_webhook") {
        return;
    }
    let hook = Server::start(200);
    let dir = tempfile::tempdir().unwrap();
    let (_am, am_port) = alertmanager(dir.path(), hook.port);
    // The first URL is down: one accepting Alertmanager is enough.
    let yaml = format!(
        "name: fleet\nalertmanager_configs: [{{urls: ['http://127.0.0.1:{}', 'http://127.0.0.1:{am_port}/'], timeout: 5s}}]\n",
        free_port()
    );
    let integrations = receiver(&yaml, dir.path());
    send(&integrations[0], &firing()).unwrap();
    let msg = eventually(Duration::from_secs(30), "Alertmanager's webhook with the firing alerts", || {
        hook.received().into_iter().map(|r| r.json()).find(|j| j["status"] == "firing" && j["alerts"].as_array().map_or(0, Vec::len) == 2)
    });
    assert_eq!(msg["receiver"], "hook");
    assert_eq!(msg["groupLabels"]["alertname"], "DiskFull");
    let mut instances: Vec<&str> = msg["alerts"].as_array().unwrap().iter().map(|a| a["labels"]["instance"].as_str().unwrap()).collect();
    instances.sort();
    assert_eq!(instances, ["db-1:9100", "db-2:9100"]);
    assert_eq!(msg["alerts"][0]["annotations"]["summary"].as_str().map(|s| s.starts_with("disk almost full")), Some(true));
    assert_eq!(msg["alerts"][0]["generatorURL"], "http://alerter.test:9911/graph?g0.expr=disk");
    let both_resolved =
        notification("fleet", vec![alert("db-1:9100", "critical", Status::Resolved), alert("db-2:9100", "critical", Status::Resolved)]);
    send(&integrations[0], &both_resolved).unwrap();
    eventually(Duration::from_secs(30), "Alertmanager's webhook with the resolution", || {
        hook.received().into_iter().map(|r| r.json()).find(|j| j["status"] == "resolved")
    });
    // With no Alertmanager reachable the delivery fails and may be retried.
    let down =
        receiver(&format!("name: x\nalertmanager_configs: [{{urls: ['http://127.0.0.1:{}'], timeout: 2s}}]\n", free_port()), dir.path());
    assert!(send(&down[0], &firing()).unwrap_err().retryable);
}

/// A Python with aiosmtpd: `target/venv` (tests/run.sh creates it), made here when missing.
fn aiosmtpd_python() -> Option<std::path::PathBuf> {
    let venv = support::repo_root().join("target/venv");
    let python = venv.join("bin/python3");
    let has = |p: &Path| Command::new(p).args(["-c", "import aiosmtpd"]).output().map(|o| o.status.success()).unwrap_or(false);
    if python.exists() && has(&python) {
        return Some(python);
    }
    if !require("python3", "email_via_aiosmtpd") {
        return None;
    }
    let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().map(|s| s.success()).unwrap_or(false)
        && Command::new(venv.join("bin/pip")).args(["install", "-q", "aiosmtpd"]).status().map(|s| s.success()).unwrap_or(false);
    if ok && has(&python) {
        return Some(python);
    }
    if std::env::var_os("CI").is_some() {
        panic!("email_via_aiosmtpd: cannot set up aiosmtpd in {} (tests/run.sh installs it)", venv.display());
    }
    eprintln!("SKIP email_via_aiosmtpd: aiosmtpd is not available (tests/run.sh installs it)");
    None
}

/// An SMTP server saving each message (envelope, TLS, auth, parsed bodies) as JSON in `out`.
const SMTP_SERVER: &str = r#"
import email, email.policy, json, os, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, out, mode, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]

class Saver:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        saved = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": msg["Subject"],
            "to_header": msg["To"],
            "headers": {k: str(v) for k, v in msg.items()},
            "text": text.get_content() if text else None,
            "html": html.get_content() if html else None,
            "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            "auth": session.authenticated,
        }
        n = len(os.listdir(out))
        with open(os.path.join(out, "tmp"), "w") as f:
            json.dump(saved, f)
        os.rename(os.path.join(out, "tmp"), os.path.join(out, "%d.json" % n))
        return "250 OK"

def login(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=auth_data.login == b"alerts" and auth_data.password == b"pw-123")

kwargs = {}
if mode != "plain":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    kwargs = dict(authenticator=login, auth_required=True)
    if mode == "starttls":
        kwargs.update(tls_context=ctx, require_starttls=True)
    else:
        kwargs.update(ssl_context=ctx, auth_require_tls=False)
c = Controller(Saver(), hostname="127.0.0.1", port=port, **kwargs)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

/// `mode` is `plain`, `starttls` or `implicit` (the last two need `pki`).
fn smtp_server(python: &Path, dir: &Path, mode: &str, pki: Option<&support::Pki>) -> (Proc, u16, std::path::PathBuf) {
    let port = free_port();
    let out = dir.join(format!("mail-{port}"));
    std::fs::create_dir(&out).unwrap();
    std::fs::write(dir.join("smtp.py"), SMTP_SERVER).unwrap();
    let (cert, key) = pki.map_or(("-".into(), "-".into()), |p| (p.path("server.pem"), p.path("server.key")));
    let mut cmd = Command::new(python);
    cmd.arg(dir.join("smtp.py")).arg(port.to_string()).arg(&out).arg(mode).arg(cert).arg(key);
    let p = Proc::spawn("aiosmtpd", &mut cmd);
    wait_port(port, "aiosmtpd");
    (p, port, out)
}

fn saved_mail(out: &Path) -> Value {
    let path = eventually(Duration::from_secs(20), "a message saved by aiosmtpd", || {
        let p = out.join("0.json");
        p.exists().then_some(p)
    });
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn email_via_aiosmtpd() {
    let Some(python) = aiosmtpd_python() else { return };
    let dir = tempfile::tempdir().unwrap();

    // Plain SMTP (no STARTTLS offered, require_tls off), default templates.
    let (_smtp, port, out) = smtp_server(&python, dir.path(), "plain", None);
    let yaml = format!(
        "name: ops\nemail_configs:\n  - to: 'oncall@example.com, dba@example.com'\n    from: 'Fleetwatch <alerts@example.com>'\n    smarthost: 127.0.0.1:{port}\n    require_tls: false\n    headers: {{X-Fleet: '{{{{ .Receiver }}}}'}}\n"
    );
    let integrations = receiver(&yaml, dir.path());
    send(&integrations[0], &firing()).unwrap();
    let m = saved_mail(&out);
    assert_eq!(m["from"], "alerts@example.com");
    assert_eq!(m["to"], serde_json::json!(["oncall@example.com", "dba@example.com"]));
    assert_eq!(m["subject"], "[FIRING:2] DiskFull (critical)");
    assert_eq!(m["headers"]["X-Fleet"], "ops");
    assert_eq!(m["tls"], false);
    let text = m["text"].as_str().unwrap();
    assert!(text.contains("FIRING DiskFull: disk almost full on db-1:9100") && text.contains("instance = db-2:9100"), "{text}");
    assert!(text.contains("<90% used & rising>"), "text bodies are not escaped: {text}");
    let html = m["html"].as_str().unwrap();
    assert!(html.contains("&lt;90% used &amp; rising&gt;") && html.contains("<table"), "{html}");

    // STARTTLS with a certificate from a test CA, and authentication.
    let pki = support::Pki::new();
    let (_smtps, port, out) = smtp_server(&python, dir.path(), "starttls", Some(&pki));
    std::fs::write(dir.path().join("smtp_password"), "pw-123\n").unwrap();
    let yaml = format!(
        "name: ops\nemail_configs:\n  - to: oncall@example.com\n    from: alerts@example.com\n    smarthost: 127.0.0.1:{port}\n    auth_username: alerts\n    auth_password_file: smtp_password\n    tls_config: {{ca_file: {}}}\n    headers: {{Subject: 'Resolved? {{{{ .Status }}}}'}}\n    html: ''\n",
        pki.path("ca.pem")
    );
    let integrations = receiver(&yaml, dir.path());
    send(&integrations[0], &resolved()).unwrap();
    let m = saved_mail(&out);
    assert_eq!((m["tls"].as_bool(), m["auth"].as_bool()), (Some(true), Some(true)), "{m}");
    assert_eq!(m["subject"], "Resolved? resolved");
    assert!(m["html"].is_null() && m["text"].as_str().unwrap().contains("RESOLVED DiskFull"), "{m}");

    // A refused login is a failed delivery, reported within the timeout.
    std::fs::write(dir.path().join("smtp_password"), "wrong\n").unwrap();
    let integrations = receiver(&yaml.replace("html: ''", "html: ''\n    timeout: 3s"), dir.path());
    let started = std::time::Instant::now();
    assert!(send(&integrations[0], &resolved()).is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!out.join("1.json").exists());

    // Implicit TLS (SMTPS), chosen with `tls: implicit` on a port other than 465.
    std::fs::write(dir.path().join("smtp_password"), "pw-123\n").unwrap();
    let (_smtps, port, out) = smtp_server(&python, dir.path(), "implicit", Some(&pki));
    let yaml = format!(
        "name: ops\nemail_configs:\n  - to: oncall@example.com\n    from: alerts@example.com\n    smarthost: 127.0.0.1:{port}\n    tls: implicit\n    auth_username: alerts\n    auth_password_file: smtp_password\n    tls_config: {{ca_file: {}}}\n",
        pki.path("ca.pem")
    );
    send(&receiver(&yaml, dir.path())[0], &firing()).unwrap();
    let m = saved_mail(&out);
    assert_eq!((m["tls"].as_bool(), m["auth"].as_bool()), (Some(true), Some(true)), "{m}");
    assert!(m["headers"]["Date"].is_string() && m["headers"]["Message-ID"].is_string(), "{m}");
    assert!(m["html"].as_str().unwrap().contains("<title>[FIRING:2] DiskFull (critical)</title>"), "{m}");
}
