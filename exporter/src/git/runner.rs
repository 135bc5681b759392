//! Refreshes the repositories in the background: every `refresh_interval`, discovery and then
//! one libgit2 scan per repository on tokio's blocking pool, a few at a time. Results go to
//! [`GitState`], which a scrape only reads; the per-repository history caches live there too,
//! so they survive config reloads.

use super::config::GitConfig;
use super::discover::{discover, Target};
use super::scan::{scan, RepoCache, RepoStats, ScanOptions};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// The latest scan of one repository.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub path: PathBuf,
    /// The statistics, or why the scan failed.
    pub result: Result<RepoStats, String>,
    pub duration: Duration,
    pub at: SystemTime,
}

/// Latest reports by repository name, and the history caches by path.
#[derive(Default)]
pub struct GitState {
    reports: Mutex<BTreeMap<String, Report>>,
    caches: Mutex<HashMap<PathBuf, Arc<Mutex<RepoCache>>>>,
}

impl GitState {
    pub fn reports(&self) -> Vec<Report> {
        self.reports.lock().map(|r| r.values().cloned().collect()).unwrap_or_default()
    }

    fn cache(&self, path: &Path) -> Arc<Mutex<RepoCache>> {
        let Ok(mut caches) = self.caches.lock() else { return Arc::default() };
        caches.entry(path.to_path_buf()).or_default().clone()
    }

    /// Forgets repositories that are no longer found (their series disappear).
    fn retain(&self, targets: &[Target]) {
        if let Ok(mut r) = self.reports.lock() {
            r.retain(|name, rep| targets.iter().any(|t| &t.name == name && t.path == rep.path));
        }
        if let Ok(mut c) = self.caches.lock() {
            c.retain(|path, _| targets.iter().any(|t| &t.path == path));
        }
    }

    fn record(&self, report: Report) {
        let was_ok = self.reports.lock().ok().and_then(|r| r.get(&report.name).map(|p| p.result.is_ok())).unwrap_or(true);
        match &report.result {
            Err(e) if was_ok => tracing::warn!(repo = %report.name, path = %report.path.display(), err = %e, "git scan failed"),
            Err(e) => tracing::debug!(repo = %report.name, err = %e, "git scan still failing"),
            Ok(_) if !was_ok => tracing::info!(repo = %report.name, "git scan recovered"),
            Ok(_) => {}
        }
        if let Ok(mut r) = self.reports.lock() {
            r.insert(report.name.clone(), report);
        }
    }
}

/// How many repositories are scanned at once.
pub fn concurrency() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4)
}

/// Runs one refresh: discovery, then every repository scanned (at most `concurrency()` at
/// once), each result recorded as it arrives. A vanished, unlisted repository is dropped
/// rather than reported.
pub async fn refresh(cfg: Arc<GitConfig>, state: Arc<GitState>) {
    let discovered = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || discover(&cfg)).await.unwrap_or_default()
    };
    state.retain(&discovered);
    let opts = Arc::new(ScanOptions {
        windows: cfg.windows.iter().map(|w| (w.label.clone(), w.length)).collect(),
        top_authors: cfg.top_authors,
        include_untracked: cfg.include_untracked,
    });
    let permits = Arc::new(Semaphore::new(concurrency()));
    let mut tasks = Vec::new();
    for target in discovered {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let (state, opts) = (state.clone(), opts.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            scan_one(&state, &target, &opts);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Scans one repository and records the result.
pub fn scan_one(state: &GitState, target: &Target, opts: &ScanOptions) {
    let cache = state.cache(&target.path);
    let Ok(mut cache) = cache.lock() else { return };
    let started = Instant::now();
    let at = SystemTime::now();
    let now = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let result = scan(&target.path, opts, &mut cache, now);
    let duration = started.elapsed();
    if matches!(result, Err(super::scan::ScanError::Vanished)) && !target.listed {
        tracing::info!(repo = %target.name, path = %target.path.display(), "git repository is gone");
        state.retain_without(&target.name);
        return;
    }
    let result = result.map_err(|e| e.to_string());
    tracing::debug!(repo = %target.name, loaded = cache.last_loaded, counted = cache.last_counted_walk, secs = duration.as_secs_f64(), "git scan");
    state.record(Report { name: target.name.clone(), path: target.path.clone(), result, duration, at });
}

impl GitState {
    fn retain_without(&self, name: &str) {
        if let Ok(mut r) = self.reports.lock() {
            r.remove(name);
        }
    }
}

/// The running refresh loop; dropping it stops the loop.
pub struct Refresher {
    task: tokio::task::AbortHandle,
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Refresher {
    /// Starts the loop on the current tokio runtime (first refresh at once); `None` outside a
    /// runtime (e.g. in `--config.check`).
    pub fn start(cfg: Arc<GitConfig>, state: Arc<GitState>, hook: Option<AfterRefresh>) -> Option<Refresher> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let task = handle.spawn(async move {
            let mut ticks = tokio::time::interval(cfg.refresh_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                refresh(cfg.clone(), state.clone()).await;
                if let Some(h) = &hook {
                    let (h, state) = (h.clone(), state.clone());
                    let _ = tokio::task::spawn_blocking(move || h(&state)).await;
                }
            }
        });
        Some(Refresher { task: task.abort_handle() })
    }
}

/// Work done after each refresh on the blocking pool (the stats log).
pub type AfterRefresh = Arc<dyn Fn(&GitState) + Send + Sync>;
