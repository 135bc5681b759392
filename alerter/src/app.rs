//! The running alerter: config and rules (loaded and reloaded together, all or nothing), the
//! store with the rules' selection, the scrape manager, and the background upkeep tasks.

use crate::config::Config;
use crate::evaluate::{compile, GroupEval};
use crate::manager::Manager;
use crate::notify::service::{self, Service};
use crate::rule_manager::{EvalSettings, RuleManager};
use crate::rules::{self, RuleSet};
use crate::scrape::Shared;
use crate::store::{Selection, Store};
use crate::telemetry::Telemetry;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Settings from flags that reloads do not change.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: Option<PathBuf>,
    pub max_series: usize,
    pub scrape_concurrency: usize,
    pub lookback_ms: i64,
    pub notify: service::Settings,
}

pub struct App {
    pub options: Options,
    pub store: Arc<RwLock<Store>>,
    pub manager: Mutex<Manager>,
    pub telemetry: Arc<Telemetry>,
    pub config: RwLock<Arc<Config>>,
    pub rules: RwLock<Arc<RuleSet>>,
    pub rule_manager: Mutex<Option<RuleManager>>,
    pub notify: Arc<Service>,
    reload_lock: tokio::sync::Mutex<()>,
}

/// A loaded config with its rules, compiled for evaluation.
pub struct Loaded {
    pub config: Config,
    pub rules: RuleSet,
    pub groups: Vec<GroupEval>,
}

/// Loads the config file (or the embedded default) and its rules (the shipped ones for the default),
/// compiling the rules' templates.
pub fn load(options: &Options) -> Result<Loaded, String> {
    let config = Config::load(options.config_file.as_deref()).map_err(|e| e.to_string())?;
    let rules = match &options.config_file {
        Some(_) => rules::load_globs(&config.rule_files, &config.base_dir),
        None => rules::load_shipped(),
    }
    .map_err(|e| e.to_string())?;
    let mut rules = rules;
    if let Some(file) = crate::notify::thresholds::compile(&config.thresholds).map_err(|e| e.to_string())? {
        rules.files.push(file);
    }
    crate::notify::service::check(&config)?;
    let groups = compile(&rules.files, config.evaluation_interval().as_millis() as i64)?;
    Ok(Loaded { config, rules, groups })
}

fn eval_settings(options: &Options, config: &Config, notify: &Arc<Service>) -> EvalSettings {
    let engine = fleetwatch_promql::Engine {
        lookback_ms: options.lookback_ms,
        subquery_step_ms: (config.evaluation_interval().as_millis() as i64).max(1),
        ..Default::default()
    };
    EvalSettings {
        engine,
        external_labels: config.global.external_labels.clone(),
        external_url: String::new(),
        notify: Some(notify.clone()),
    }
}

impl App {
    /// Starts scraping with an already loaded config (see `load`).
    pub fn start(options: Options, loaded: Loaded) -> Result<Arc<App>, String> {
        let Loaded { config, rules, groups } = loaded;
        let selection = Selection::new(rules.selector_needs(options.lookback_ms));
        let store = Arc::new(RwLock::new(Store::new(selection, options.max_series)));
        let telemetry = Arc::new(Telemetry::default());
        let shared = Shared {
            store: store.clone(),
            telemetry: telemetry.clone(),
            concurrency: Arc::new(Semaphore::new(options.scrape_concurrency)),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut manager = Manager::new(shared, tx);
        manager.apply(&config)?;
        let notify = Service::start(options.notify.clone(), &config, "")?;
        let rule_manager = RuleManager::start(groups, None, store.clone(), eval_settings(&options, &config, &notify));
        let app = Arc::new(App {
            options,
            store,
            manager: Mutex::new(manager),
            telemetry,
            config: RwLock::new(Arc::new(config)),
            rules: RwLock::new(Arc::new(rules)),
            rule_manager: Mutex::new(Some(rule_manager)),
            notify,
            reload_lock: tokio::sync::Mutex::new(()),
        });
        app.reloaded();
        let weak = Arc::downgrade(&app);
        tokio::spawn(async move {
            while let Some(update) = rx.recv().await {
                let Some(app) = weak.upgrade() else { return };
                app.manager.lock().unwrap_or_else(|p| p.into_inner()).update(update);
            }
        });
        tokio::spawn(gc_loop(Arc::downgrade(&app)));
        Ok(app)
    }

    /// Re-reads config and rules; on any error the running ones stay and the error is returned.
    pub async fn reload(&self) -> Result<(), String> {
        let _guard = self.reload_lock.lock().await;
        let result = load(&self.options).and_then(|Loaded { config, rules, groups }| {
            self.notify.reload(&config, "")?;
            self.manager.lock().unwrap_or_else(|p| p.into_inner()).apply(&config)?;
            let selection = Selection::new(rules.selector_needs(self.options.lookback_ms));
            self.store.write().unwrap_or_else(|p| p.into_inner()).set_selection(selection);
            let mut running = self.rule_manager.lock().unwrap_or_else(|p| p.into_inner());
            let next =
                RuleManager::start(groups, running.as_ref(), self.store.clone(), eval_settings(&self.options, &config, &self.notify));
            *running = Some(next);
            *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
            *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
            Ok(())
        });
        match &result {
            Ok(()) => {
                self.reloaded();
                tracing::info!("configuration reloaded");
            }
            Err(e) => {
                self.telemetry.config_last_reload_ok.store(0, Ordering::Relaxed);
                self.telemetry.config_reloads_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(err = %e, "configuration reload failed; keeping the running configuration");
            }
        }
        result
    }

    fn reloaded(&self) {
        self.telemetry.config_last_reload_ok.store(1, Ordering::Relaxed);
        self.telemetry.config_last_reload_time.store(crate::scrape::now_ms() as u64 / 1000, Ordering::Relaxed);
    }
}

/// Drops samples past their retention and frees series that are only stale markers.
async fn gc_loop(app: std::sync::Weak<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(app) = app.upgrade() else { return };
        app.store.write().unwrap_or_else(|p| p.into_inner()).gc(crate::scrape::now_ms());
    }
}
