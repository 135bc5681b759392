//! The `git:` section of the exporter config: where repositories are found, how often they are
//! rescanned, the activity windows, and the optional JSON stats log.

use fleetwatch_common::config::optional_path;
use fleetwatch_common::duration::parse_duration;
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;
use std::time::Duration;

/// `git:` — every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    /// Directories searched for repositories (default `$HOME/projects`).
    #[serde(default = "default_roots")]
    pub roots: Vec<PathBuf>,
    /// How many directory levels below a root are searched (the root itself is level 0).
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Repositories reported whatever the roots hold (submodules, repos elsewhere).
    #[serde(default)]
    pub repos: Vec<PathBuf>,
    /// Globs of paths never searched nor reported.
    #[serde(default)]
    pub exclude: Vec<Glob>,
    #[serde(default = "default_refresh", deserialize_with = "duration")]
    pub refresh_interval: Duration,
    #[serde(default = "default_windows")]
    pub windows: Vec<Window>,
    #[serde(default = "default_top_authors")]
    pub top_authors: usize,
    #[serde(default = "yes")]
    pub include_untracked: bool,
    /// Directory of the `<user>_git_stats_*.json(l)` files; none when unset.
    #[serde(default, deserialize_with = "optional_path")]
    pub stats_log_dir: Option<PathBuf>,
    /// Whether the stats log carries the last commit's summary line.
    #[serde(default = "yes")]
    pub include_messages: bool,
}

fn default_roots() -> Vec<PathBuf> {
    std::env::var_os("HOME").map(|h| vec![PathBuf::from(h).join("projects")]).unwrap_or_default()
}
fn default_max_depth() -> usize {
    3
}
fn default_refresh() -> Duration {
    Duration::from_secs(60)
}
fn default_windows() -> Vec<Window> {
    vec![Window { label: "24h".to_string(), length: Duration::from_secs(86_400) }]
}
fn default_top_authors() -> usize {
    5
}
fn yes() -> bool {
    true
}

impl Default for GitConfig {
    fn default() -> Self {
        GitConfig {
            roots: default_roots(),
            max_depth: default_max_depth(),
            repos: Vec::new(),
            exclude: Vec::new(),
            refresh_interval: default_refresh(),
            windows: default_windows(),
            top_authors: default_top_authors(),
            include_untracked: true,
            stats_log_dir: None,
            include_messages: true,
        }
    }
}

impl GitConfig {
    /// The longest window (what the history walk must cover).
    pub fn longest_window(&self) -> Duration {
        self.windows.iter().map(|w| w.length).max().unwrap_or_default()
    }

    /// True when a path (absolute, or relative to its root) matches an `exclude` glob.
    pub fn excluded(&self, path: &std::path::Path) -> bool {
        let opts = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
        self.exclude.iter().any(|g| g.0.matches_path_with(path, opts))
    }
}

/// An activity window: its label as written (`24h`, `7d`) and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub label: String,
    pub length: Duration,
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let label = String::deserialize(d)?;
        let length = parse_duration(&label).map_err(serde::de::Error::custom)?;
        if length.is_zero() {
            return Err(serde::de::Error::custom("a window must be longer than 0"));
        }
        Ok(Window { label, length })
    }
}

/// A glob of paths (`*` stays within one path component, `**` crosses them).
#[derive(Debug, Clone)]
pub struct Glob(pub glob::Pattern);

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        glob::Pattern::new(&text).map(Glob).map_err(|e| serde::de::Error::custom(format!("invalid glob {text:?}: {e}")))
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    let value = parse_duration(&text).map_err(serde::de::Error::custom)?;
    if value.is_zero() {
        return Err(serde::de::Error::custom("refresh_interval must be longer than 0"));
    }
    Ok(value)
}

/// `git:` given as an empty mapping or `null` means all defaults.
pub fn optional_git<'de, D: Deserializer<'de>>(d: D) -> Result<GitConfig, D::Error> {
    Ok(Option::<GitConfig>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwatch_common::config::parse_yaml;

    #[test]
    fn defaults_and_values() {
        let c: GitConfig = parse_yaml("{}", "x").unwrap();
        assert_eq!(c.max_depth, 3);
        assert_eq!(c.refresh_interval, Duration::from_secs(60));
        assert_eq!(c.windows, default_windows());
        assert_eq!(c.top_authors, 5);
        assert!(c.include_untracked && c.include_messages);
        let c: GitConfig = parse_yaml(
            "roots: [/src]\nmax_depth: 1\nexclude: ['old-*', '**/tmp']\nwindows: [1h, 7d]\nrefresh_interval: 5s\ninclude_untracked: false\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.roots, vec![PathBuf::from("/src")]);
        assert_eq!(c.longest_window(), Duration::from_secs(7 * 86_400));
        assert_eq!(c.windows[0].label, "1h");
        let excluded = |p: &str| c.excluded(std::path::Path::new(p));
        assert!(excluded("old-app") && excluded("/src/a/tmp") && excluded("a/tmp"));
        assert!(!excluded("app/old-x") && !excluded("/src/old-app"));
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in ["windows: [soon]", "windows: ['0']", "exclude: ['[']", "refresh_interval: '0'", "root: [/x]"] {
            assert!(parse_yaml::<GitConfig>(bad, "x").is_err(), "{bad}");
        }
    }
}
