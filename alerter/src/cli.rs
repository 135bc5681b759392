//! Command-line interface: the daemon's flags (Prometheus-style names) and the promtool-like
//! subcommands `check config`, `check rules`, `check metrics`, `test rules` and `scrape`.

use clap::{Parser, Subcommand, ValueEnum};
use fleetwatch_common::duration::PromDuration;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "fleetwatch-alerter", version, about = "Scrapes Prometheus exporters across a fleet and evaluates alert rules.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Prometheus-style YAML config file; the embedded default (the local exporter and the
    /// shipped rules) is used when none is given.
    #[arg(long = "config.file")]
    pub config_file: Option<PathBuf>,
    /// Validate the config and its rule files, then exit: 0 when valid, 1 otherwise.
    #[arg(long = "config.check")]
    pub config_check: bool,
    /// Address to listen on (`host:port`, `:port` for all interfaces); repeatable.
    #[arg(long = "web.listen-address", default_value = ":9911")]
    pub listen: Vec<String>,
    /// exporter-toolkit web config file (TLS, basic auth) for the alerter's own HTTP server.
    #[arg(long = "web.config.file")]
    pub web_config: Option<PathBuf>,
    /// The most series the store holds; new series beyond it are refused and counted.
    #[arg(long = "storage.max-series", default_value_t = 2_000_000)]
    pub max_series: usize,
    /// How many scrapes may run at once.
    #[arg(long = "scrape.max-concurrency", default_value_t = 256)]
    pub scrape_concurrency: usize,
    /// How far back an instant selector looks for a sample (Prometheus's lookback delta).
    #[arg(long = "query.lookback-delta", default_value = "5m")]
    pub lookback: PromDuration,
    /// Log level: debug, info, warn, error.
    #[arg(long = "log.level", default_value = "info")]
    pub log_level: String,
    /// Log format: logfmt or json.
    #[arg(long = "log.format", default_value = "logfmt")]
    pub log_format: String,
    /// Directory of the alerter's database (alert states, outbox, notification log, silences,
    /// history).
    #[arg(long = "storage.path", default_value = "data/")]
    pub storage_path: PathBuf,
    /// How long the alert history and the notification log are kept.
    #[arg(long = "storage.history.retention", default_value = "90d")]
    pub history_retention: PromDuration,
    /// Max time to tolerate an outage when restoring the `for` state of alerts.
    #[arg(long = "rules.alert.for-outage-tolerance", default_value = "1h")]
    pub for_outage_tolerance: PromDuration,
    /// Minimum time left of `for` for an alert restored after an outage.
    #[arg(long = "rules.alert.for-grace-period", default_value = "10m")]
    pub for_grace_period: PromDuration,
    /// How often active alerts are re-sent to `alertmanager` receivers.
    #[arg(long = "rules.alert.resend-delay", default_value = "1m")]
    pub resend_delay: PromDuration,
    /// Notifications not delivered after this long are dropped and counted as expired.
    #[arg(long = "notification.max-age", default_value = "24h")]
    pub notification_max_age: PromDuration,
    /// Delay before the first retry of a failed notification; doubles per attempt.
    #[arg(long = "notification.backoff.initial", default_value = "1s")]
    pub backoff_initial: PromDuration,
    /// Longest delay between retries of a failed notification.
    #[arg(long = "notification.backoff.max", default_value = "5m")]
    pub backoff_max: PromDuration,
    /// Delivery attempts in flight per receiver.
    #[arg(long = "notification.concurrency", default_value_t = 4)]
    pub notification_concurrency: usize,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate configs or expositions, like promtool.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
    /// Run unit tests, like promtool.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
    /// Create, list and expire silences of a running alerter, like amtool.
    Silence {
        #[command(subcommand)]
        what: SilenceCommand,
        /// The running alerter.
        #[arg(long = "alerter.url", default_value = "http://127.0.0.1:9911", global = true)]
        url: String,
    },
    /// Show the alert history of a running alerter.
    History {
        /// How far back, as a duration.
        #[arg(long, default_value = "24h")]
        since: PromDuration,
        /// Only this alert.
        #[arg(long)]
        alertname: Option<String>,
        /// Print the JSON as served.
        #[arg(long)]
        json: bool,
        /// The running alerter.
        #[arg(long = "alerter.url", default_value = "http://127.0.0.1:9911")]
        url: String,
    },
    /// Scrape one URL as the daemon would and print what was parsed.
    Scrape {
        url: String,
        /// Whole-request timeout.
        #[arg(long, default_value = "10s")]
        timeout: PromDuration,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Check config files (and the rule files they name); exit 1 when any is invalid.
    Config {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Read an exposition from stdin, report parse errors (exit 1) and lint problems (exit 3).
    Metrics {
        /// Exposition format of the input; `auto` picks OpenMetrics when it ends with `# EOF`.
        #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
        format: InputFormat,
    },
    /// Check rule files; exit 1 when any is invalid (duplicate rules are reported, not fatal).
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence the alerts matching every matcher (`name="value"`, `name=~"regex"`, `!=`, `!~`).
    Add {
        #[arg(required = true)]
        matchers: Vec<String>,
        #[arg(long, default_value = "1h")]
        duration: PromDuration,
        #[arg(long, default_value = "")]
        comment: String,
        #[arg(long, default_value = "")]
        author: String,
    },
    /// List silences (active and pending; `--expired` too).
    List {
        #[arg(long)]
        expired: bool,
    },
    /// End silences now.
    Expire {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Run promtool rule unit-test files; exit 1 when any test fails.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    Auto,
    Text,
    Openmetrics,
}
