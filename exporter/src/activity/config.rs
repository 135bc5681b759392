//! The `activity:` section of the exporter config: what is watched (roots, exclusions, users),
//! how often it is sampled, the optional event log, and the idle policy with its opt-in action.
//! Bad values are refused while parsing, so the error names the field and line.

use fleetwatch_common::duration::parse_duration;
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;
use std::time::Duration;

/// `activity:` — every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityConfig {
    /// Directories watched for file changes; empty: `$HOME/projects` of each user, where it exists.
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    #[serde(default = "default_exclude")]
    pub exclude: Vec<String>,
    /// Whose sessions and processes count; empty: every user with 1000 <= uid < 65534.
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default = "default_interval", deserialize_with = "positive")]
    pub interval: Duration,
    #[serde(default = "default_utmp")]
    pub utmp_path: PathBuf,
    #[serde(default)]
    pub max_watches: usize,
    #[serde(default = "default_scan_interval", deserialize_with = "positive")]
    pub scan_interval: Duration,
    #[serde(default)]
    pub event_log: EventLogConfig,
    #[serde(default)]
    pub idle: IdleConfig,
}

/// `activity.event_log:` — JSON lines of activity events, rotated by size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLogConfig {
    /// Empty: no event log.
    #[serde(default)]
    pub path: PathBuf,
    #[serde(default = "default_max_size", deserialize_with = "at_least_one")]
    pub max_size_bytes: u64,
    #[serde(default = "default_max_files")]
    pub max_files: usize,
    #[serde(default = "default_max_files_listed")]
    pub max_files_listed: usize,
}

/// `activity.idle:` — when the machine counts as idle, and what then happens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleConfig {
    #[serde(default = "default_cpu_busy_below", deserialize_with = "ratio")]
    pub cpu_busy_below: f64,
    #[serde(default = "default_after", deserialize_with = "positive")]
    pub after: Duration,
    #[serde(default = "yes")]
    pub count_ssh: bool,
    #[serde(default)]
    pub busy_processes: Vec<String>,
    /// Absent: no action (the default).
    #[serde(default)]
    pub action: Option<ActionConfig>,
}

/// `activity.idle.action:` — what runs when the machine has been idle for `after`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// argv of the idle action (no shell); must not be empty.
    #[serde(deserialize_with = "argv")]
    pub command: Vec<String>,
    /// argv of the warning; empty: no warning.
    #[serde(default)]
    pub warn_command: Vec<String>,
    #[serde(default = "default_warn_before", deserialize_with = "duration")]
    pub warn_before: Duration,
    #[serde(default = "default_timeout", deserialize_with = "positive")]
    pub timeout: Duration,
    #[serde(default)]
    pub dry_run: bool,
}

pub const DEFAULT_EXCLUDE: [&str; 5] = [".git/", "node_modules/", "target/", "__pycache__/", ".venv/"];

fn default_exclude() -> Vec<String> {
    DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect()
}
fn default_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_utmp() -> PathBuf {
    PathBuf::from("/run/utmp")
}
fn default_scan_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_max_size() -> u64 {
    10 << 20
}
fn default_max_files() -> usize {
    3
}
fn default_max_files_listed() -> usize {
    50
}
fn default_cpu_busy_below() -> f64 {
    0.10
}
fn default_after() -> Duration {
    Duration::from_secs(1800)
}
fn default_warn_before() -> Duration {
    Duration::from_secs(300)
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn yes() -> bool {
    true
}

impl Default for ActivityConfig {
    fn default() -> Self {
        ActivityConfig {
            roots: Vec::new(),
            exclude: default_exclude(),
            users: Vec::new(),
            interval: default_interval(),
            utmp_path: default_utmp(),
            max_watches: 0,
            scan_interval: default_scan_interval(),
            event_log: EventLogConfig::default(),
            idle: IdleConfig::default(),
        }
    }
}

impl Default for EventLogConfig {
    fn default() -> Self {
        EventLogConfig {
            path: PathBuf::new(),
            max_size_bytes: default_max_size(),
            max_files: default_max_files(),
            max_files_listed: default_max_files_listed(),
        }
    }
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig {
            cpu_busy_below: default_cpu_busy_below(),
            after: default_after(),
            count_ssh: true,
            busy_processes: Vec::new(),
            action: None,
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let value = duration(d)?;
    if value.is_zero() {
        return Err(serde::de::Error::custom("must be longer than 0"));
    }
    Ok(value)
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(d)?;
    if value == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(value)
}

/// A busy ratio threshold: from 0 to 1; above 1 the CPU never counts as busy.
fn ratio<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(d)?;
    if !value.is_finite() || value < 0.0 {
        return Err(serde::de::Error::custom(format!("{value} is not a ratio (0 to 1; above 1 disables the CPU condition)")));
    }
    Ok(value)
}

fn argv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let argv = Vec::<String>::deserialize(d)?;
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Err(serde::de::Error::custom("must name a program (an argv list, no shell)"));
    }
    Ok(argv)
}

/// `activity:` given as an empty mapping or `null` means all defaults.
pub fn optional_activity<'de, D: Deserializer<'de>>(d: D) -> Result<ActivityConfig, D::Error> {
    Ok(Option::<ActivityConfig>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwatch_common::config::parse_yaml;

    #[test]
    fn defaults_and_values() {
        let c: ActivityConfig = parse_yaml("{}", "x").unwrap();
        assert_eq!(c.interval, Duration::from_secs(15));
        assert_eq!(c.exclude, default_exclude());
        assert_eq!(c.idle.after, Duration::from_secs(1800));
        assert!(c.idle.action.is_none() && c.idle.count_ssh);
        assert_eq!(c.event_log.max_files_listed, 50);
        let c: ActivityConfig = parse_yaml(
            "users: [alice]\ninterval: 1s\nidle:\n  after: 3s\n  busy_processes: [cargo]\n  action:\n    command: [systemctl, poweroff]\n    warn_before: 0\n",
            "x",
        )
        .unwrap();
        let action = c.idle.action.unwrap();
        assert_eq!(action.command, ["systemctl", "poweroff"]);
        assert_eq!(action.warn_before, Duration::ZERO);
        assert_eq!(action.timeout, Duration::from_secs(60));
        assert!(!action.dry_run);
    }

    #[test]
    fn bad_values_name_the_field() {
        for (bad, field) in [
            ("interval: '0'", "interval"),
            ("idle:\n  after: soon", "idle.after"),
            ("idle:\n  cpu_busy_below: -1", "idle.cpu_busy_below"),
            ("idle:\n  action:\n    command: []", "idle.action.command"),
            ("idle:\n  action:\n    warn_command: [x]", "command"),
            ("event_log:\n  max_size_bytes: 0", "event_log.max_size_bytes"),
            ("idle:\n  cpu: 1", "cpu"),
        ] {
            let err = parse_yaml::<ActivityConfig>(bad, "x.yml").unwrap_err().to_string();
            assert!(err.contains(field), "{bad}: {err}");
        }
    }
}
