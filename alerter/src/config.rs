//! The alerter's config file: the subset of Prometheus's `prometheus.yml` that a fleet sidecar needs
//! (global settings, scrape configs with service discovery, relabeling and HTTP client settings,
//! rule file globs), with Prometheus's defaults and validation, plus the embedded default; and the
//! notification part in Alertmanager's terms (`route`, `receivers`, `inhibit_rules`) with the
//! `thresholds` shorthand.

use crate::notify::config::{default_inhibit_rules, default_route, InhibitRule, NotifyConfig, RouteConfig, Threshold};
use crate::notify::receiver::ReceiverConfig;
use crate::relabel::RelabelConfig;
use fleetwatch_common::client_config::check_auth;
pub use fleetwatch_common::client_config::{AuthorizationConfig, BasicAuthConfig, TlsClientConfig};
use fleetwatch_common::config::{load_yaml_file, parse_yaml, ConfigError};
use fleetwatch_common::duration::PromDuration;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default: scrape the local fleetwatch-exporter every 15 s.
pub const DEFAULT_CONFIG: &str = include_str!("default.yml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub global: GlobalConfig,
    #[serde(default)]
    pub rule_files: Vec<String>,
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Where alerts go (Alertmanager's routing tree); default: everything to `log`.
    #[serde(default = "default_route")]
    pub route: RouteConfig,
    /// Receivers by name; a `log` receiver is added when none is called so.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Absent: critical inhibits warning of the same alertname and instance; `[]`: none.
    #[serde(default = "default_inhibit_rules")]
    pub inhibit_rules: Vec<InhibitRule>,
    /// Seed-style warning/critical thresholds, compiled into alerting rules.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// The directory relative rule file globs and `*_file` paths are resolved against (the
    /// config file's directory); not a YAML field.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default = "one_minute")]
    pub scrape_interval: PromDuration,
    #[serde(default = "ten_seconds")]
    pub scrape_timeout: PromDuration,
    #[serde(default = "one_minute")]
    pub evaluation_interval: PromDuration,
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: one_minute(),
            scrape_timeout: ten_seconds(),
            evaluation_interval: one_minute(),
            external_labels: BTreeMap::new(),
        }
    }
}

fn one_minute() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}
fn ten_seconds() -> PromDuration {
    PromDuration(Duration::from_secs(10))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    pub job_name: String,
    /// Defaults to the global value (filled in by `Config::finish`).
    pub scrape_interval: Option<PromDuration>,
    pub scrape_timeout: Option<PromDuration>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    /// Maximum uncompressed body size; 0 = the alerter's default limit.
    #[serde(default, deserialize_with = "byte_size")]
    pub body_size_limit: u64,
    /// Maximum samples per scrape after metric relabeling; 0 = no limit.
    #[serde(default)]
    pub sample_limit: u64,
    pub basic_auth: Option<BasicAuthConfig>,
    pub authorization: Option<AuthorizationConfig>,
    #[serde(default)]
    pub tls_config: TlsClientConfig,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default)]
    pub static_configs: Vec<TargetGroup>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub http_sd_configs: Vec<HttpSdConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_scheme() -> String {
    "http".into()
}
fn yes() -> bool {
    true
}

impl ScrapeConfig {
    pub fn http(&self) -> HttpClientConfig {
        http_of(&self.basic_auth, &self.authorization, &self.tls_config, self.follow_redirects)
    }
    pub fn interval(&self) -> Duration {
        self.scrape_interval.map(|d| d.0).unwrap_or(Duration::from_secs(60))
    }
    pub fn timeout(&self) -> Duration {
        self.scrape_timeout.map(|d| d.0).unwrap_or(Duration::from_secs(10))
    }
}

/// HTTP client settings shared by scrape configs and HTTP service discovery (written inline in
/// both; serde's `flatten` cannot be combined with `deny_unknown_fields`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpClientConfig {
    pub basic_auth: Option<BasicAuthConfig>,
    pub authorization: Option<AuthorizationConfig>,
    pub tls_config: TlsClientConfig,
    pub follow_redirects: bool,
}

fn http_of(b: &Option<BasicAuthConfig>, a: &Option<AuthorizationConfig>, t: &TlsClientConfig, follow: bool) -> HttpClientConfig {
    HttpClientConfig { basic_auth: b.clone(), authorization: a.clone(), tls_config: t.clone(), follow_redirects: follow }
}

/// A group of targets sharing labels, as in `static_configs` and file/HTTP SD documents.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    #[serde(default = "five_minutes")]
    pub refresh_interval: PromDuration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSdConfig {
    pub url: String,
    #[serde(default = "one_minute")]
    pub refresh_interval: PromDuration,
    pub basic_auth: Option<BasicAuthConfig>,
    pub authorization: Option<AuthorizationConfig>,
    #[serde(default)]
    pub tls_config: TlsClientConfig,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
}

