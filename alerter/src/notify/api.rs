//! The notification endpoints of the alerter's HTTP API: `GET/POST /api/v1/silences`,
//! `GET/DELETE /api/v1/silence/{id}` (Alertmanager v2's silence shapes) and
//! `GET /api/v1/history?since=&alertname=&limit=`.

use super::service::Service;
use super::silences::PostableSilence;
use crate::scrape::now_ms;
use crate::timefmt::{parse_time, rfc3339};
use fleetwatch_common::duration::parse_duration;
use fleetwatch_common::web::Body;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

/// The largest silence body accepted.
const MAX_BODY: usize = 1 << 20;

/// Whether `path` is one of these endpoints.
pub fn owns(path: &str) -> bool {
    path == "/api/v1/silences" || path.starts_with("/api/v1/silence/") || path == "/api/v1/history"
}

pub async fn route(service: &Service, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = crate::api::parse_urlencoded(req.uri().query().unwrap_or(""));
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/api/v1/silences") => {
            let now = now_ms();
            respond(StatusCode::OK, service.silences().iter().map(|s| s.to_json(now)).collect())
        }
        (Method::POST, "/api/v1/silences") => post_silence(service, req).await,
        (Method::GET, "/api/v1/history") => history(service, param("since"), param("alertname"), param("limit")).await,
        (method, p) => match p.strip_prefix("/api/v1/silence/") {
            Some(id) if method == Method::GET => match service.silences().into_iter().find(|s| s.id == id) {
                Some(s) => respond(StatusCode::OK, s.to_json(now_ms())),
                None => error(StatusCode::NOT_FOUND, format!("silence {id} not found")),
            },
            Some(id) if method == Method::DELETE => match service.expire_silence(id).await {
                Ok(true) => respond(StatusCode::OK, json!({})),
                Ok(false) => error(StatusCode::NOT_FOUND, format!("silence {id} not found")),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            },
            _ => error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {p}")),
        },
    }
}

async fn post_silence(service: &Service, req: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "request body too large or unreadable".into()),
    };
    let posted: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid silence: {e}")),
    };
    let record = match posted.into_record(now_ms()) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid silence: {e}")),
    };
    let id = record.id.clone();
    match service.put_silence(record).await {
        Ok(()) => respond(StatusCode::OK, json!({"silenceID": id})),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `since` is a time (RFC 3339 or Unix seconds) or a duration back from now; default 24h.
async fn history(service: &Service, since: Option<String>, alertname: Option<String>, limit: Option<String>) -> Response<Body> {
    let now = now_ms();
    let since_ms = match since.as_deref() {
        None => now - 86_400_000,
        Some(s) => match parse_duration(s) {
            Ok(d) => now - d.as_millis() as i64,
            Err(_) => match parse_time(s) {
                Some(t) => t,
                None => return error(StatusCode::BAD_REQUEST, format!("invalid parameter \"since\": {s:?}")),
            },
        },
    };
    let limit = match limit.map(|l| l.parse::<usize>()) {
        None => 10_000,
        Some(Ok(n)) => n,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "invalid parameter \"limit\"".into()),
    };
    match service.history(since_ms, alertname, limit).await {
        Ok(rows) => {
            let data: Vec<serde_json::Value> = rows
                .iter()
                .map(|h| {
                    json!({"at": rfc3339(h.at_ms), "kind": h.kind, "alertname": h.alertname, "labels": h.labels,
                        "fingerprint": h.fingerprint, "receiver": h.receiver, "detail": h.detail})
                })
                .collect();
            respond(StatusCode::OK, json!({"status": "success", "data": data}))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn respond(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

fn error(status: StatusCode, message: String) -> Response<Body> {
    respond(status, json!({"status": "error", "error": message}))
}
