//! Command-line flags in node_exporter's style, including one `--collector.NAME` and
//! `--no-collector.NAME` pair per registry entry, and how they override the config file.

use crate::collector::REGISTRY;
use crate::config::Config;
use crate::paths::Paths;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};
use fleetwatch_common::config::ConfigRegex;
use fleetwatch_common::duration::PromDuration;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "fleetwatch-exporter", version, about = "Prometheus exporter for Linux hosts (node_exporter-compatible host metrics).")]
pub struct Cli {
    /// YAML config file; the embedded default is used when none is given.
    #[arg(long = "config.file")]
    pub config_file: Option<PathBuf>,
    /// Validate the config (and web config) and exit: 0 when valid, 1 otherwise.
    #[arg(long = "config.check")]
    pub config_check: bool,
    /// Address to listen on (`host:port`, `:port` for all interfaces); repeatable.
    #[arg(long = "web.listen-address", default_value = ":9910")]
    pub listen: Vec<String>,
    /// Path under which metrics are exposed.
    #[arg(long = "web.telemetry-path", default_value = "/metrics")]
    pub telemetry_path: String,
    /// Maximum number of parallel scrape requests; more are answered 503 at once. 0 disables.
    #[arg(long = "web.max-requests", default_value_t = 40)]
    pub max_requests: usize,
    /// exporter-toolkit web config file (TLS, basic auth).
    #[arg(long = "web.config.file")]
    pub web_config: Option<PathBuf>,
    /// procfs mountpoint.
    #[arg(long = "path.procfs", default_value = "/proc")]
    pub procfs: PathBuf,
    /// sysfs mountpoint.
    #[arg(long = "path.sysfs", default_value = "/sys")]
    pub sysfs: PathBuf,
    /// Root filesystem mountpoint (the host's / when run in a container).
    #[arg(long = "path.rootfs", default_value = "/")]
    pub rootfs: PathBuf,
    /// udev data directory.
    #[arg(long = "path.udev.data", default_value = "/run/udev/data")]
    pub udev_data: PathBuf,
    /// Switch off every collector that is on by default.
    #[arg(long = "collector.disable-defaults")]
    pub disable_defaults: bool,
    /// Regex of mount points to ignore (overrides filesystem.mount_points_exclude).
    #[arg(long = "collector.filesystem.mount-points-exclude")]
    pub mount_points_exclude: Option<String>,
    /// Regex of filesystem types to ignore (overrides filesystem.fs_types_exclude).
    #[arg(long = "collector.filesystem.fs-types-exclude")]
    pub fs_types_exclude: Option<String>,
    /// How long a statfs may take before the mount is marked stale.
    #[arg(long = "collector.filesystem.mount-timeout")]
    pub mount_timeout: Option<PromDuration>,
    /// Regex of block devices to ignore (overrides diskstats.device_exclude).
    #[arg(long = "collector.diskstats.device-exclude")]
    pub diskstats_exclude: Option<String>,
    /// Regex of network devices to ignore.
    #[arg(long = "collector.netdev.device-exclude")]
    pub netdev_exclude: Option<String>,
    /// Regex of network devices to include (others are ignored).
    #[arg(long = "collector.netdev.device-include")]
    pub netdev_include: Option<String>,
    /// Directory to read *.prom files from.
    #[arg(long = "collector.textfile.directory")]
    pub textfile_directory: Option<PathBuf>,
    /// Only log messages with the given severity or above: debug, info, warn, error.
    #[arg(long = "log.level", default_value = "info")]
    pub log_level: String,
    /// Output format of log messages: logfmt or json.
    #[arg(long = "log.format", default_value = "logfmt")]
    pub log_format: String,
    /// `--collector.NAME` / `--no-collector.NAME` in command-line order (filled from the matches).
    #[arg(skip)]
    pub collector_flags: Vec<(String, bool)>,
}

impl Cli {
    /// Parses the process arguments, exiting with usage on error as clap does.
    pub fn parse_args() -> Cli {
        Self::parse_from_iter(std::env::args_os())
    }

