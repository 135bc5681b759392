//! The exporter's YAML config (`--config.file`, or the embedded `default.yml`): which collectors
//! run and their options. Unknown keys and unknown collector names are errors with file and line.

use crate::collector;
use fleetwatch_common::config::{optional_path, optional_regex, parse_yaml, ConfigError, ConfigRegex};
use fleetwatch_common::duration::PromDuration;
use serde::de;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The embedded default configuration.
pub const DEFAULT_YAML: &str = include_str!("default.yml");

/// The whole file. `Config::default()` equals an empty file; `default.yml` spells those values out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub collectors: CollectorToggles,
    #[serde(default)]
    pub filesystem: FilesystemConfig,
    #[serde(default)]
    pub diskstats: DiskstatsConfig,
    #[serde(default)]
    pub netdev: NetdevConfig,
    #[serde(default)]
    pub textfile: TextfileConfig,
    #[serde(default, deserialize_with = "crate::health::config::optional_health")]
    pub health: crate::health::config::HealthConfig,
    #[serde(default, deserialize_with = "crate::git::config::optional_git")]
    pub git: crate::git::config::GitConfig,
    #[serde(default)]
    pub containers: ContainersConfig,
    #[serde(default, deserialize_with = "crate::activity::config::optional_activity")]
    pub activity: crate::activity::config::ActivityConfig,
}

impl Config {
    /// Loads a config file, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => fleetwatch_common::config::load_yaml_file(p),
            None => parse_yaml(DEFAULT_YAML, "<embedded default config>"),
        }
    }
}

/// `collectors:` — collector name → on/off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct CollectorToggles(pub BTreeMap<CollectorName, bool>);

/// A collector name, checked against the registry while parsing so a typo is located.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CollectorName(pub String);

impl<'de> Deserialize<'de> for CollectorName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        let names = collector::names();
        if !names.contains(&name.as_str()) {
            return Err(de::Error::custom(format!("unknown collector {name:?} (known: {})", names.join(", "))));
        }
        Ok(CollectorName(name))
    }
}

