//! Shared helpers of the end-to-end tests: locating the built binaries, free ports, child
//! processes killed on drop, a minimal HTTP/1.1 client, and tool requirements that skip loudly
//! on a developer machine but fail in CI.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A binary of this workspace, built by `cargo build --workspace --bins` (tests/run.sh does it).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins` first (tests/run.sh does)", path.display());
    path
}

/// True when `tool` is on PATH. Missing in CI is a failure; elsewhere the test says why it skips.
pub fn require(tool: &str, test: &str) -> bool {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {tool}")).stdout(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: required tool {tool} is not installed (tests/run.sh installs it)");
        }
        eprintln!("SKIP {test}: {tool} is not installed (tests/run.sh installs it)");
    }
    found
}

/// A port nothing listens on, never the same twice in one test binary (tests run in parallel,
/// and the kernel may hand a just-released port to the next caller).
///
/// The port lies below the kernel's ephemeral range, so no outgoing connection can take it
/// between this call and the server's bind: not another test's client, and not `wait_port`
/// itself, whose connect from an ephemeral port equal to the target would otherwise be a TCP
/// self-connect that succeeds and keeps the server from binding.
pub fn free_port() -> u16 {
    static NEXT: std::sync::Mutex<Option<u16>> = std::sync::Mutex::new(None);
    let (low, high) = below_ephemeral_range();
    let mut next = NEXT.lock().unwrap();
    let mut port = next.unwrap_or_else(|| low + (std::process::id() % u32::from(high - low)) as u16);
    for _ in low..high {
        let candidate = port;
        port = if port + 1 >= high { low } else { port + 1 };
        if TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            *next = Some(port);
            return candidate;
        }
    }
    panic!("no free port in {low}..{high}");
}

/// The ports from 10000 up to where the kernel's ephemeral (outgoing) range begins.
fn below_ephemeral_range() -> (u16, u16) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let start = text.split_whitespace().next().and_then(|s| s.parse::<u16>().ok()).unwrap_or(32768);
    assert!(start > 11000, "the ephemeral port range starts at {start}: too low to keep test servers out of it");
    (10000, start)
}

/// A child process killed (by PID) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd.stdin(Stdio::null()).spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { child, name: name.to_string() }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts connections on the port.
pub fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not start listening on port {port}");
}

/// Starts the exporter on a free port with the given extra flags and waits until it listens.
pub fn exporter(args: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new(bin("fleetwatch-exporter"));
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}")).args(args);
    let p = Proc::spawn("fleetwatch-exporter", &mut cmd);
    wait_port(port, "fleetwatch-exporter");
    (p, port)
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A plain-HTTP GET with extra headers (`Connection: close`; Content-Length or EOF framing).
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        panic!("GET {path} on port {port}: {e} after {} bytes", raw.len());
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(&raw[split + 4..]) } else { raw[split + 4..].to_vec() };
    Response { status, headers, body }
}

/// Decodes a chunked transfer-encoded body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16).expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs a command and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Polls `f` until it returns Some or the timeout passes.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A real Prometheus server on a free port with its own data directory.
pub struct Prometheus {
    _proc: Proc,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes one target every second.
    pub fn scraping(job: &str, target_port: u16) -> Prometheus {
        Prometheus::with_config(&format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        ))
    }

    /// Runs with the given config file text.
    pub fn with_config(config_text: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_text).unwrap();
        let port = free_port();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let proc = Proc::spawn("prometheus", &mut cmd);
        wait_port(port, "prometheus");
        eventually(Duration::from_secs(30), "prometheus ready", || (get(port, "/-/ready", &[]).status == 200).then_some(()));
        Prometheus { _proc: proc, port, _dir: dir }
    }

    /// Runs an instant query and returns the result vector (or scalar as one element).
    pub fn query(&self, q: &str) -> Vec<serde_json::Value> {
        query(self.port, q)
    }
}

