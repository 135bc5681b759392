//! The scrape manager: one pool per job holding its discovered groups, its targets and their
//! scrape loops. Discovery updates and config reloads reconcile the loops: new targets start,
//! vanished ones stop (their series go stale), unchanged ones keep running untouched.

use crate::config::{Config, ScrapeConfig};
use crate::discovery::{start_job, JobGroups, Update};
use crate::scrape::{client_for, run_loop, Health, JobSettings, Shared};
use crate::targets::{build_targets, Outcome, Target};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Loop {
    target: Target,
    health: Arc<Mutex<Health>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct Pool {
    /// The job's config as text, to tell whether a reload changed it.
    fingerprint: String,
    config: ScrapeConfig,
    settings: JobSettings,
    epoch: u64,
    groups: JobGroups,
    loops: BTreeMap<String, Loop>,
    dropped: Vec<(BTreeMap<String, String>, String)>,
    discovery: Vec<JoinHandle<()>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        for t in &self.discovery {
            t.abort();
        }
    }
}

/// A target relabeling dropped: its job and discovered labels.
pub type DroppedTarget = (String, BTreeMap<String, String>);

/// A target as the API shows it.
#[derive(Debug, Clone)]
pub struct TargetView {
    pub target: Target,
    pub health: Health,
}

pub struct Manager {
    pools: BTreeMap<String, Pool>,
    shared: Shared,
    updates: UnboundedSender<Update>,
    next_epoch: u64,
}

impl Manager {
    pub fn new(shared: Shared, updates: UnboundedSender<Update>) -> Manager {
        Manager { pools: BTreeMap::new(), shared, updates, next_epoch: 1 }
    }

    /// Applies a (re)loaded config: removed and changed jobs stop, new and changed ones start.
    /// Fails without changing anything when a job's HTTP client cannot be built.
    pub fn apply(&mut self, config: &Config) -> Result<(), String> {
        let mut fresh = Vec::new();
        for sc in &config.scrape_configs {
            let fingerprint = format!("{sc:?}");
            if self.pools.get(&sc.job_name).is_some_and(|p| p.fingerprint == fingerprint) {
                continue;
            }
            let client = client_for(&sc.http()).map_err(|e| format!("job {:?}: {e}", sc.job_name))?;
            fresh.push((sc.clone(), fingerprint, client));
        }
        self.pools.retain(|name, _| config.scrape_configs.iter().any(|sc| &sc.job_name == name));
        for (sc, fingerprint, client) in fresh {
            self.pools.remove(&sc.job_name);
            let settings = JobSettings {
                client,
                honor_labels: sc.honor_labels,
                honor_timestamps: sc.honor_timestamps,
                sample_limit: sc.sample_limit,
                body_size_limit: sc.body_size_limit,
                metric_relabel: Arc::new(sc.metric_relabel_configs.clone()),
            };
            let epoch = self.next_epoch;
            self.next_epoch += 1;
            let pool = Pool {
                fingerprint,
                config: sc.clone(),
                settings,
                epoch,
                groups: JobGroups::default(),
                loops: BTreeMap::new(),
                dropped: Vec::new(),
                discovery: Vec::new(),
            };
            self.pools.insert(sc.job_name.clone(), pool);
            let tasks = start_job(&sc, epoch, self.updates.clone(), self.shared.telemetry.clone());
            if let Some(p) = self.pools.get_mut(&sc.job_name) {
                p.discovery = tasks;
            }
        }
        Ok(())
    }

    /// A discovery update: replace the source's groups and reconcile the job's loops.
    pub fn update(&mut self, u: Update) {
        let Some(pool) = self.pools.get_mut(&u.job) else { return };
        if pool.epoch != u.epoch {
            return;
        }
        if u.groups.is_empty() {
            pool.groups.sources.remove(&u.source);
        } else {
            pool.groups.sources.insert(u.source, u.groups);
        }
        reconcile(pool, &self.shared);
    }

    pub fn targets(&self) -> (Vec<TargetView>, Vec<DroppedTarget>) {
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        for (job, pool) in &self.pools {
            for l in pool.loops.values() {
                let health = l.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
                active.push(TargetView { target: l.target.clone(), health });
            }
            dropped.extend(pool.dropped.iter().map(|(d, _)| (job.clone(), d.clone())));
        }
        (active, dropped)
    }

    /// Active targets by (job, health) for `/metrics`.
    pub fn health_counts(&self) -> BTreeMap<(String, &'static str), usize> {
        let mut out = BTreeMap::new();
        for (job, pool) in &self.pools {
            for l in pool.loops.values() {
                let h = match l.health.lock().unwrap_or_else(|p| p.into_inner()).up {
                    Some(true) => "up",
                    Some(false) => "down",
                    None => "unknown",
                };
                *out.entry((job.clone(), h)).or_default() += 1;
            }
        }
        out
    }
}

fn reconcile(pool: &mut Pool, shared: &Shared) {
    let mut wanted: HashMap<String, Target> = HashMap::new();
    pool.dropped.clear();
    for outcome in build_targets(&pool.config, &pool.groups.all()) {
        match outcome {
            Outcome::Active(t) => {
                wanted.entry(t.key()).or_insert(t);
            }
            Outcome::Dropped(d, why) => pool.dropped.push((d, why)),
        }
    }
    pool.loops.retain(|key, _| wanted.contains_key(key));
    for (key, target) in wanted {
        if let Some(existing) = pool.loops.get_mut(&key) {
            existing.target.discovered = target.discovered;
            continue;
        }
        let health = Arc::new(Mutex::new(Health::default()));
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(run_loop(target.clone(), pool.settings.clone(), shared.clone(), health.clone(), stopped));
        pool.loops.insert(key, Loop { target, health, stop: Some(stop) });
    }
}
