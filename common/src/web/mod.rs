//! The HTTP server both daemons use: binds the listen addresses, serves HTTP/1.1 and HTTP/2 with
//! optional TLS, enforces basic auth, and re-reads the web config file (and the files it names)
//! when they change, like exporter-toolkit.

mod auth;
mod body;
pub mod config;
mod tls;

pub use body::Body;
pub use config::WebConfig;

use auth::BasicAuth;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Why the server could not start or its web config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("listen tcp {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid listen address {0:?} (expected host:port or :port)")]
    Address(String),
    #[error("web config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("web config TLS: {0}")]
    Tls(String),
    #[error("web config: http_server_config.headers: invalid header {0:?}")]
    Header(String),
    #[error("web config: basic_auth_users: user {user:?} has an invalid bcrypt hash")]
    Hash { user: String },
}

pub type BoxFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
/// The application behind the web layer: called only for authorised requests.
pub type Handler = Arc<dyn Fn(Request<Incoming>) -> BoxFuture + Send + Sync>;

/// Binds every listen address (`host:port`, `:port` for all interfaces).
pub async fn bind(addrs: &[String]) -> Result<Vec<TcpListener>, WebError> {
    let mut out = Vec::new();
    for addr in addrs {
        out.push(bind_one(addr).await?);
    }
    Ok(out)
}

async fn bind_one(addr: &str) -> Result<TcpListener, WebError> {
    let bind_err = |source| WebError::Bind { addr: addr.to_string(), source };
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| WebError::Address(addr.to_string()))?;
        // All interfaces: the dual-stack wildcard where IPv6 exists, IPv4 otherwise.
        return match TcpListener::bind(SocketAddr::from(([0u16; 8], port))).await {
            Ok(l) => Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(bind_err(e)),
            Err(_) => TcpListener::bind(SocketAddr::from(([0u8; 4], port))).await.map_err(bind_err),
        };
    }
    if !addr.contains(':') {
        return Err(WebError::Address(addr.to_string()));
    }
    TcpListener::bind(addr).await.map_err(bind_err)
}

/// What one version of the web config file resolves to.
struct Loaded {
    tls: Option<TlsAcceptor>,
    auth: Arc<BasicAuth>,
    headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    http2: bool,
}

/// The web config file, re-read when it or a file it names changes (checked at most once a second).
pub struct WebState {
    path: Option<PathBuf>,
    current: RwLock<Arc<Loaded>>,
    stamp: Mutex<Stamp>,
}

/// When we last looked, the files the loaded config depends on (itself, certificates, keys,
/// CAs), and their modification times then.
struct Stamp {
    checked: Instant,
    files: Vec<PathBuf>,
    mtimes: Vec<Option<SystemTime>>,
}

impl WebState {
    /// Loads the web config; `None` serves plain HTTP without auth.
    pub fn load(path: Option<&Path>) -> Result<Arc<WebState>, WebError> {
        let (loaded, files) = match path {
            Some(p) => load_file(p)?,
            None => (Loaded { tls: None, auth: Arc::new(BasicAuth::new(Default::default())), headers: vec![], http2: true }, vec![]),
        };
        let mtimes = file_stamps(&files);
        Ok(Arc::new(WebState {
            path: path.map(Path::to_path_buf),
            current: RwLock::new(Arc::new(loaded)),
            stamp: Mutex::new(Stamp { checked: Instant::now(), files, mtimes }),
        }))
    }

    /// Validates a web config file without serving (for `--config.check`).
    pub fn check(path: &Path) -> Result<(), WebError> {
        load_file(path).map(|_| ())
    }

    fn get(&self) -> Arc<Loaded> {
        self.maybe_reload();
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn maybe_reload(&self) {
        let Some(path) = &self.path else { return };
        let Ok(mut stamp) = self.stamp.lock() else { return };
        if stamp.checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        stamp.checked = Instant::now();
        let now = file_stamps(&stamp.files);
        if now == stamp.mtimes {
            return;
        }
        stamp.mtimes = now;
        match load_file(path) {
            Ok((loaded, files)) => {
                tracing::info!(file = %path.display(), "web config reloaded");
                stamp.mtimes = file_stamps(&files);
                stamp.files = files;
                if let Ok(mut cur) = self.current.write() {
                    *cur = Arc::new(loaded);
                }
            }
            Err(e) => tracing::error!(file = %path.display(), err = %e, "web config reload failed; keeping the previous one"),
        }
    }
}

fn file_stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files.iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
}