/// An instant query against any server with Prometheus's API; the result vector (or the scalar
/// as one element).
pub fn query(port: u16, q: &str) -> Vec<serde_json::Value> {
    let resp = get(port, &format!("/api/v1/query?query={}", urlencode(q)), &[]);
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("bad JSON for {q}: {e}: {}", resp.text()));
    assert_eq!(v["status"], "success", "query {q} failed: {v}");
    match &v["data"]["result"] {
        serde_json::Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

/// A plain-HTTP POST with a body.
pub fn post(port: u16, path: &str, content_type: &str, body: &str) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

/// A misbehaving scrape target for fault tests.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Accepts connections and never answers.
    Hang,
    /// Answers 200 with a valid exposition of the given size in megabytes.
    Huge(usize),
    /// Answers 200 with bytes that are no exposition.
    Garbage,
}

/// Serves a fault on a free port from a background thread until the process ends.
pub fn fault_server(fault: Fault) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            match fault {
                Fault::Hang => held.push(stream),
                Fault::Huge(mb) => {
                    std::thread::spawn(move || serve_huge(stream, mb));
                }
                Fault::Garbage => {
                    std::thread::spawn(move || serve_bytes(stream, b"\x00\x01{{{ this is not an exposition }}}\n"));
                }
            }
        }
    });
    port
}

fn read_request(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    true
}

fn serve_bytes(mut stream: TcpStream, body: &[u8]) {
    while read_request(&mut stream) {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n", body.len());
        if stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body)).is_err() {
            return;
        }
    }
}

fn serve_huge(mut stream: TcpStream, mb: usize) {
    let line = format!("huge_metric{{filler=\"{}\"}} 1\n", "x".repeat(80));
    let mut chunk = String::new();
    let mut i = 0;
    while chunk.len() < (1 << 20) {
        chunk.push_str(&line.replace("huge_metric{", &format!("huge_metric{{n=\"{i}\",")));
        i += 1;
    }
    while read_request(&mut stream) {
        let total = chunk.len() * mb;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {total}\r\n\r\n");
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        for _ in 0..mb {
            if stream.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Starts the alerter with a config file on a free port and waits until it listens; its database
/// goes beside the config (in the test's temporary directory) unless `extra` names one.
pub fn alerter(config: &Path, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new(bin("fleetwatch-alerter"));
    cmd.arg(format!("--config.file={}", config.display())).arg(format!("--web.listen-address=127.0.0.1:{port}")).args(extra);
    if !extra.iter().any(|a| a.starts_with("--storage.path")) {
        let dir = config.parent().unwrap_or(Path::new(".")).join(format!("alerter-data-{port}"));
        cmd.arg(format!("--storage.path={}", dir.display()));
    }
    let p = Proc::spawn("fleetwatch-alerter", &mut cmd);
    wait_port(port, "fleetwatch-alerter");
    (p, port)
}

/// A throwaway PKI for TLS tests.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1 and a client certificate, all made here.
    pub fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(vec![]).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "fleetwatch test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut server_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        server_params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let server_key = KeyPair::generate().unwrap();
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec![]).unwrap();
        client_params.distinguished_name.push(rcgen::DnType::CommonName, "scraper");
        let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server.pem()),
            ("server.key", server_key.serialize_pem()),
            ("client.pem", client.pem()),
            ("client.key", client_key.serialize_pem()),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Serves a fixed body with a content type on every request, from a background thread.
pub fn static_server(content_type: &'static str, body: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            if read_request(&mut stream) {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body.as_bytes()));
            }
        }
    });
    port
}

// ---------------------------------------------------------------------------------------------
// Container cgroups
// ---------------------------------------------------------------------------------------------

/// A 64-hex container id unique to this test process and `tag`.
pub fn fake_container_id(tag: u32) -> String {
    format!("{:08x}{:08x}{}", std::process::id(), tag, "0f".repeat(24))
}

