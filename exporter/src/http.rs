//! The exporter's HTTP routes: the telemetry path (content negotiation, gzip, `collect[]` /
//! `exclude[]`, `--web.max-requests`), the landing page, `/healthz`, and
//! blackbox_exporter's `/probe`.

use crate::process;
use crate::scrape::{merge, Exporter};
use bytes::Bytes;
use fleetwatch_common::expfmt::{encode, negotiate, Chunks, Family, Format};
use fleetwatch_common::web::{text_response, Body, Handler};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::{Method, Request, Response, StatusCode};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::Semaphore;

/// Everything the routes need; `exporter` is swapped on reload.
pub struct App {
    pub exporter: RwLock<Arc<Exporter>>,
    pub telemetry_path: String,
    /// `None` when `--web.max-requests=0` (no limit).
    pub limit: Option<Arc<Semaphore>>,
    served: AtomicU64,
    bad_requests: AtomicU64,
    rejected: AtomicU64,
}

impl App {
    pub fn new(exporter: Exporter, telemetry_path: String, max_requests: usize) -> Arc<App> {
        Arc::new(App {
            exporter: RwLock::new(Arc::new(exporter)),
            telemetry_path,
            limit: (max_requests > 0).then(|| Arc::new(Semaphore::new(max_requests))),
            served: AtomicU64::new(0),
            bad_requests: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    pub fn replace(&self, exporter: Exporter) {
        if let Ok(mut e) = self.exporter.write() {
            *e = Arc::new(exporter);
        }
    }

    fn current(&self) -> Arc<Exporter> {
        match self.exporter.read() {
            Ok(e) => e.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn requests_family(&self) -> Family {
        let mut f = Family::counter("fleetwatch_exporter_scrape_requests_total", "Scrape requests by HTTP status code.");
        f.add(&[("code", "200")], self.served.load(Ordering::Relaxed) as f64);
        f.add(&[("code", "400")], self.bad_requests.load(Ordering::Relaxed) as f64);
        f.add(&[("code", "503")], self.rejected.load(Ordering::Relaxed) as f64);
        f
    }
}

/// The handler given to the shared web server.
pub fn handler(app: Arc<App>) -> Handler {
    Arc::new(move |req| {
        let app = app.clone();
        Box::pin(async move { route(app, req).await })
    })
}

async fn route(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    match req.uri().path() {
        p if p == app.telemetry_path => metrics(&app, &req).await,
        "/" => landing(&app),
        "/healthz" => text_response(StatusCode::OK, "OK\n"),
        "/probe" => probe(&app, &req).await,
        _ => text_response(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

async fn metrics(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let _permit = match &app.limit {
        Some(sem) => match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                app.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("too many concurrent scrapes; answering 503");
                return text_response(StatusCode::SERVICE_UNAVAILABLE, "Too many concurrent scrape requests (--web.max-requests)\n");
            }
        },
        None => None,
    };
    let exporter = app.current();
    let (collect, exclude) = collector_filter(req.uri().query().unwrap_or(""));
    let chosen = match exporter.select(&collect, &exclude) {
        Ok(c) => c,
        Err(e) => {
            app.bad_requests.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(err = %e, "bad collector filter");
            return text_response(StatusCode::BAD_REQUEST, format!("couldn't create filtered metrics handler: {e}\n"));
        }
    };
    let mut families = exporter.scrape(&chosen).await;
    families.push(process::build_info());
    process::process_metrics(&mut families);
    app.served.fetch_add(1, Ordering::Relaxed);
    families.push(app.requests_family());
    let families = merge(families);
    let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let format = negotiate(header(ACCEPT));
    stream_families(families, format, accepts_gzip(header(ACCEPT_ENCODING)))
}

/// The scrape's exposition, encoded (and gzipped) piece by piece as the connection takes it.
fn stream_families(families: Vec<Family>, format: Format, gzip: bool) -> Response<Body> {
    let chunks = Chunks::new(families, format);
    let body = if gzip { Body::stream(Gzipped::new(chunks)) } else { Body::stream(chunks) };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

/// The gzip of a sequence of buffers, compressed as they come, in buffers of about 16 KiB.
struct Gzipped<I> {
    input: I,
    encoder: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl<I> Gzipped<I> {
    fn new(input: I) -> Gzipped<I> {
        Gzipped { input, encoder: Some(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())) }
    }
}

impl<I: Iterator<Item = Bytes>> Iterator for Gzipped<I> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let encoder = self.encoder.as_mut()?;
        for chunk in self.input.by_ref() {
            // Writing into a Vec cannot fail.
            let _ = encoder.write_all(&chunk);
            if encoder.get_ref().len() >= 16 * 1024 {
                return Some(Bytes::from(std::mem::take(encoder.get_mut())));
            }
        }
        self.encoder.take().map(|e| Bytes::from(e.finish().unwrap_or_default()))
    }
}

fn respond(text: String, content_type: &'static str, gzip: bool) -> Response<Body> {
    let (body, encoded) = if gzip { (gzip_bytes(text.as_bytes()), true) } else { (text.into_bytes(), false) };
    let mut resp = Response::new(Body::full(body));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if encoded {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// True when `Accept-Encoding` allows gzip (listed without `q=0`).
pub fn accepts_gzip(header: Option<&str>) -> bool {
    header.is_some_and(|h| {
        h.split(',').any(|part| {
            let mut it = part.split(';').map(str::trim);
            let coding = it.next().unwrap_or("");
            let zero_q = it.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero_q
        })
    })
}

/// The `collect[]` and `exclude[]` values of a query string.
pub fn collector_filter(query: &str) -> (Vec<String>, Vec<String>) {
    let (mut collect, mut exclude) = (Vec::new(), Vec::new());
    for (k, v) in query_params(query) {
        match k.as_str() {
            "collect[]" => collect.push(v),
            "exclude[]" => exclude.push(v),
            _ => {}
        }
    }
    (collect, exclude)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%')
            .then(|| b.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (c, None) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// blackbox_exporter's offset from the scrape timeout (`--timeout-offset`), and its timeout when
/// neither the module nor the scraper sets one.
const TIMEOUT_OFFSET: f64 = 0.5;
const DEFAULT_PROBE_TIMEOUT: f64 = 120.0;

/// `GET /probe?target=...&module=...`: one probe, answered like blackbox_exporter.
async fn probe(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let params = query_params(req.uri().query().unwrap_or(""));
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let module_name = param("module").unwrap_or("http_2xx");
    let Some(target) = param("target") else {
        app.bad_requests.fetch_add(1, Ordering::Relaxed);
        return text_response(StatusCode::BAD_REQUEST, "Target parameter is missing\n");
    };
    let exporter = app.current();
    let Some(module) = exporter.modules.get(module_name).cloned() else {
        app.bad_requests.fetch_add(1, Ordering::Relaxed);
        return text_response(StatusCode::BAD_REQUEST, format!("Unknown module {module_name:?}\n"));
    };
    let scrape_timeout = req.headers().get("X-Prometheus-Scrape-Timeout-Seconds").and_then(|v| v.to_str().ok());
    let timeout = probe_timeout(scrape_timeout.and_then(|v| v.trim().parse::<f64>().ok()), module.timeout);
    let result = crate::health::probe::probe(&module, target, timeout).await;
    if let Some(f) = &result.failure {
        tracing::debug!(target, module = module_name, reason = f.reason.as_str(), err = %f.message, "probe failed");
    }
    let families = crate::health::probe_families(&module, &result);
    let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let format = negotiate(header(ACCEPT));
    respond(encode(&families, format), format.content_type(), accepts_gzip(header(ACCEPT_ENCODING)))
}

/// blackbox's rule: the scrape timeout (120 s without one) minus the offset, or the module's
/// timeout when that is shorter.
pub fn probe_timeout(scrape_timeout: Option<f64>, module_timeout: std::time::Duration) -> std::time::Duration {
    let mut seconds = scrape_timeout.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(DEFAULT_PROBE_TIMEOUT);
    if seconds > TIMEOUT_OFFSET {
        seconds -= TIMEOUT_OFFSET;
    }
    let module = module_timeout.as_secs_f64();
    if module > 0.0 && module < seconds {
        seconds = module;
    }
    std::time::Duration::from_secs_f64(seconds)
}

/// Decoded `key=value` pairs of a query string.
fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn landing(app: &App) -> Response<Body> {
    let collectors = app.current().names().join(", ");
    let html = format!(
        "<!DOCTYPE html>\n<html><head><title>fleetwatch-exporter</title></head><body>\n<h1>fleetwatch-exporter</h1>\n<p>Version {}</p>\n<p><a href=\"{}\">Metrics</a></p>\n<p>Enabled collectors: {}</p>\n</body></html>\n",
        process::VERSION,
        app.telemetry_path,
        collectors
    );
    let mut resp = Response::new(Body::full(html));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_collector_filters() {
        let (c, e) = collector_filter("collect%5B%5D=cpu&collect[]=meminfo&other=1&exclude[]=x+y");
        assert_eq!(c, vec!["cpu", "meminfo"]);
        assert_eq!(e, vec!["x y"]);
    }

    #[test]
    fn probe_timeouts_follow_blackbox() {
        use std::time::Duration;
        assert_eq!(probe_timeout(Some(10.0), Duration::ZERO), Duration::from_secs_f64(9.5));
        assert_eq!(probe_timeout(Some(10.0), Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(probe_timeout(None, Duration::ZERO), Duration::from_secs_f64(119.5));
        assert_eq!(probe_timeout(Some(0.3), Duration::ZERO), Duration::from_secs_f64(0.3));
        assert_eq!(
            query_params("target=http%3A%2F%2Fa%2F&module=m"),
            [("target".into(), "http://a/".into()), ("module".into(), "m".into())]
        );
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
