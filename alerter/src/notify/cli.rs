//! `fleetwatch-alerter silence add|list|expire` and `fleetwatch-alerter history`: clients of a
//! running alerter's API, like amtool.

use super::silences::{parse_matcher, ApiMatcher};
use crate::cli::SilenceCommand;
use crate::timefmt::rfc3339;
use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// Runs a silence subcommand; the exit code.
pub fn silence(url: &str, what: &SilenceCommand) -> i32 {
    let result = match what {
        SilenceCommand::Add { matchers, duration, comment, author } => add(url, matchers, duration.0, comment, author),
        SilenceCommand::List { expired } => list(url, *expired),
        SilenceCommand::Expire { ids } => {
            ids.iter().try_for_each(|id| call(Method::DELETE, &format!("{url}/api/v1/silence/{id}"), None).map(|_| ()))
        }
    };
    finish(result)
}

/// Prints the history since `since` ago, one event a line (or the JSON).
pub fn history(url: &str, since: Duration, alertname: Option<&str>, as_json: bool) -> i32 {
    let mut path = format!("{url}/api/v1/history?since={}s", since.as_secs());
    if let Some(a) = alertname {
        path.push_str(&format!("&alertname={}", encode(a)));
    }
    let result = call(Method::GET, &path, None).map(|v| {
        if as_json {
            println!("{v}");
            return;
        }
        for e in v["data"].as_array().into_iter().flatten() {
            let labels: Vec<String> = e["labels"].as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", v)).collect();
            println!(
                "{} {:<10} {} {{{}}} {}{}",
                e["at"].as_str().unwrap_or(""),
                e["kind"].as_str().unwrap_or(""),
                e["alertname"].as_str().unwrap_or(""),
                labels.join(", "),
                e["receiver"].as_str().map(|r| format!("receiver={r} ")).unwrap_or_default(),
                e["detail"].as_str().unwrap_or("")
            );
        }
    });
    finish(result)
}

fn finish(result: Result<(), String>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fleetwatch-alerter: {e}");
            1
        }
    }
}

fn add(url: &str, matchers: &[String], duration: Duration, comment: &str, author: &str) -> Result<(), String> {
    let parsed: Vec<ApiMatcher> = matchers.iter().map(|m| parse_matcher(m).map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
    let now = crate::scrape::now_ms();
    let author = if author.is_empty() { std::env::var("USER").unwrap_or_default() } else { author.to_string() };
    let body = json!({"matchers": parsed, "startsAt": rfc3339(now), "endsAt": rfc3339(now + duration.as_millis() as i64),
        "createdBy": author, "comment": comment});
    let v = call(Method::POST, &format!("{url}/api/v1/silences"), Some(body))?;
    println!("{}", v["silenceID"].as_str().unwrap_or(""));
    Ok(())
}

fn list(url: &str, expired: bool) -> Result<(), String> {
    let v = call(Method::GET, &format!("{url}/api/v1/silences"), None)?;
    println!("{:<36}  {:<8}  {:<24}  {:<24}  {:<12}  MATCHERS  COMMENT", "ID", "STATE", "STARTS", "ENDS", "CREATED BY");
    for s in v.as_array().into_iter().flatten() {
        let state = s["status"]["state"].as_str().unwrap_or("");
        if state == "expired" && !expired {
            continue;
        }
        let matchers: Vec<String> = s["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let op = match (m["isEqual"].as_bool().unwrap_or(true), m["isRegex"].as_bool().unwrap_or(false)) {
                    (true, false) => "=",
                    (false, false) => "!=",
                    (true, true) => "=~",
                    (false, true) => "!~",
                };
                format!("{}{op}{:?}", m["name"].as_str().unwrap_or(""), m["value"].as_str().unwrap_or(""))
            })
            .collect();
        let f = |k: &str| s[k].as_str().unwrap_or("").to_string();
        println!(
            "{:<36}  {:<8}  {:<24}  {:<24}  {:<12}  {}  {}",
            f("id"),
            state,
            f("startsAt"),
            f("endsAt"),
            f("createdBy"),
            matchers.join(","),
            f("comment")
        );
    }
    Ok(())
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// One request to the running alerter; the JSON answer, or the error it gave.
fn call(method: Method, url: &str, body: Option<Value>) -> Result<Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = crate::scrape::client_for(&Default::default()).map_err(|e| e.to_string())?;
        let headers = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let resp =
            client.request(method, url, &headers, body, Duration::from_secs(30), 64 << 20).await.map_err(|e| format!("{url}: {e}"))?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| format!("{url}: HTTP {}: {e}", resp.status))?;
        if !resp.status.is_success() {
            return Err(format!("{url}: HTTP {}: {}", resp.status, v["error"].as_str().unwrap_or("")));
        }
        Ok(v)
    })
}