impl HttpSdConfig {
    pub fn http(&self) -> HttpClientConfig {
        http_of(&self.basic_auth, &self.authorization, &self.tls_config, self.follow_redirects)
    }
}

fn five_minutes() -> PromDuration {
    PromDuration(Duration::from_secs(300))
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Prometheus's byte sizes: `0`, `512`, `10KB`, `50MB`, `1GiB` (all powers of 1024).
fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(s) => parse_byte_size(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid byte size {s:?}"))),
    }
}

pub fn parse_byte_size(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let number: u64 = s[..digits].parse().ok()?;
    let unit = s[digits..].trim();
    let power = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "KB" | "KIB" | "K" => 1,
        "MB" | "MIB" | "M" => 2,
        "GB" | "GIB" | "G" => 3,
        "TB" | "TIB" | "T" => 4,
        _ => return None,
    };
    number.checked_mul(1024u64.pow(power))
}

impl Config {
    /// Loads a config file, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (mut config, origin, base_dir): (Config, String, PathBuf) = match path {
            Some(p) => {
                let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
                (load_yaml_file(p)?, p.display().to_string(), dir)
            }
            None => (parse_yaml(DEFAULT_CONFIG, "<embedded default config>")?, "<embedded default config>".into(), PathBuf::from(".")),
        };
        config.base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
        config.finish().map_err(|message| ConfigError::Invalid { path: origin, message })?;
        Ok(config)
    }

    /// Parses config text (tests and `check config`).
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = parse_yaml(text, origin)?;
        config.base_dir = PathBuf::from(".");
        config.finish().map_err(|message| ConfigError::Invalid { path: origin.to_string(), message })?;
        Ok(config)
    }

    /// Applies global defaults and checks what serde cannot, with Prometheus's rules.
    fn finish(&mut self) -> Result<(), String> {
        check_timeout(self.global.scrape_interval.0, self.global.scrape_timeout.0, "global")?;
        for name in self.global.external_labels.keys() {
            if !fleetwatch_common::expfmt::is_valid_label_name(name) {
                return Err(format!("global.external_labels: {name:?} is not a valid label name"));
            }
        }
        let mut names = HashSet::new();
        for (i, sc) in self.scrape_configs.iter_mut().enumerate() {
            let at = format!("scrape_configs[{i}] (job_name {:?})", sc.job_name);
            if sc.job_name.is_empty() {
                return Err(format!("scrape_configs[{i}]: job_name is empty"));
            }
            if !names.insert(sc.job_name.clone()) {
                return Err(format!("{at}: found multiple scrape configs with job name {:?}", sc.job_name));
            }
            finish_scrape_config(sc, &self.global, &self.base_dir).map_err(|e| format!("{at}: {e}"))?;
        }
        let mut receivers = std::collections::BTreeSet::from(["log".to_string()]);
        for (i, r) in self.receivers.iter().enumerate() {
            if !receivers.insert(r.name.clone()) && r.name != "log" {
                return Err(format!("receivers[{i}]: found multiple receivers named {:?}", r.name));
            }
        }
        self.notify_config().validate(&receivers).map_err(|e| e.to_string())
    }

    /// The routing part of the config, for the dispatcher.
    pub fn notify_config(&self) -> NotifyConfig {
        NotifyConfig { route: self.route.clone(), inhibit_rules: self.inhibit_rules.clone(), thresholds: self.thresholds.clone() }
    }

    pub fn evaluation_interval(&self) -> Duration {
        self.global.evaluation_interval.0
    }
}

fn finish_scrape_config(sc: &mut ScrapeConfig, global: &GlobalConfig, base: &Path) -> Result<(), String> {
    let interval = *sc.scrape_interval.get_or_insert(global.scrape_interval);
    let timeout = match sc.scrape_timeout {
        Some(t) => t,
        // Prometheus: the global timeout, but never longer than this job's interval.
        None => PromDuration(global.scrape_timeout.0.min(interval.0)),
    };
    sc.scrape_timeout = Some(timeout);
    check_timeout(interval.0, timeout.0, "scrape config")?;
    if sc.scheme != "http" && sc.scheme != "https" {
        return Err(format!("scheme: {:?} is not http or https", sc.scheme));
    }
    if !sc.metrics_path.starts_with('/') {
        return Err(format!("metrics_path: {:?} must start with /", sc.metrics_path));
    }
    finish_http(&mut sc.basic_auth, &mut sc.authorization, &mut sc.tls_config, base)?;
    for (i, sd) in sc.http_sd_configs.iter_mut().enumerate() {
        finish_http(&mut sd.basic_auth, &mut sd.authorization, &mut sd.tls_config, base)
            .map_err(|e| format!("http_sd_configs[{i}]: {e}"))?;
        if !(sd.url.starts_with("http://") || sd.url.starts_with("https://")) {
            return Err(format!("http_sd_configs[{i}].url: {:?} is not an http(s) URL", sd.url));
        }
    }
    for (i, g) in sc.static_configs.iter().enumerate() {
        check_group(g).map_err(|e| format!("static_configs[{i}]: {e}"))?;
    }
    for (i, f) in sc.file_sd_configs.iter_mut().enumerate() {
        for file in &mut f.files {
            check_sd_file_pattern(file).map_err(|e| format!("file_sd_configs[{i}].files: {e}"))?;
            *file = resolve(base, file).display().to_string();
        }
    }
    Ok(())
}

