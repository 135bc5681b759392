//! The alerter's HTTP endpoints, in Prometheus's shapes so that Grafana and scripts written for
//! Prometheus work: `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/<name>/values`, `/api/v1/targets`, `/api/v1/status/buildinfo`, `/-/healthy`,
//! `/-/ready`, `/-/reload`, and its own `/metrics`.

use crate::alert_state::{Alert, State};
use crate::app::App;
use crate::timefmt::{parse_time, rfc3339};
use fleetwatch_common::duration::{format_duration, parse_duration};
use fleetwatch_common::expfmt::{encode, negotiate, Family, MetricType};
use fleetwatch_common::web::{text_response, Body, BoxFuture, Handler};
use fleetwatch_promql::{Engine, Labels, Value};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The largest form body accepted (POSTed queries).
const MAX_FORM_BYTES: usize = 1 << 20;

pub fn handler(app: Arc<App>) -> Handler {
    Arc::new(move |req: Request<Incoming>| -> BoxFuture {
        let app = app.clone();
        Box::pin(async move { route(app, req).await })
    })
}

async fn route(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (method.clone(), path.as_str()) {
        (_, "/-/healthy") => text_response(StatusCode::OK, "fleetwatch-alerter is Healthy.\n"),
        (_, "/-/ready") => text_response(StatusCode::OK, "fleetwatch-alerter is Ready.\n"),
        (Method::POST | Method::PUT, "/-/reload") => match app.reload().await {
            Ok(()) => text_response(StatusCode::OK, ""),
            Err(e) => text_response(StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {e}\n")),
        },
        (_, "/-/reload") => text_response(StatusCode::METHOD_NOT_ALLOWED, "Only POST or PUT requests allowed\n"),
        (Method::GET, "/metrics") => metrics(&app, &req),
        (Method::GET, "/") => index(),
        (_, p) if crate::notify::api::owns(p) => crate::notify::api::route(&app.notify, req).await,
        (_, p) if p.starts_with("/api/v1/") => api(app, req).await,
        _ => text_response(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

fn index() -> Response<Body> {
    let html = "<html><head><title>fleetwatch-alerter</title></head><body><h1>fleetwatch-alerter</h1>\
        <ul><li><a href=\"/api/v1/targets\">targets</a></li><li><a href=\"/metrics\">metrics</a></li></ul></body></html>\n";
    let mut resp = text_response(StatusCode::OK, html);
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/html; charset=utf-8"));
    resp
}

fn metrics(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let format = negotiate(req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()));
    let stats = app.store.read().unwrap_or_else(|p| p.into_inner()).stats();
    let health = app.manager.lock().unwrap_or_else(|p| p.into_inner()).health_counts();
    let mut families = app.telemetry.families(&stats, &health, app.options.max_series);
    families.push(fleetwatch_common::process::build_info("alerter", VERSION));
    let rules = app.rules.read().unwrap_or_else(|p| p.into_inner()).rule_count();
    families.push(Family::single("fleetwatch_alerter_rules", "Rules loaded.", MetricType::Gauge, rules as f64));
    families.extend(rule_group_families(app));
    families.extend(app.notify.delivery.families());
    families.extend(fleetwatch_common::process::families());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut resp = Response::new(Body::full(encode(&families, format)));
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(format.content_type()));
    resp
}

/// Per rule group (`rule_group` = `file;name`, as Prometheus labels it): last evaluation's
/// duration and time, and the alerts by state.
fn rule_group_families(app: &App) -> Vec<Family> {
    let mut duration =
        Family::gauge("fleetwatch_alerter_rule_group_last_duration_seconds", "The duration of the last rule group evaluation.");
    let mut last = Family::gauge(
        "fleetwatch_alerter_rule_group_last_evaluation_timestamp_seconds",
        "The timestamp of the last rule group evaluation in seconds.",
    );
    let mut alerts = Family::gauge("fleetwatch_alerter_alerts", "Current alerts by state (pending, firing, inactive = resolved but kept).");
    let mut series = Family::gauge("ALERTS", "Pending and firing alerts, as the rules see them (alertstate, and the alert's labels).");
    let mut for_state = Family::gauge("ALERTS_FOR_STATE", "When each pending or firing alert became active, in seconds since the epoch.");
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    if let Some(m) = app.rule_manager.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        m.for_each(&mut |g| {
            let key = format!("{};{}", g.group.file, g.group.name);
            duration.add(&[("rule_group", &key)], g.last_duration);
            last.add(&[("rule_group", &key)], g.last_eval_ms.unwrap_or(0) as f64 / 1000.0);
            for (_, a) in g.group.alerts() {
                *counts.entry(a.state.name()).or_default() += 1;
                if a.state != State::Inactive {
                    let mut labels: Vec<(&str, &str)> = a.labels.iter().collect();
                    for_state.add(&labels, (a.active_at / 1000) as f64);
                    labels.push(("alertstate", a.state.name()));
                    labels.sort();
                    series.add(&labels, 1.0);
                }
            }
        });
    }
    for state in ["firing", "inactive", "pending"] {
        alerts.add(&[("state", state)], counts.get(state).copied().unwrap_or(0) as f64);
    }
    vec![duration, last, alerts, series, for_state]
}

/// An API failure in Prometheus's shape.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

fn bad_data(message: impl Into<String>) -> ApiError {
    ApiError { status: StatusCode::BAD_REQUEST, kind: "bad_data", message: message.into() }
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

async fn api(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().trim_start_matches("/api/v1/").to_string();
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(e) => return error_response(e),
    };
    let result = match path.as_str() {
        "query" => query(&app, &form),
        "query_range" => query_range(&app, &form),
        "series" => series(&app, &form),
        "labels" => labels(&app, &form, None),
        "targets" => Ok(targets(&app, &form)),
        "rules" => Ok(rules(&app)),
        "alerts" => Ok(alerts(&app)),
        "status/buildinfo" => Ok(
            json!({"version": VERSION, "revision": fleetwatch_common::process::REVISION, "branch": "", "buildUser": "", "buildDate": "", "goVersion": ""}),
        ),
        "metadata" => Ok(json!({})),
        p => match p.strip_prefix("label/").and_then(|r| r.strip_suffix("/values")) {
            Some(name) => labels(&app, &form, Some(name)),
            None => {
                Err(ApiError { status: StatusCode::NOT_FOUND, kind: "not_found", message: format!("unknown API endpoint /api/v1/{p}") })
            }
        },
    };
    match result {
        Ok(data) => json_response(StatusCode::OK, json!({"status": "success", "data": data})),
        Err(e) => error_response(e),
    }
}

fn error_response(e: ApiError) -> Response<Body> {
    json_response(e.status, json!({"status": "error", "errorType": e.kind, "error": e.message}))
}

/// Query-string and (for POST) url-encoded body parameters, in order.
type Form = Vec<(String, String)>;

async fn read_form(req: Request<Incoming>) -> Result<Form, ApiError> {
    let mut form = parse_urlencoded(req.uri().query().unwrap_or(""));
    let is_form = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if req.method() == Method::POST && is_form {
        let body =
            Limited::new(req.into_body(), MAX_FORM_BYTES).collect().await.map_err(|_| bad_data("request body too large or unreadable"))?;
        let text = String::from_utf8(body.to_bytes().to_vec()).map_err(|_| bad_data("request body is not UTF-8"))?;
        form.extend(parse_urlencoded(&text));
    }
    Ok(form)
}

pub fn parse_urlencoded(s: &str) -> Form {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn param<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn time_param(form: &Form, name: &str, default: i64) -> Result<i64, ApiError> {
    match param(form, name) {
        None | Some("") => Ok(default),
        Some(s) => parse_time(s).ok_or_else(|| bad_data(format!("invalid parameter {name:?}: cannot parse {s:?} to a valid timestamp"))),
    }
}

fn engine(app: &App) -> Engine {
    let step = app.config.read().unwrap_or_else(|p| p.into_inner()).evaluation_interval().as_millis() as i64;
    Engine { lookback_ms: app.options.lookback_ms, subquery_step_ms: step.max(1), ..Engine::default() }
}

fn parse_query(form: &Form) -> Result<promql_parser::parser::Expr, ApiError> {
    let q = param(form, "query").ok_or_else(|| bad_data("invalid parameter \"query\": parameter is missing"))?;
    fleetwatch_promql::parse(q).map_err(|e| bad_data(format!("invalid parameter \"query\": {e}")))
}

fn query(app: &App, form: &Form) -> Result<serde_json::Value, ApiError> {
    let expr = parse_query(form)?;
    let t = time_param(form, "time", crate::scrape::now_ms())?;
    let store = app.store.read().unwrap_or_else(|p| p.into_inner());
    let value = engine(app).instant(&*store, &expr, t).map_err(exec_error)?;
    Ok(value_json(value, t))
}

fn exec_error(e: impl std::fmt::Display) -> ApiError {
    ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, kind: "execution", message: e.to_string() }
}

fn query_range(app: &App, form: &Form) -> Result<serde_json::Value, ApiError> {
    let expr = parse_query(form)?;
    let start = time_param(form, "start", i64::MIN)?;
    let end = time_param(form, "end", i64::MIN)?;
    if start == i64::MIN || end == i64::MIN {
        return Err(bad_data("invalid parameter \"start\"/\"end\": both are required"));
    }
    let step = param(form, "step").ok_or_else(|| bad_data("invalid parameter \"step\": parameter is missing"))?;
    let step_ms = match step.parse::<f64>() {
        Ok(f) if f > 0.0 => (f * 1000.0) as i64,
        _ => parse_duration(step).map(|d| d.as_millis() as i64).map_err(|e| bad_data(format!("invalid parameter \"step\": {e}")))?,
    };
    if end < start {
        return Err(bad_data("invalid parameter \"end\": end timestamp must not be before start time"));
    }
    if step_ms <= 0 || (end - start) / step_ms > 11_000 {
        return Err(bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let store = app.store.read().unwrap_or_else(|p| p.into_inner());
    let matrix = engine(app).range(&*store, &expr, start, end, step_ms).map_err(exec_error)?;
    let result: Vec<serde_json::Value> = matrix
        .into_iter()
        .map(|(l, s)| json!({"metric": labels_json(&l), "values": s.iter().map(|x| point(x.t, x.v)).collect::<Vec<_>>()}))
        .collect();
    Ok(json!({"resultType": "matrix", "result": result}))
}

fn labels_json(l: &Labels) -> serde_json::Value {
    let mut m = Map::new();
    for (k, v) in l.iter() {
        m.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    }
    serde_json::Value::Object(m)
}

/// `[seconds, "value"]` with Prometheus's float formatting.
fn point(t_ms: i64, v: f64) -> serde_json::Value {
    json!([t_ms as f64 / 1000.0, format_value(v)])
}

pub use fleetwatch_promql::gomath::format_float as format_value;

fn value_json(value: Value, t: i64) -> serde_json::Value {
    match value {
        Value::Scalar(v) => json!({"resultType": "scalar", "result": point(t, v)}),
        Value::String(s) => json!({"resultType": "string", "result": [t as f64 / 1000.0, s]}),
        Value::Vector(v) => {
            let result: Vec<_> = v.iter().map(|(l, x)| json!({"metric": labels_json(l), "value": point(t, *x)})).collect();
            json!({"resultType": "vector", "result": result})
        }
        Value::Matrix(m) => {
            let result: Vec<_> = m
                .iter()
                .map(|(l, s)| json!({"metric": labels_json(l), "values": s.iter().map(|x| point(x.t, x.v)).collect::<Vec<_>>()}))
                .collect();
            json!({"resultType": "matrix", "result": result})
        }
    }
}

/// The `match[]` selectors as matcher lists.
fn selectors(form: &Form, required: bool) -> Result<Vec<Vec<promql_parser::label::Matcher>>, ApiError> {
    let mut out = Vec::new();
    for (_, m) in form.iter().filter(|(k, _)| k == "match[]") {
        let expr = fleetwatch_promql::parse(m).map_err(|e| bad_data(format!("invalid parameter \"match[]\": {e}")))?;
        if !matches!(expr, promql_parser::parser::Expr::VectorSelector(_)) {
            return Err(bad_data(format!("invalid parameter \"match[]\": {m:?} is not a series selector")));
        }
        out.extend(fleetwatch_promql::selector_needs(&expr, 0).into_iter().map(|n| n.matchers));
    }
    if required && out.is_empty() {
        return Err(bad_data("no match[] parameter provided"));
    }
    Ok(out)
}

fn matching_series(app: &App, form: &Form, required: bool) -> Result<BTreeSet<Labels>, ApiError> {
    let sets = selectors(form, required)?;
    let start = time_param(form, "start", i64::MIN)?;
    let end = time_param(form, "end", i64::MAX)?;
    let store = app.store.read().unwrap_or_else(|p| p.into_inner());
    let mut found = BTreeSet::new();
    let all = vec![Vec::new()];
    for matchers in if sets.is_empty() { &all } else { &sets } {
        store.for_each_matching(matchers, &mut |l, samples| {
            if samples.iter().any(|s| s.t >= start && s.t <= end) {
                found.insert(l.clone());
            }
        });
    }
    Ok(found)
}

fn series(app: &App, form: &Form) -> Result<serde_json::Value, ApiError> {
    let found = matching_series(app, form, true)?;
    Ok(serde_json::Value::Array(found.iter().map(labels_json).collect()))
}

fn labels(app: &App, form: &Form, name: Option<&str>) -> Result<serde_json::Value, ApiError> {
    let found = matching_series(app, form, false)?;
    let mut out = BTreeSet::new();
    for l in &found {
        for (k, v) in l.iter() {
            match name {
                None => {
                    out.insert(k.to_string());
                }
                Some(n) if n == k => {
                    out.insert(v.to_string());
                }
                _ => {}
            }
        }
    }
    Ok(json!(out))
}

fn targets(app: &App, form: &Form) -> serde_json::Value {
    let state = param(form, "state").unwrap_or("any");
    let (mut active, dropped) = app.manager.lock().unwrap_or_else(|p| p.into_inner()).targets();
    active.sort_by(|a, b| (&a.target.job, &a.target.url).cmp(&(&b.target.job, &b.target.url)));
    let active_json: Vec<serde_json::Value> = active
        .iter()
        .map(|v| {
            let t = &v.target;
            let h = &v.health;
            let labels: BTreeMap<&str, &str> = t.labels.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let last = h.last_scrape.and_then(|s| s.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| rfc3339(d.as_millis() as i64));
            json!({
                "discoveredLabels": t.discovered,
                "labels": labels,
                "scrapePool": t.job,
                "scrapeUrl": t.url,
                "globalUrl": t.url,
                "lastError": h.last_error,
                "lastScrape": last.unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
                "lastScrapeDuration": h.last_duration,
                "lastSamplesScraped": h.samples,
                "health": match h.up { Some(true) => "up", Some(false) => "down", None => "unknown" },
                "scrapeInterval": format_duration(t.interval),
                "scrapeTimeout": format_duration(t.timeout),
            })
        })
        .collect();
    let dropped_json: Vec<serde_json::Value> = dropped.iter().map(|(_, d)| json!({"discoveredLabels": d})).collect();
    let want = |s: &str| state == "any" || state == s;
    json!({
        "activeTargets": if want("active") { active_json } else { vec![] },
        "droppedTargets": if want("dropped") { dropped_json } else { vec![] },
    })
}

/// What the running groups report: per group (last evaluation, duration), per rule (error, alerts).
struct GroupStatus {
    last_eval_ms: Option<i64>,
    duration: f64,
    rules: Vec<(Option<String>, Vec<serde_json::Value>)>,
}

fn group_statuses(app: &App) -> Vec<GroupStatus> {
    let mut out = Vec::new();
    if let Some(m) = app.rule_manager.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        m.for_each(&mut |g| {
            let alerts = g.group.alerts();
            let rules = g
                .group
                .rules
                .iter()
                .map(|r| {
                    let mine = alerts.iter().filter(|(name, a)| *name == r.name && a.state != State::Inactive);
                    (r.last_error.clone(), mine.map(|(_, a)| alert_json(a)).collect())
                })
                .collect();
            out.push(GroupStatus { last_eval_ms: g.last_eval_ms, duration: g.last_duration, rules });
        });
    }
    out
}

fn alert_json(a: &Alert) -> serde_json::Value {
    let annotations: BTreeMap<&str, &str> = a.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    json!({
        "labels": labels_json(&a.labels),
        "annotations": annotations,
        "state": a.state.name(),
        "activeAt": rfc3339(a.active_at),
        "value": value_e(a.value),
    })
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as Prometheus prints alert values.
fn value_e(v: f64) -> String {
    if v.is_finite() {
        fleetwatch_promql::gomath::format_float_e(v).to_lowercase()
    } else {
        format_value(v)
    }
}

/// The rule groups with their evaluation state, in Prometheus's `/api/v1/rules` shape.
fn rules(app: &App) -> serde_json::Value {
    let set = app.rules.read().unwrap_or_else(|p| p.into_inner()).clone();
    let default_interval = app.config.read().unwrap_or_else(|p| p.into_inner()).evaluation_interval();
    let statuses = group_statuses(app);
    let mut groups = Vec::new();
    let defs = set.files.iter().flat_map(|f| f.file.groups.iter().map(move |g| (f, g)));
    for ((file, g), status) in defs.zip(statuses) {
        let last = status.last_eval_ms.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
        let rules: Vec<serde_json::Value> =
            g.rules.iter().zip(status.rules).map(|(r, (err, alerts))| rule_json(r, err, alerts, &last)).collect();
        let interval = g.interval.map(|d| d.0).unwrap_or(default_interval);
        groups.push(json!({
            "name": g.name, "file": file.origin, "rules": rules, "interval": interval.as_secs_f64(), "limit": g.limit,
            "evaluationTime": status.duration, "lastEvaluation": last,
        }));
    }
    json!({"groups": groups})
}

fn rule_json(r: &crate::rules::Rule, err: Option<String>, alerts: Vec<serde_json::Value>, last: &str) -> serde_json::Value {
    let health = match (&err, last.starts_with("0001")) {
        (Some(_), _) => "err",
        (None, true) => "unknown",
        (None, false) => "ok",
    };
    let mut v =
        json!({"name": r.name(), "query": r.expr, "labels": r.labels, "health": health, "evaluationTime": 0, "lastEvaluation": last});
    if let Some(e) = err {
        v["lastError"] = json!(e);
    }
    if r.alert.is_some() {
        let state = if alerts.iter().any(|a| a["state"] == "firing") {
            "firing"
        } else if alerts.is_empty() {
            "inactive"
        } else {
            "pending"
        };
        v["type"] = json!("alerting");
        v["duration"] = json!(r.for_.map(|d| d.0.as_secs_f64()).unwrap_or(0.0));
        v["keepFiringFor"] = json!(r.keep_firing_for.map(|d| d.0.as_secs_f64()).unwrap_or(0.0));
        v["annotations"] = json!(r.annotations);
        v["alerts"] = json!(alerts);
        v["state"] = json!(state);
    } else {
        v["type"] = json!("recording");
    }
    v
}

/// Pending and firing alerts, in Prometheus's `/api/v1/alerts` shape.
fn alerts(app: &App) -> serde_json::Value {
    let all: Vec<serde_json::Value> = group_statuses(app).into_iter().flat_map(|g| g.rules).flat_map(|(_, a)| a).collect();
    json!({"alerts": all})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_like_go() {
        assert_eq!(
            parse_urlencoded("query=rate(x%5B5m%5D)+%3E+0&time=1.5&match[]=a"),
            vec![("query".into(), "rate(x[5m]) > 0".into()), ("time".into(), "1.5".into()), ("match[]".into(), "a".into())]
        );
        assert_eq!(parse_urlencoded("a=%zz%"), vec![("a".into(), "%zz%".into())]);
    }

    #[test]
    fn values_format_as_prometheus_does() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    }
}
