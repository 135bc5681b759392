//! Silences: a set of matchers muting the alerts they all match between `starts_at` and
//! `ends_at`. This module owns the type and the matching; storing them and the API are elsewhere.

use super::matcher::{matches_all, Matcher};
use super::message::KV;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

/// Alertmanager's silence states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// Why a silence cannot be created (Alertmanager's checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("at least one matcher required")]
    NoMatchers,
    #[error("at least one matcher must not match the empty string")]
    MatchesEverything,
    #[error("end time must not be before start time")]
    EndsBeforeStart,
}

impl Silence {
    /// Checks a new silence: some matcher must exclude alerts lacking its label (so it cannot
    /// mute everything), and it must not end before it starts.
    pub fn validate(&self) -> Result<(), SilenceError> {
        if self.matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        if self.matchers.iter().all(|m| m.matches(&KV::new())) {
            return Err(SilenceError::MatchesEverything);
        }
        if self.ends_at_ms < self.starts_at_ms {
            return Err(SilenceError::EndsBeforeStart);
        }
        Ok(())
    }

    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else if now_ms < self.ends_at_ms {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Whether the silence is active at `now_ms` and every matcher matches `labels`. A silence
    /// without matchers mutes nothing (Alertmanager refuses to create one).
    pub fn mutes(&self, labels: &KV, now_ms: i64) -> bool {
        self.state(now_ms) == SilenceState::Active && !self.matchers.is_empty() && matches_all(&self.matchers, labels)
    }
}

/// The ids of the silences muting `labels` at `now_ms`.
pub fn muting<'a>(silences: &'a [Silence], labels: &KV, now_ms: i64) -> Vec<&'a str> {
    silences.iter().filter(|s| s.mutes(labels, now_ms)).map(|s| s.id.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::matcher::parse_matchers;

    fn silence(m: &str, from: i64, to: i64) -> Silence {
        Silence {
            id: "s1".into(),
            matchers: parse_matchers(m).unwrap(),
            starts_at_ms: from,
            ends_at_ms: to,
            created_by: String::new(),
            comment: String::new(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> KV {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn active_only_between_start_and_end() {
        let s = silence(r#"alertname="A""#, 100, 200);
        let l = labels(&[("alertname", "A")]);
        assert!(!s.mutes(&l, 99));
        assert!(s.mutes(&l, 100));
        assert!(!s.mutes(&l, 200));
        assert_eq!(s.state(250), SilenceState::Expired);
    }

    #[test]
    fn all_matchers_must_match() {
        let s = silence(r#"alertname="A", instance=~"web-.*""#, 0, 10);
        assert!(s.mutes(&labels(&[("alertname", "A"), ("instance", "web-1")]), 5));
        assert!(!s.mutes(&labels(&[("alertname", "A"), ("instance", "db-1")]), 5));
        assert!(!s.mutes(&labels(&[("alertname", "B"), ("instance", "web-1")]), 5));
        assert_eq!(muting(&[s], &labels(&[("alertname", "A"), ("instance", "web-2")]), 5), ["s1"]);
    }

    #[test]
    fn validation_refuses_silences_muting_everything() {
        assert_eq!(silence(r#"a="b""#, 0, 1).validate(), Ok(()));
        assert_eq!(silence(r#"a=~".*""#, 0, 1).validate(), Err(SilenceError::MatchesEverything));
        assert_eq!(silence(r#"a!="b""#, 0, 1).validate(), Err(SilenceError::MatchesEverything));
        assert_eq!(silence(r#"a="b""#, 2, 1).validate(), Err(SilenceError::EndsBeforeStart));
        let mut none = silence(r#"a="b""#, 0, 1);
        none.matchers.clear();
        assert_eq!(none.validate(), Err(SilenceError::NoMatchers));
    }

    #[test]
    fn serializes_matchers_as_strings() {
        let s = silence(r#"a=~"b""#, 0, 1);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""a=~\"b\"""#), "{json}");
        assert_eq!(serde_json::from_str::<Silence>(&json).unwrap(), s);
    }
}