/// Loads a web config; returns it with the files it depends on (itself first).
fn load_file(path: &Path) -> Result<(Loaded, Vec<PathBuf>), WebError> {
    let cfg: WebConfig = crate::config::load_yaml_file(path)?;
    for (user, hash) in &cfg.basic_auth_users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(WebError::Hash { user: user.clone() });
        }
    }
    let http2 = cfg.http_server_config.http2;
    let tls = match &cfg.tls_server_config {
        Some(t) => Some(TlsAcceptor::from(tls::server_config(t, http2)?)),
        None => None,
    };
    let mut headers = Vec::new();
    for (k, v) in &cfg.http_server_config.headers {
        let name = hyper::header::HeaderName::try_from(k.as_str()).map_err(|_| WebError::Header(k.clone()))?;
        let value = hyper::header::HeaderValue::try_from(v.as_str()).map_err(|_| WebError::Header(k.clone()))?;
        headers.push((name, value));
    }
    let mut files = vec![path.to_path_buf()];
    files.extend(cfg.tls_server_config.iter().flat_map(|t| [t.cert_file.clone(), t.key_file.clone(), t.client_ca_file.clone()]).flatten());
    Ok((Loaded { tls, auth: Arc::new(BasicAuth::new(cfg.basic_auth_users)), headers, http2 }, files))
}

/// Resolves on SIGTERM or SIGINT: the daemons' shutdown trigger for `serve`.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Serves on all listeners until `shutdown` resolves.
pub async fn serve(listeners: Vec<TcpListener>, web: Arc<WebState>, handler: Handler, shutdown: impl Future<Output = ()>) {
    let mut tasks = Vec::new();
    for listener in listeners {
        tasks.push(tokio::spawn(accept_loop(listener, web.clone(), handler.clone())));
    }
    shutdown.await;
    for t in tasks {
        t.abort();
    }
}

async fn accept_loop(listener: TcpListener, web: Arc<WebState>, handler: Handler) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(err = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, peer, web.clone(), handler.clone()));
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, web: Arc<WebState>, handler: Handler) {
    let loaded = web.get();
    let service = {
        let web = web.clone();
        hyper::service::service_fn(move |req| {
            let web = web.clone();
            let handler = handler.clone();
            async move { Ok::<_, std::convert::Infallible>(authorised(req, web.get(), handler).await) }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // A buffer limit of 64 KiB (hyper's default is about 400 KiB): a streamed body's pieces are
    // written out and freed every 64 KiB, so they keep reusing the same heap memory instead of
    // piling up (and being handed back to the kernel and faulted in again on every response).
    // It also bounds request headers to 64 KiB.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).max_buf_size(64 * 1024);
    let builder = if loaded.http2 { builder } else { builder.http1_only() };
    let result = match &loaded.tls {
        Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
            Ok(Ok(tls)) => builder.serve_connection(TokioIo::new(tls), service).await,
            Ok(Err(e)) => {
                tracing::debug!(%peer, err = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        None => builder.serve_connection(TokioIo::new(stream), service).await,
    };
    if let Err(e) = result {
        tracing::debug!(%peer, err = %e, "connection ended with an error");
    }
}

async fn authorised(req: Request<Incoming>, loaded: Arc<Loaded>, handler: Handler) -> Response<Body> {
    if loaded.auth.enabled() {
        let header = req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let auth = loaded.auth.clone();
        let ok = tokio::task::spawn_blocking(move || auth.check(header.as_deref())).await.unwrap_or(false);
        if !ok {
            let mut resp = text_response(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            resp.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Basic"));
            return with_headers(resp, &loaded);
        }
    }
    with_headers(handler(req).await, &loaded)
}

fn with_headers(mut resp: Response<Body>, loaded: &Loaded) -> Response<Body> {
    for (k, v) in &loaded.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

/// A plain-text response with the given status.
pub fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
