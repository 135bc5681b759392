//! Alertmanager's label matchers (`a="b"`, `a!="b"`, `a=~"re"`, `a!~"re"`, values quoted or bare,
//! optionally several in `{...}` separated by commas): parsing, printing and matching. Regexes are
//! fully anchored and a missing label matches as the empty value, as in Alertmanager.

use super::message::KV;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One matcher; the regex of `=~`/`!~` is compiled once.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<regex::Regex>,
}

/// A matcher that cannot be parsed or whose regex does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid matcher {input:?}: {reason}")]
pub struct MatcherError {
    pub input: String,
    pub reason: String,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, MatcherError> {
        let err = |reason: String| MatcherError { input: format!("{name}{}{value:?}", op.as_str()), reason };
        if name.is_empty() {
            return Err(err("empty label name".into()));
        }
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(regex::Regex::new(&format!("^(?s:{value})$")).map_err(|e| err(format!("bad regex {value:?}: {e}")))?)
            }
            _ => None,
        };
        Ok(Matcher { name: name.to_string(), op, value: value.to_string(), re })
    }

    /// From Alertmanager v2's API shape (`name`, `value`, `isRegex`, `isEqual`).
    pub fn from_parts(name: &str, value: &str, is_regex: bool, is_equal: bool) -> Result<Matcher, MatcherError> {
        let op = match (is_regex, is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::new(name, op, value)
    }

    pub fn is_regex(&self) -> bool {
        matches!(self.op, MatchOp::Regex | MatchOp::NotRegex)
    }

    pub fn is_equal(&self) -> bool {
        matches!(self.op, MatchOp::Equal | MatchOp::Regex)
    }

    /// Parses one matcher (`a="b"`); see `parse_matchers` for lists.
    pub fn parse(input: &str) -> Result<Matcher, MatcherError> {
        let mut all = parse_matchers(input)?;
        match all.len() {
            1 => Ok(all.remove(0)),
            n => Err(MatcherError { input: input.to_string(), reason: format!("expected one matcher, found {n}") }),
        }
    }

    pub fn matches(&self, labels: &KV) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match (self.op, &self.re) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(v),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(v),
            _ => false,
        }
    }
}

/// Whether every matcher matches (an empty list matches everything).
pub fn matches_all(matchers: &[Matcher], labels: &KV) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// `{a="b",c=~"d"}`, as Alertmanager prints a route's matchers.
pub fn format_list(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
    format!("{{{}}}", parts.join(","))
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.op.as_str(), quote(&self.value))
    }
}

/// A double-quoted string as Alertmanager prints matcher values and group keys (Go's `%q`).
pub(crate) use crate::template::go_quote as quote;

/// Parses `a="b"`, `a=b, c!~"d.*"` or `{a="b",c="d"}` into matchers.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherError> {
    let err = |reason: &str| MatcherError { input: input.to_string(), reason: reason.to_string() };
    let mut s = input.trim();
    if let Some(inner) = s.strip_prefix('{') {
        s = inner.strip_suffix('}').ok_or_else(|| err("missing closing '}'"))?.trim();
    }
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (m, after) = parse_one(rest).map_err(|r| err(&r))?;
        out.push(Matcher::new(&m.0, m.1, &m.2).map_err(|e| err(&e.reason))?);
        rest = after.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(err("expected ',' between matchers"));
        }
    }
    if out.is_empty() {
        return Err(err("no matcher"));
    }
    Ok(out)
}

type Parsed = (String, MatchOp, String);

fn parse_one(s: &str) -> Result<(Parsed, &str), String> {
    let name_end = s.find(['=', '!']).ok_or("missing operator")?;
    let name = s[..name_end].trim().trim_matches('"').to_string();
    let rest = &s[name_end..];
    let (op, rest) = [("=~", MatchOp::Regex), ("!~", MatchOp::NotRegex), ("!=", MatchOp::NotEqual), ("=", MatchOp::Equal)]
        .iter()
        .find_map(|(t, op)| rest.strip_prefix(t).map(|r| (*op, r)))
        .ok_or("bad operator")?;
    let rest = rest.trim_start();
    let (value, rest) = if rest.starts_with('"') { parse_quoted(rest)? } else { parse_bare(rest) };
    Ok(((name, op, value), rest))
}

/// A quoted value with its escapes; returns the rest after the closing quote.
fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, c)) => out.push(c),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated quoted value".into())
}

/// A bare value runs to the next comma (or the end), trimmed.
fn parse_bare(s: &str) -> (String, &str) {
    let end = s.find(',').unwrap_or(s.len());
    (s[..end].trim().to_string(), &s[end..])
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Matcher::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Deserializes a `matchers:` list; each string may hold several matchers.
pub fn deserialize_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Matcher>, D::Error> {
    let lines = Option::<Vec<String>>::deserialize(d)?.unwrap_or_default();
    let mut out = Vec::new();
    for l in lines {
        out.extend(parse_matchers(&l).map_err(serde::de::Error::custom)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> KV {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_every_operator_quoted_and_bare() {
        let ms = parse_matchers(r#"{a="b", c!=d, e=~"f|g", h!~ "i.*" }"#).unwrap();
        let shown: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
        assert_eq!(shown, [r#"a="b""#, r#"c!="d""#, r#"e=~"f|g""#, r#"h!~"i.*""#]);
        assert_eq!(Matcher::parse(r#"x="q\"uote""#).unwrap().value, "q\"uote");
        assert_eq!(Matcher::parse("severity = critical").unwrap().value, "critical");
    }

    #[test]
    fn regexes_are_anchored_and_missing_labels_are_empty() {
        let m = Matcher::parse(r#"a=~"b|c""#).unwrap();
        assert!(m.matches(&labels(&[("a", "b")])));
        assert!(!m.matches(&labels(&[("a", "bb")])));
        assert!(Matcher::parse(r#"a="""#).unwrap().matches(&labels(&[])));
        assert!(Matcher::parse(r#"a!~"x""#).unwrap().matches(&labels(&[])));
    }

    #[test]
    fn bad_input_is_named() {
        let e = Matcher::parse(r#"a=~"(""#).unwrap_err().to_string();
        assert!(e.contains("bad regex") && e.contains("a=~"), "{e}");
        assert!(parse_matchers("a").is_err());
        assert!(parse_matchers(r#"a="b"#).is_err());
        assert!(parse_matchers(r#"a="b" c="d""#).is_err());
    }

    #[test]
    fn api_parts_round_trip() {
        let m = Matcher::from_parts("a", "b.*", true, false).unwrap();
        assert_eq!(m.to_string(), r#"a!~"b.*""#);
        assert!(m.is_regex() && !m.is_equal());
    }
}
