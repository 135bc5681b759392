//! Config loading shared by both daemons: read a YAML file, expand `${ENV}` references, and
//! deserialize into `deny_unknown_fields` serde structs, turning every failure into an error that
//! names the file, the line and the field.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::path::Path;

/// A config file that could not be used. The Display form is the one-line message users see.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: environment variable {name} is not set (referenced as ${{{name}}})")]
    UndefinedEnv { path: String, line: usize, name: String },
    #[error("{path}:{line}:{column}: {message}")]
    Parse { path: String, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Expands `${NAME}` from the environment; `$${` stands for a literal `${`. Other `$` are kept,
/// so bcrypt hashes such as `$2y$10$...` pass through untouched, and YAML comments are left
/// alone. An unset variable is an error carrying its line number.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let (code, comment) = line.split_at(comment_start(line));
        expand_line(code, &lookup, &mut out).map_err(|name| (i + 1, name))?;
        out.push_str(comment);
    }
    Ok(out)
}

fn expand_line(mut rest: &str, lookup: &impl Fn(&str) -> Option<String>, out: &mut String) -> Result<(), String> {
    while let Some(pos) = rest.find('$') {
        let (before, after) = rest.split_at(pos);
        out.push_str(before);
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| String::from("<unterminated ${>"))?;
            let name = &tail[..end];
            out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(())
}

/// Where a YAML comment starts in a line: a `#` at the start or after white space, outside quotes.
fn comment_start(line: &str) -> usize {
    let (mut single, mut double, mut prev) = (false, false, ' ');
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && prev != '\\' => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return i,
            _ => {}
        }
        prev = c;
    }
    line.len()
}

/// Reads, expands and parses a YAML config file.
pub fn load_yaml_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
    parse_yaml(&text, &shown)
}

/// Expands and parses YAML text; `origin` names the file in errors.
pub fn parse_yaml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    let expanded = expand_env(text, |name| std::env::var(name).ok()).map_err(|(line, name)| ConfigError::UndefinedEnv {
        path: origin.to_string(),
        line,
        name,
    })?;
    let body = if is_blank_yaml(&expanded) { "{}" } else { expanded.as_str() };
    serde_yaml_ng::from_str(body).map_err(|e| located(e, body, origin))
}

fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    })
}

fn located(err: serde_yaml_ng::Error, text: &str, origin: &str) -> ConfigError {
    let full = err.to_string();
    // serde_yaml puts " at line L column C" at the end; the location is reported separately.
    let message = match full.find(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    };
    match err.location() {
        Some(loc) => {
            let (line, column, message) = relocate_unknown_key(text, loc.line(), loc.column(), message);
            let message = name_field(&message, text.lines().nth(line.saturating_sub(1)).unwrap_or(""));
            ConfigError::Parse { path: origin.to_string(), line, column, message }
        }
        None => ConfigError::Invalid { path: origin.to_string(), message },
    }
}

/// For a rejected map key (`unknown ... "name"`), serde_yaml can report the previous entry's
/// position; point at the line that holds the key instead.
fn relocate_unknown_key(text: &str, line: usize, column: usize, message: String) -> (usize, usize, String) {
    let Some(after) = message.find("unknown ").map(|i| &message[i..]) else {
        return (line, column, message);
    };
    let Some(name) = after.split(['"', '`']).nth(1) else {
        return (line, column, message);
    };
    let found = text.lines().enumerate().skip(line.saturating_sub(1)).find_map(|(i, l)| {
        let trimmed = l.trim_start();
        let key = trimmed.split_once(':')?.0.trim().trim_matches(['"', '\'']);
        (key == name).then(|| (i + 1, l.len() - trimmed.len() + 1))
    });
    let Some((new_line, new_column)) = found else {
        return (line, column, message);
    };
    (new_line, new_column, message)
}

/// serde_yaml names the enclosing map (`filesystem: invalid ...`) but not the key whose value
/// was rejected; the key is on the reported line, so add it (`filesystem.mount_timeout: ...`).
fn name_field(message: &str, line: &str) -> String {
    let key = line.trim_start().trim_start_matches("- ");
    let Some(key) = key.split_once(':').map(|(k, _)| k.trim()) else {
        return message.to_string();
    };
    if key.is_empty()
        || !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        || message.contains(&format!("`{key}`"))
        || message.contains(&format!("\"{key}\""))
    {
        return message.to_string();
    }
    match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') && !path.ends_with(key) => {
            format!("{path}.{key}: {rest}")
        }
        Some((path, _)) if !path.contains(' ') => message.to_string(),
        _ => format!("{key}: {message}"),
    }
}

/// Deserializes an optional regex where an empty string means "none".
pub fn optional_regex<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ConfigRegex>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) if !s.is_empty() => {
            ConfigRegex::new(&s).map(Some).map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
        }
        _ => Ok(None),
    }
}

/// Deserializes an optional path where an empty string means "none".
pub fn optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<std::path::PathBuf>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()).map(std::path::PathBuf::from))
}

/// A regular expression from a config file, compiled while parsing so a bad one is reported with
/// its line. It is not anchored: write `^...$` where a full match is meant.
#[derive(Debug, Clone)]
pub struct ConfigRegex(pub regex::Regex);

impl ConfigRegex {
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(pattern).map(ConfigRegex)
    }
    pub fn is_match(&self, s: &str) -> bool {
        self.0.is_match(s)
    }
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl<'de> Deserialize<'de> for ConfigRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ConfigRegex::new(&s).map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

/// Reads a secret from a file, trimming one trailing newline, as Prometheus does for `*_file`.
pub fn read_secret_file(path: &Path) -> std::io::Result<String> {
    let mut s = std::fs::read_to_string(path)?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        name: String,
        #[serde(default)]
        inner: Inner,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        count: u32,
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db1".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_env_and_keeps_other_dollars() {
        assert_eq!(expand_env("a: ${HOST}", env).unwrap(), "a: db1");
        assert_eq!(expand_env("h: $2y$10$abc", env).unwrap(), "h: $2y$10$abc");
        assert_eq!(expand_env("x: $${HOST}", env).unwrap(), "x: ${HOST}");
        assert_eq!(expand_env("a\nb\nc: ${NOPE}", env), Err((3, "NOPE".to_string())));
        assert_eq!(expand_env("# use ${NOPE} here\nx: 1 # or ${NOPE}\n", env).unwrap(), "# use ${NOPE} here\nx: 1 # or ${NOPE}\n");
        assert_eq!(expand_env("x: \"a # ${HOST}\"\n", env).unwrap(), "x: \"a # db1\"\n");
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let err = parse_yaml::<Sample>("name: x\ninner:\n  cuont: 3\n", "cfg.yml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("cfg.yml:3:"), "{msg}");
        assert!(msg.contains("cuont"), "{msg}");
    }

    #[test]
    fn type_error_names_the_path() {
        let err = parse_yaml::<Sample>("inner:\n  count: many\n", "cfg.yml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("cfg.yml:2:"), "{msg}");
        assert!(msg.contains("inner.count"), "{msg}");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let s: Sample = parse_yaml("# nothing\n", "cfg.yml").unwrap();
        assert_eq!(s.name, "");
        assert_eq!(s.inner.count, 0);
    }

    #[test]
    fn bad_regex_is_located() {
        #[derive(Debug, Deserialize)]
        struct R {
            #[allow(dead_code)]
            re: ConfigRegex,
        }
        let err = parse_yaml::<R>("\nre: \"(\"\n", "r.yml").unwrap_err().to_string();
        assert!(err.starts_with("r.yml:2:"), "{err}");
        assert!(err.contains("invalid regex"), "{err}");
    }
}
