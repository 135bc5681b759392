//! The exporter's HTTP routes: the telemetry path (content negotiation, gzip, `collect[]` /
//! `exclude[]`, `--web.max-requests`), the landing page and `/healthz`.

use crate::process;
use crate::scrape::{merge, Exporter};
use bytes::Bytes;
use fleetwatch_common::expfmt::{encode, negotiate, Family};
use fleetwatch_common::web::{text_response, Body, Handler};
use http_body_util::Full;
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
    let text = encode(&families, format);
    respond(text, format.content_type(), accepts_gzip(header(ACCEPT_ENCODING)))
}

fn respond(text: String, content_type: &'static str, gzip: bool) -> Response<Body> {
    let (body, encoded) = if gzip { (gzip_bytes(text.as_bytes()), true) } else { (text.into_bytes(), false) };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
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
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(k).as_str() {
            "collect[]" => collect.push(percent_decode(v)),
            "exclude[]" => exclude.push(percent_decode(v)),
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

fn landing(app: &App) -> Response<Body> {
    let collectors = app.current().names().join(", ");
    let html = format!(
        "<!DOCTYPE html>\n<html><head><title>fleetwatch-exporter</title></head><body>\n<h1>fleetwatch-exporter</h1>\n<p>Version {}</p>\n<p><a href=\"{}\">Metrics</a></p>\n<p>Enabled collectors: {}</p>\n</body></html>\n",
        process::VERSION,
        app.telemetry_path,
        collectors
    );
    let mut resp = Response::new(Full::new(Bytes::from(html)));
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
    fn gzip_negotiation() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
