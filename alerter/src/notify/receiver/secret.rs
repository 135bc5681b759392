//! Secrets in receiver configs: a string that never shows in Debug output or logs, given inline
//! (after the config loader's `${ENV}` expansion) or read from a `*_file` at build time.

use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};

/// A secret value; its Debug form is `<secret>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> SecretString {
        SecretString(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}

/// A path as written, made absolute against `base` when relative.
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || base.as_os_str().is_empty() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Exactly one of an inline secret and a secret file (`what` names the pair in errors);
/// `required` refuses neither being set.
pub fn pick(
    inline: &Option<SecretString>,
    file: &Option<PathBuf>,
    base: &Path,
    what: &str,
    required: bool,
) -> Result<Option<SecretString>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("at most one of {what} and {what}_file may be set")),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(f)) => {
            let path = resolve(base, f);
            fleetwatch_common::config::read_secret_file(&path)
                .map(|s| Some(SecretString(s)))
                .map_err(|e| format!("{what}_file {}: {e}", path.display()))
        }
        (None, None) if required => Err(format!("one of {what} and {what}_file must be set")),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_read_from_files() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), "<secret>");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "from-file\n").unwrap();
        let got = pick(&None, &Some("pw".into()), dir.path(), "password", true).unwrap().unwrap();
        assert_eq!(got.expose(), "from-file");
        assert!(pick(&Some(s.clone()), &Some("pw".into()), dir.path(), "password", true).unwrap_err().contains("at most one"));
        assert!(pick(&None, &None, dir.path(), "url", true).unwrap_err().contains("must be set"));
        assert!(pick(&None, &Some("missing".into()), dir.path(), "url", true).unwrap_err().contains("url_file"));
    }
}
