//! Silences as the API and the database hold them, in Alertmanager v2's JSON shape (`id`,
//! `matchers` of `{name, value, isRegex, isEqual}`, `startsAt`, `endsAt`, `createdBy`, `comment`,
//! `status.state`), and the `name="value"` matcher syntax of the CLI.

use crate::timefmt::{parse_time, rfc3339};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiMatcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// A silence as stored: times in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceRecord {
    pub id: String,
    pub matchers: Vec<ApiMatcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub updated_at_ms: i64,
    pub created_by: String,
    pub comment: String,
}

/// The body of `POST /api/v1/silences` (Alertmanager's PostableSilence).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Vec<ApiMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SilenceError {
    #[error("invalid time {0:?}")]
    Time(String),
    #[error("a silence needs at least one matcher")]
    NoMatchers,
    #[error("endsAt is before startsAt")]
    EndBeforeStart,
    #[error("matcher {0:?}: {1}")]
    Matcher(String, String),
}

impl PostableSilence {
    /// Validates the body and makes the record (a new random id when none was given).
    pub fn into_record(self, now: i64) -> Result<SilenceRecord, SilenceError> {
        let starts = parse_time(&self.starts_at).ok_or_else(|| SilenceError::Time(self.starts_at.clone()))?;
        let ends = parse_time(&self.ends_at).ok_or_else(|| SilenceError::Time(self.ends_at.clone()))?;
        if self.matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        if ends < starts {
            return Err(SilenceError::EndBeforeStart);
        }
        for m in &self.matchers {
            super::matcher::Matcher::from_parts(&m.name, &m.value, m.is_regex, m.is_equal)
                .map_err(|e| SilenceError::Matcher(m.name.clone(), e.to_string()))?;
        }
        Ok(SilenceRecord {
            id: self.id.filter(|s| !s.is_empty()).unwrap_or_else(new_id),
            matchers: self.matchers,
            starts_at_ms: starts.max(now),
            ends_at_ms: ends,
            updated_at_ms: now,
            created_by: self.created_by,
            comment: self.comment,
        })
    }
}

impl SilenceRecord {
    pub fn state(&self, now: i64) -> &'static str {
        if now >= self.ends_at_ms {
            "expired"
        } else if now < self.starts_at_ms {
            "pending"
        } else {
            "active"
        }
    }

    /// Alertmanager's GettableSilence.
    pub fn to_json(&self, now: i64) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "status": {"state": self.state(now)},
            "updatedAt": rfc3339(self.updated_at_ms),
            "matchers": self.matchers,
            "startsAt": rfc3339(self.starts_at_ms),
            "endsAt": rfc3339(self.ends_at_ms),
            "createdBy": self.created_by,
            "comment": self.comment,
        })
    }

    /// The dispatcher's silence (matchers that do not compile were refused on creation).
    pub fn to_dispatch(&self) -> super::silence::Silence {
        super::silence::Silence {
            id: self.id.clone(),
            matchers: self
                .matchers
                .iter()
                .filter_map(|m| super::matcher::Matcher::from_parts(&m.name, &m.value, m.is_regex, m.is_equal).ok())
                .collect(),
            starts_at_ms: self.starts_at_ms,
            ends_at_ms: self.ends_at_ms,
            created_by: self.created_by.clone(),
            comment: self.comment.clone(),
        }
    }

    /// Whether the silence matches the label set (every matcher must).
    pub fn matches(&self, labels: &super::message::KV) -> bool {
        self.matchers.iter().all(|m| {
            let v = labels.get(&m.name).map(String::as_str).unwrap_or("");
            let hit = if m.is_regex {
                regex::Regex::new(&format!("^(?:{})$", m.value)).map(|r| r.is_match(v)).unwrap_or(false)
            } else {
                v == m.value
            };
            hit == m.is_equal
        })
    }
}

/// A random id in the UUID shape Alertmanager uses.
pub fn new_id() -> String {
    let h = |n: usize| (0..n).map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0')).collect::<String>();
    format!("{}-{}-4{}-{}-{}", h(8), h(4), h(3), h(4), h(12))
}

/// Parses a CLI matcher: `name="value"`, `name=~"re"`, `name!="value"`, `name!~"re"` (quotes
/// optional).
pub fn parse_matcher(s: &str) -> Result<ApiMatcher, SilenceError> {
    let bad = |why: &str| SilenceError::Matcher(s.to_string(), why.to_string());
    let at = s.find(['=', '!']).ok_or_else(|| bad("expected name=\"value\""))?;
    let name = s[..at].trim();
    let rest = &s[at..];
    let (op, value) = ["=~", "!~", "!=", "="]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim())))
        .ok_or_else(|| bad("unknown operator"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad("invalid label name"));
    }
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(v) => v.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_string(),
    };
    Ok(ApiMatcher { name: name.to_string(), value, is_regex: op.contains('~'), is_equal: !op.starts_with('!') })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_matchers_parse() {
        assert_eq!(
            parse_matcher("alertname=\"X\"").unwrap(),
            ApiMatcher { name: "alertname".into(), value: "X".into(), is_regex: false, is_equal: true }
        );
        assert_eq!(
            parse_matcher("instance!~\"a.*\"").unwrap(),
            ApiMatcher { name: "instance".into(), value: "a.*".into(), is_regex: true, is_equal: false }
        );
        assert_eq!(parse_matcher("job=node").unwrap().value, "node");
        assert!(parse_matcher("novalue").is_err());
    }

    #[test]
    fn records_validate_match_and_report_state() {
        let p = PostableSilence {
            id: None,
            matchers: vec![parse_matcher("alertname=\"X\"").unwrap(), parse_matcher("instance=~\"a|b\"").unwrap()],
            starts_at: "2026-01-01T00:00:00Z".into(),
            ends_at: "2026-01-01T01:00:00Z".into(),
            created_by: "me".into(),
            comment: "c".into(),
        };
        let r = p.clone().into_record(0).unwrap();
        let kv = |i: &str| [("alertname".to_string(), "X".to_string()), ("instance".to_string(), i.to_string())].into();
        assert!(r.matches(&kv("a")));
        assert!(!r.matches(&kv("c")));
        assert_eq!(r.state(r.starts_at_ms - 1), "pending");
        assert_eq!(r.state(r.starts_at_ms), "active");
        assert_eq!(r.state(r.ends_at_ms), "expired");
        assert_eq!(r.to_json(0)["matchers"][1]["isRegex"], true);
        let bad = PostableSilence { ends_at: "2025-01-01T00:00:00Z".into(), ..p };
        assert_eq!(bad.into_record(0).err(), Some(SilenceError::EndBeforeStart));
    }
}