    pub fn parse_from_iter<I, T>(args: I) -> Cli
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = command().get_matches_from(args);
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.collector_flags = collector_flags(&matches);
        cli
    }

    pub fn paths(&self) -> Paths {
        Paths { procfs: self.procfs.clone(), sysfs: self.sysfs.clone(), rootfs: self.rootfs.clone(), udev_data: self.udev_data.clone() }
    }

    /// Applies the flags that override config-file options.
    pub fn apply_overrides(&self, cfg: &mut Config) -> Result<(), String> {
        let re = |flag: &str, v: &str| ConfigRegex::new(v).map_err(|e| format!("--{flag}: invalid regex: {e}"));
        if let Some(v) = &self.mount_points_exclude {
            cfg.filesystem.mount_points_exclude = re("collector.filesystem.mount-points-exclude", v)?;
        }
        if let Some(v) = &self.fs_types_exclude {
            cfg.filesystem.fs_types_exclude = re("collector.filesystem.fs-types-exclude", v)?;
        }
        if let Some(v) = self.mount_timeout {
            cfg.filesystem.mount_timeout = v;
        }
        if let Some(v) = &self.diskstats_exclude {
            cfg.diskstats.device_exclude = Some(re("collector.diskstats.device-exclude", v)?);
        }
        if let Some(v) = &self.netdev_exclude {
            cfg.netdev.device_exclude = Some(re("collector.netdev.device-exclude", v)?);
        }
        if let Some(v) = &self.netdev_include {
            cfg.netdev.device_include = Some(re("collector.netdev.device-include", v)?);
        }
        if let Some(v) = &self.textfile_directory {
            cfg.textfile.directory = Some(v.clone());
        }
        Ok(())
    }
}

/// The clap command: the derived flags plus one enable/disable pair per collector.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for spec in REGISTRY {
        let default = if spec.default_enabled { "enabled" } else { "disabled" };
        cmd = cmd
            .arg(
                Arg::new(format!("collector.{}", spec.name))
                    .long(format!("collector.{}", spec.name))
                    .action(ArgAction::Count)
                    .help(format!("Enable the {} collector (default: {default}).", spec.name)),
            )
            .arg(
                Arg::new(format!("no-collector.{}", spec.name))
                    .long(format!("no-collector.{}", spec.name))
                    .action(ArgAction::Count)
                    .hide(true),
            );
    }
    cmd
}

fn collector_flags(m: &ArgMatches) -> Vec<(String, bool)> {
    let mut flags: Vec<(usize, String, bool)> = Vec::new();
    for spec in REGISTRY {
        for (id, on) in [(format!("collector.{}", spec.name), true), (format!("no-collector.{}", spec.name), false)] {
            if m.get_count(&id) > 0 {
                let last = m.indices_of(&id).and_then(|i| i.max()).unwrap_or(0);
                flags.push((last, spec.name.to_string(), on));
            }
        }
    }
    flags.sort();
    flags.into_iter().map(|(_, n, on)| (n, on)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_flags_keep_command_line_order() {
        let cli = Cli::parse_from_iter([
            "x",
            "--collector.disable-defaults",
            "--collector.cpu",
            "--no-collector.meminfo",
            "--no-collector.cpu",
            "--collector.meminfo",
        ]);
        assert!(cli.disable_defaults);
        assert_eq!(
            cli.collector_flags,
            vec![("cpu".into(), true), ("meminfo".into(), false), ("cpu".into(), false), ("meminfo".into(), true)]
        );
    }

    #[test]
    fn overrides_apply_and_bad_regex_names_flag() {
        let cli = Cli::parse_from_iter(["x", "--collector.filesystem.mount-timeout=2s", "--collector.textfile.directory=/t"]);
        let mut cfg = Config::default();
        cli.apply_overrides(&mut cfg).unwrap();
        assert_eq!(cfg.filesystem.mount_timeout.0, std::time::Duration::from_secs(2));
        assert_eq!(cfg.textfile.directory, Some(PathBuf::from("/t")));
        let cli = Cli::parse_from_iter(["x", "--collector.netdev.device-exclude=("]);
        let err = cli.apply_overrides(&mut cfg).unwrap_err();
        assert!(err.contains("--collector.netdev.device-exclude"), "{err}");
    }

    #[test]
    fn defaults_match_node_exporter_style() {
        let cli = Cli::parse_from_iter(["x"]);
        assert_eq!(cli.listen, vec![":9910"]);
        assert_eq!(cli.telemetry_path, "/metrics");
        assert_eq!(cli.max_requests, 40);
    }
}