/// Root with a writable cgroupfs; skips loudly otherwise (fails in CI).
pub fn cgroups_writable(test: &str) -> bool {
    let ok = unsafe { libc::geteuid() } == 0
        && (Path::new("/sys/fs/cgroup/memory").is_dir() || Path::new("/sys/fs/cgroup/cgroup.controllers").exists());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{test}: needs root and a writable cgroupfs");
        eprintln!("SKIP {test}: needs root and a writable cgroupfs");
    }
    ok
}

/// The cgroup directories of one fake container, removed (after killing its processes) on drop.
pub struct FakeContainer {
    pub dirs: Vec<PathBuf>,
    parents: Vec<PathBuf>,
    procs: Vec<Proc>,
}

impl FakeContainer {
    /// `/docker/<id>` in each v1 controller used (hybrid/v1), or in the v2 tree.
    pub fn create(id: &str) -> FakeContainer {
        let root = Path::new("/sys/fs/cgroup");
        let mut fc = FakeContainer { dirs: Vec::new(), parents: Vec::new(), procs: Vec::new() };
        let bases: Vec<PathBuf> = if root.join("cgroup.controllers").exists() {
            vec![root.to_path_buf()]
        } else {
            ["cpu", "cpuacct", "memory", "pids"].iter().map(|c| root.join(c)).filter(|p| p.is_dir()).collect()
        };
        for base in bases {
            let parent = base.join("docker");
            if !parent.exists() {
                std::fs::create_dir(&parent).unwrap();
                fc.parents.push(parent.clone());
                if base == root {
                    // v2: hand the controllers down to /docker's children.
                    let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+cpu +memory +pids");
                }
            }
            let dir = parent.join(id);
            std::fs::create_dir(&dir).unwrap();
            fc.dirs.push(dir);
        }
        fc
    }

    /// Starts a shell that joins the cgroups, allocates ~40 MB and then burns CPU.
    pub fn start_burner(&mut self) {
        let joins: String = self.dirs.iter().map(|d| format!("echo $$ > {}/cgroup.procs; ", d.display())).collect();
        let script = format!("{joins}v=$(head -c 40000000 /dev/zero | tr '\\0' a); while :; do :; done");
        self.procs.push(Proc::spawn("burner", Command::new("sh").arg("-c").arg(script)));
    }
}

impl FakeContainer {
    /// Starts a process that only sleeps in the cgroups.
    pub fn start_sleeper(&mut self) {
        let joins: String = self.dirs.iter().map(|d| format!("echo $$ > {}/cgroup.procs; ", d.display())).collect();
        self.procs.push(Proc::spawn("sleeper", Command::new("sh").arg("-c").arg(format!("{joins}exec sleep 3600"))));
    }

    /// A CPU quota of half a core and a memory limit, in whichever layout the cgroups are.
    pub fn limit(&self, memory_bytes: u64) {
        for dir in &self.dirs {
            for (file, value) in [
                ("cpu.cfs_quota_us", "50000".to_string()),
                ("cpu.max", "50000 100000".to_string()),
                ("memory.limit_in_bytes", memory_bytes.to_string()),
                ("memory.max", memory_bytes.to_string()),
            ] {
                if dir.join(file).exists() {
                    std::fs::write(dir.join(file), value).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()));
                }
            }
        }
    }
}

impl Drop for FakeContainer {
    fn drop(&mut self) {
        self.procs.clear();
        for dir in self.dirs.iter().chain(&self.parents) {
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Runs git in `dir` with a fixed identity (Alice), no user or system config, and, when given, a
/// fixed author and committer date (`@<unix> +0000`); panics when git fails.
pub fn git_as_alice(home: &Path, dir: &Path, date: Option<&str>, args: &[&str]) {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.com")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.com");
    if let Some(date) = date {
        cmd.env("GIT_AUTHOR_DATE", date).env("GIT_COMMITTER_DATE", date);
    }
    let out = cmd.args(args).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "git {args:?} failed in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
}
