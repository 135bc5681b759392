//! The `fleetwatch-alerter` binary: flags and subcommands, logging, the daemon's start-up,
//! SIGHUP reload and shutdown.

use anyhow::anyhow;
use clap::Parser;
use fleetwatch_alerter::app::{self, App, Options};
use fleetwatch_alerter::check;
use fleetwatch_alerter::cli::{CheckCommand, Cli, Command, TestCommand};
use fleetwatch_common::logging;
use fleetwatch_common::web::{self, WebState};
use std::sync::Arc;

fn main() {
    let cli = Cli::parse();
    let code = match &cli.command {
        Some(Command::Check { what: CheckCommand::Config { files } }) => check::check_config(files),
        Some(Command::Check { what: CheckCommand::Metrics { format } }) => check::check_metrics(*format),
        Some(Command::Check { what: CheckCommand::Rules { files } }) => check::check_rules(files),
        Some(Command::Test { what: TestCommand::Rules { files } }) => fleetwatch_alerter::unittest::test_rules(files),
        Some(Command::Silence { what, url }) => fleetwatch_alerter::notify::cli::silence(url, what),
        Some(Command::History { since, alertname, json, url }) => {
            fleetwatch_alerter::notify::cli::history(url, since.0, alertname.as_deref(), *json)
        }
        Some(Command::Scrape { url, timeout }) => match runtime() {
            Ok(rt) => rt.block_on(check::scrape(url, timeout.0)),
            Err(e) => {
                eprintln!("fleetwatch-alerter: {e}");
                1
            }
        },
        None => match run(cli) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("fleetwatch-alerter: {e:#}");
                1
            }
        },
    };
    std::process::exit(code);
}

/// One thread runs everything: a 1,000-target fleet needs a few percent of a core, and without
/// work stealing between threads the scrapes cost about a sixth less CPU (docs/benchmarks.md).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(4).build()
}

fn options(cli: &Cli) -> Options {
    Options {
        config_file: cli.config_file.clone(),
        max_series: cli.max_series,
        scrape_concurrency: cli.scrape_concurrency.max(1),
        lookback_ms: cli.lookback.0.as_millis() as i64,
        notify: notify_settings(cli),
    }
}

fn notify_settings(cli: &Cli) -> fleetwatch_alerter::notify::service::Settings {
    fleetwatch_alerter::notify::service::Settings {
        storage_path: cli.storage_path.clone(),
        history_retention: cli.history_retention.0,
        for_outage_tolerance: cli.for_outage_tolerance.0,
        for_grace_period: cli.for_grace_period.0,
        resend_delay: cli.resend_delay.0,
        delivery: fleetwatch_alerter::notify::deliver::Settings {
            backoff_initial: cli.backoff_initial.0,
            backoff_max: cli.backoff_max.0,
            max_age: cli.notification_max_age.0,
            concurrency: cli.notification_concurrency.max(1),
        },
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let format = cli.log_format.parse().map_err(|e| anyhow!("--log.format: {e}"))?;
    logging::init(format, &cli.log_level).map_err(|e| anyhow!("--log.level: {e}"))?;
    let options = options(&cli);
    let loaded = app::load(&options).map_err(|e| anyhow!(e))?;
    if let Some(path) = &cli.web_config {
        WebState::check(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    }
    if cli.config_check {
        println!("config OK: {} scrape configs, {} rules", loaded.config.scrape_configs.len(), loaded.rules.rule_count());
        return Ok(());
    }
    raise_open_files_limit();
    runtime()?.block_on(serve(cli, options, loaded))
}

/// A fleet means a connection per target: lift the soft open-files limit to the hard one, as
/// Go programs such as Prometheus do at start. Failing to is not fatal.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!("could not raise the open files limit");
            }
        }
    }
}

async fn serve(cli: Cli, options: Options, loaded: app::Loaded) -> anyhow::Result<()> {
    let web_state = WebState::load(cli.web_config.as_deref())?;
    let listeners = web::bind(&cli.listen).await?;
    let jobs = loaded.config.scrape_configs.len();
    let rule_count = loaded.rules.rule_count();
    let app = App::start(options, loaded).map_err(|e| anyhow!(e))?;
    tracing::info!(version = fleetwatch_alerter::api::VERSION, jobs, rules = rule_count, listen = %cli.listen.join(","), "fleetwatch-alerter started");
    tokio::spawn(reload_on_sighup(app.clone()));
    web::serve(listeners, web_state, fleetwatch_alerter::api::handler(app), web::shutdown_signal()).await;
    tracing::info!("fleetwatch-alerter stopped");
    Ok(())
}

async fn reload_on_sighup(app: Arc<App>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        let _ = app.reload().await;
    }
}
