//! Running the rule groups in the daemon: one loop per group at its interval (at a stable offset
//! within it, as Prometheus spreads groups), evaluating against the series store with the store's
//! lock held for the group (the runtime has one thread, so this costs scrapes nothing but the
//! evaluation time), and keeping alert state across reloads for rules that did not change.

use crate::evaluate::{Context, GroupEval, Sink, StorageSink};
use crate::scrape::{first_delay, now_ms};
use crate::store::Store;
use fleetwatch_promql::{Engine, Labels, Storage};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Writes rule output into the store (only what some rule selects is kept, as for scrapes).
struct StoreSink<'a>(&'a mut Store);

impl Sink for StoreSink<'_> {
    fn write(&mut self, labels: Labels, t: i64, v: f64) {
        if let Ok(id) = self.0.get_or_create(labels) {
            self.0.append(id, t, v);
        }
    }
}

impl StorageSink for StoreSink<'_> {
    fn as_storage(&self) -> &dyn Storage {
        self.0
    }
}

/// A group and what the API shows about its last evaluation.
pub struct RunningGroup {
    pub group: GroupEval,
    pub last_eval_ms: Option<i64>,
    pub last_duration: f64,
}

/// Everything evaluation needs besides the groups.
#[derive(Clone)]
pub struct EvalSettings {
    pub engine: Engine,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
}

pub struct RuleManager {
    groups: Vec<Arc<Mutex<RunningGroup>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RuleManager {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RuleManager {
    /// Starts a loop per group; state of unchanged rules is taken over from `previous`.
    pub fn start(groups: Vec<GroupEval>, previous: Option<&RuleManager>, store: Arc<RwLock<Store>>, settings: EvalSettings) -> RuleManager {
        let mut running = Vec::new();
        let mut tasks = Vec::new();
        for mut g in groups {
            if let Some(old) = previous.and_then(|p| p.find(&g.file, &g.name)) {
                g.adopt_state(&mut old.lock().unwrap_or_else(|p| p.into_inner()).group);
            }
            let shared = Arc::new(Mutex::new(RunningGroup { group: g, last_eval_ms: None, last_duration: 0.0 }));
            tasks.push(tokio::spawn(run_group(shared.clone(), store.clone(), settings.clone())));
            running.push(shared);
        }
        RuleManager { groups: running, tasks }
    }

    fn find(&self, file: &str, name: &str) -> Option<&Arc<Mutex<RunningGroup>>> {
        self.groups.iter().find(|g| {
            let g = g.lock().unwrap_or_else(|p| p.into_inner());
            g.group.file == file && g.group.name == name
        })
    }

    /// Calls `f` with every group, in load order.
    pub fn for_each(&self, f: &mut dyn FnMut(&RunningGroup)) {
        for g in &self.groups {
            f(&g.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }
}

async fn run_group(group: Arc<Mutex<RunningGroup>>, store: Arc<RwLock<Store>>, settings: EvalSettings) {
    let (interval, key) = {
        let g = group.lock().unwrap_or_else(|p| p.into_inner());
        (Duration::from_millis(g.group.interval_ms.max(1) as u64), format!("{}\u{ff}{}", g.group.file, g.group.name))
    };
    tokio::time::sleep(first_delay(&key, interval, now_ms())).await;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        eval_once(&group, &store, &settings);
    }
}

fn eval_once(group: &Mutex<RunningGroup>, store: &RwLock<Store>, settings: &EvalSettings) {
    let t = now_ms();
    let started = std::time::Instant::now();
    let ctx = Context { engine: &settings.engine, external_labels: &settings.external_labels, external_url: &settings.external_url };
    let mut g = group.lock().unwrap_or_else(|p| p.into_inner());
    {
        let mut st = store.write().unwrap_or_else(|p| p.into_inner());
        g.group.eval(t, &mut StoreSink(&mut st), &ctx);
    }
    g.last_eval_ms = Some(t);
    g.last_duration = started.elapsed().as_secs_f64();
}
