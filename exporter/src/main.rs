//! The `fleetwatch-exporter` binary: flags, config, logging, the HTTP server, SIGHUP reload, and
//! the `report` subcommand (month-end activity report, `git::report`).

use anyhow::{anyhow, Context as _};
use fleetwatch_common::logging;
use fleetwatch_common::web::{self, WebState};
use fleetwatch_exporter::cli::Cli;
use fleetwatch_exporter::collector::Shared;
use fleetwatch_exporter::config::Config;
use fleetwatch_exporter::http::{handler, App};
use fleetwatch_exporter::scrape::{enabled_names, Exporter};
use std::sync::Arc;

fn main() {
    if std::env::args_os().nth(1).is_some_and(|a| a == "report") {
        report();
    }
    let cli = Cli::parse_args();
    if let Err(e) = run(cli) {
        eprintln!("fleetwatch-exporter: {e:#}");
        std::process::exit(1);
    }
}

/// `fleetwatch-exporter report ...`: prints the report and exits (1 with a message on error).
fn report() -> ! {
    use clap::Parser;
    let args = fleetwatch_exporter::git::report::Args::parse_from(std::env::args_os().skip(1));
    match fleetwatch_exporter::git::report::run(&args) {
        Ok(text) => {
            print!("{text}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("fleetwatch-exporter report: {e}");
            std::process::exit(1)
        }
    }
}

/// Loads the config file (or the embedded default), applies flag overrides and builds the
/// collectors.
fn load(cli: &Cli, shared: &Arc<Shared>) -> anyhow::Result<Exporter> {
    let mut config = Config::load(cli.config_file.as_deref())?;
    cli.apply_overrides(&mut config).map_err(|e| anyhow!(e))?;
    let names = enabled_names(&config, cli.disable_defaults, &cli.collector_flags);
    Exporter::build(&names, &cli.paths(), &config, shared).map_err(|e| anyhow!(e))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let format = cli.log_format.parse().map_err(|e| anyhow!("--log.format: {e}"))?;
    logging::init(format, &cli.log_level).map_err(|e| anyhow!("--log.level: {e}"))?;
    limit_malloc_arenas();
    // One async thread serves HTTP and runs the health checks; collectors run on a small blocking
    // pool (see scrape.rs). The runtime exists before the config loads: health checks start there.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(8).thread_stack_size(512 * 1024).build()?;
    let _entered = runtime.enter();
    let shared = Arc::new(Shared::default());
    let exporter = load(&cli, &shared)?;
    if let Some(path) = &cli.web_config {
        WebState::check(path).with_context(|| format!("{}", path.display()))?;
    }
    if cli.config_check {
        println!("config OK: collectors {}", exporter.names().join(", "));
        return Ok(());
    }
    runtime.block_on(serve(cli, exporter, shared))
}

/// glibc gives every thread that allocates its own malloc arena, each holding on to freed
/// memory; two arenas are plenty for a daemon that mostly sleeps, and keep RSS small.
/// A fixed mmap threshold stops glibc from raising it after the first large free: a scrape's
/// large buffers (with many containers, megabytes of exposition) are then mapped and returned
/// to the kernel after the response, instead of staying in the heap between scrapes.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

async fn serve(cli: Cli, exporter: Exporter, shared: Arc<Shared>) -> anyhow::Result<()> {
    let web_state = WebState::load(cli.web_config.as_deref())?;
    let listeners = web::bind(&cli.listen).await?;
    tracing::info!(version = fleetwatch_exporter::process::VERSION, collectors = %exporter.names().join(","), listen = %cli.listen.join(","), "fleetwatch-exporter started");
    let app = App::new(exporter, cli.telemetry_path.clone(), cli.max_requests);
    let cli = Arc::new(cli);
    tokio::spawn(reload_on_sighup(cli.clone(), app.clone(), shared));
    web::serve(listeners, web_state, handler(app), web::shutdown_signal()).await;
    tracing::info!("fleetwatch-exporter stopped");
    Ok(())
}

async fn reload_on_sighup(cli: Arc<Cli>, app: Arc<App>, shared: Arc<Shared>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        match load(&cli, &shared) {
            Ok(e) => {
                tracing::info!(collectors = %e.names().join(","), "config reloaded");
                app.replace(e);
            }
            Err(e) => {
                tracing::error!(err = %format!("{e:#}"), "config reload failed; keeping the running config")
            }
        }
    }
}