fn regex(s: &str) -> ConfigRegex {
    ConfigRegex::new(s).expect("built-in regex compiles")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemConfig {
    #[serde(default = "FilesystemConfig::default_mount_points_exclude")]
    pub mount_points_exclude: ConfigRegex,
    #[serde(default = "FilesystemConfig::default_fs_types_exclude")]
    pub fs_types_exclude: ConfigRegex,
    #[serde(default = "FilesystemConfig::default_mount_timeout")]
    pub mount_timeout: PromDuration,
}

impl FilesystemConfig {
    pub const MOUNT_POINTS_EXCLUDE: &'static str =
        "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
    pub const FS_TYPES_EXCLUDE: &'static str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";
    fn default_mount_points_exclude() -> ConfigRegex {
        regex(Self::MOUNT_POINTS_EXCLUDE)
    }
    fn default_fs_types_exclude() -> ConfigRegex {
        regex(Self::FS_TYPES_EXCLUDE)
    }
    fn default_mount_timeout() -> PromDuration {
        PromDuration(std::time::Duration::from_secs(5))
    }
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        FilesystemConfig {
            mount_points_exclude: Self::default_mount_points_exclude(),
            fs_types_exclude: Self::default_fs_types_exclude(),
            mount_timeout: Self::default_mount_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskstatsConfig {
    #[serde(default = "DiskstatsConfig::default_device_exclude", deserialize_with = "optional_regex")]
    pub device_exclude: Option<ConfigRegex>,
}

impl DiskstatsConfig {
    pub const DEVICE_EXCLUDE: &'static str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";
    fn default_device_exclude() -> Option<ConfigRegex> {
        Some(regex(Self::DEVICE_EXCLUDE))
    }
}

impl Default for DiskstatsConfig {
    fn default() -> Self {
        DiskstatsConfig { device_exclude: Self::default_device_exclude() }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetdevConfig {
    #[serde(default, deserialize_with = "optional_regex")]
    pub device_include: Option<ConfigRegex>,
    #[serde(default, deserialize_with = "optional_regex")]
    pub device_exclude: Option<ConfigRegex>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextfileConfig {
    #[serde(default, deserialize_with = "optional_path")]
    pub directory: Option<PathBuf>,
}

/// `containers:` — where names come from and how much is exported.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainersConfig {
    /// The Docker Engine API's unix socket (Podman's compatible one works too); empty: no names.
    #[serde(default = "ContainersConfig::default_docker_socket", deserialize_with = "optional_path")]
    pub docker_socket: Option<PathBuf>,
    #[serde(default = "ContainersConfig::default_metadata_interval")]
    pub metadata_interval: PromDuration,
    #[serde(default = "ContainersConfig::default_metadata_timeout")]
    pub metadata_timeout: PromDuration,
    #[serde(default = "ContainersConfig::default_max_containers")]
    pub max_containers: usize,
    /// How often a container's limits are read again after it was first seen.
    #[serde(default = "ContainersConfig::default_limits_refresh")]
    pub limits_refresh: PromDuration,
    #[serde(default)]
    pub systemd_services: bool,
    #[serde(default)]
    pub labels: Vec<String>,
}

impl ContainersConfig {
    pub const DOCKER_SOCKET: &'static str = "/var/run/docker.sock";
    fn default_docker_socket() -> Option<PathBuf> {
        Some(PathBuf::from(Self::DOCKER_SOCKET))
    }
    fn default_metadata_interval() -> PromDuration {
        PromDuration(std::time::Duration::from_secs(15))
    }
    fn default_metadata_timeout() -> PromDuration {
        PromDuration(std::time::Duration::from_secs(5))
    }
    fn default_max_containers() -> usize {
        1000
    }
    fn default_limits_refresh() -> PromDuration {
        PromDuration(std::time::Duration::from_secs(300))
    }
}

impl Default for ContainersConfig {
    fn default() -> Self {
        ContainersConfig {
            docker_socket: Self::default_docker_socket(),
            metadata_interval: Self::default_metadata_interval(),
            metadata_timeout: Self::default_metadata_timeout(),
            max_containers: Self::default_max_containers(),
            limits_refresh: Self::default_limits_refresh(),
            systemd_services: false,
            labels: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_matches_serde_defaults() {
        let embedded = Config::load(None).unwrap();
        let empty: Config = parse_yaml("", "empty").unwrap();
        assert_eq!(format!("{embedded:?}"), format!("{:?}", Config::default()));
        // The empty netdev/textfile regexes and paths in default.yml mean "none".
        assert_eq!(format!("{:?}", embedded.filesystem), format!("{:?}", empty.filesystem));
        assert_eq!(format!("{:?}", embedded.diskstats), format!("{:?}", empty.diskstats));
    }

    #[test]
    fn unknown_collector_is_located() {
        let err = parse_yaml::<Config>("collectors:\n  cpu: true\n  cpuu: false\n", "x.yml").unwrap_err().to_string();
        assert!(err.starts_with("x.yml:3:"), "{err}");
        assert!(err.contains("collectors: unknown collector \"cpuu\""), "{err}");
    }

    #[test]
    fn unknown_option_and_bad_values_are_located() {
        let err = parse_yaml::<Config>("filesystem:\n  mount_timeout: soon\n", "x.yml").unwrap_err().to_string();
        assert!(err.starts_with("x.yml:2:") && err.contains("filesystem.mount_timeout: invalid duration"), "{err}");
        let err = parse_yaml::<Config>("netdev:\n  device_exclude: \"(\"\n", "x.yml").unwrap_err().to_string();
        assert!(err.starts_with("x.yml:2:") && err.contains("invalid regex"), "{err}");
        let err = parse_yaml::<Config>("textfile:\n  dir: /x\n", "x.yml").unwrap_err().to_string();
        assert!(err.starts_with("x.yml:2:") && err.contains("unknown field `dir`"), "{err}");
    }
}