fn check_timeout(interval: Duration, timeout: Duration, at: &str) -> Result<(), String> {
    if interval.is_zero() {
        return Err(format!("{at}: scrape_interval must be greater than zero"));
    }
    if timeout > interval {
        return Err(format!("{at}: scrape_timeout {} greater than scrape_interval {}", PromDuration(timeout), PromDuration(interval)));
    }
    Ok(())
}

fn finish_http(
    basic: &mut Option<BasicAuthConfig>,
    authz: &mut Option<AuthorizationConfig>,
    tls: &mut TlsClientConfig,
    base: &Path,
) -> Result<(), String> {
    check_auth(basic, authz)?;
    if let Some(b) = basic {
        if let Some(p) = &mut b.password_file {
            *p = resolve(base, &p.display().to_string());
        }
    }
    if let Some(a) = authz.as_mut() {
        if let Some(p) = &mut a.credentials_file {
            *p = resolve(base, &p.display().to_string());
        }
    }
    for p in [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file].into_iter().flatten() {
        *p = resolve(base, &p.display().to_string());
    }
    tls.check()
}

fn check_group(g: &TargetGroup) -> Result<(), String> {
    for name in g.labels.keys() {
        if !fleetwatch_common::expfmt::is_valid_label_name(name) {
            return Err(format!("{name:?} is not a valid label name"));
        }
    }
    for t in &g.targets {
        if t.contains('/') {
            return Err(format!("{t:?} is not a valid hostname"));
        }
    }
    Ok(())
}

/// Prometheus accepts `*.json`, `*.yml` and `*.yaml` file patterns only.
fn check_sd_file_pattern(pattern: &str) -> Result<(), String> {
    let ok = [".json", ".yml", ".yaml"].iter().any(|ext| pattern.ends_with(ext));
    if !ok {
        return Err(format!("{pattern:?}: only .json, .yml and .yaml files are supported"));
    }
    Ok(())
}

/// A path as written, made absolute against the config file's directory when relative.
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_prometheus() {
        let c = Config::parse("scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['h:1']}]\n", "t").unwrap();
        let sc = &c.scrape_configs[0];
        assert_eq!(sc.interval(), Duration::from_secs(60));
        assert_eq!(sc.timeout(), Duration::from_secs(10));
        assert_eq!(sc.metrics_path, "/metrics");
        assert_eq!(sc.scheme, "http");
        assert!(sc.honor_timestamps && !sc.honor_labels);
        assert_eq!(c.evaluation_interval(), Duration::from_secs(60));
    }

    #[test]
    fn timeout_is_capped_by_a_short_interval() {
        let c = Config::parse("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n", "t").unwrap();
        assert_eq!(c.scrape_configs[0].timeout(), Duration::from_secs(5));
        let e = Config::parse("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n", "t").unwrap_err();
        assert!(e.to_string().contains("greater than scrape_interval"), "{e}");
    }

    #[test]
    fn unknown_fields_name_file_and_line() {
        let e = Config::parse("global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n", "f.yml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f.yml:5:"), "{e}");
        assert!(e.contains("scrape_intervall"), "{e}");
    }

    #[test]
    fn duplicate_job_names_are_rejected() {
        let e = Config::parse("scrape_configs:\n  - job_name: a\n  - job_name: a\n", "t").unwrap_err();
        assert!(e.to_string().contains("multiple scrape configs"), "{e}");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("0"), Some(0));
        assert_eq!(parse_byte_size("10KB"), Some(10240));
        assert_eq!(parse_byte_size("50MB"), Some(50 << 20));
        assert_eq!(parse_byte_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_byte_size("x"), None);
    }

    #[test]
    fn embedded_default_scrapes_the_local_exporter() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.scrape_configs[0].static_configs[0].targets, vec!["127.0.0.1:9910".to_string()]);
    }
}
