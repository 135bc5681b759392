//! Running the rule groups in the daemon: one loop per group at its interval (at a stable offset
//! within it, as Prometheus spreads groups), evaluating against the series store with the store's
//! lock held for the group (the runtime has one thread, so this costs scrapes nothing but the
//! evaluation time), and keeping alert state across reloads for rules that did not change. After
//! each evaluation the group's alerts go to the notification service; at start, `for` progress
//! is restored from the state it saved.

use crate::alert_state::State;
use crate::evaluate::{Context, GroupEval, Sink, StorageSink};
use crate::notify::db::AlertRow;
use crate::notify::dispatch::AlertSnapshot;
use crate::notify::message::KV;
use crate::notify::service::Service;
use crate::scrape::{first_delay, now_ms};
use crate::store::Store;
use fleetwatch_promql::{Engine, Labels, Storage};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How long after a start (beyond two evaluation intervals) alerts are still restored: the first
/// scrapes of a target take up to one scrape interval (default 1m).
const RESTORE_WINDOW_MS: i64 = 60_000;

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
    /// Where alerts go after each evaluation; `None` in tests that only evaluate.
    pub notify: Option<Arc<Service>>,
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
            tasks.push(tokio::spawn(run_group(shared.clone(), store.clone(), settings.clone(), previous.is_none())));
            running.push(shared);
        }
        if let Some(n) = &settings.notify {
            n.keep_groups(&running.iter().map(|g| group_key(&g.lock().unwrap_or_else(|p| p.into_inner()).group)).collect());
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

/// The group's name in the notification state: `file;name`, as Prometheus's `rule_group` label.
pub fn group_key(g: &GroupEval) -> String {
    format!("{};{}", g.file, g.name)
}

async fn run_group(group: Arc<Mutex<RunningGroup>>, store: Arc<RwLock<Store>>, settings: EvalSettings, restore: bool) {
    let (interval, key, name) = {
        let g = group.lock().unwrap_or_else(|p| p.into_inner());
        (Duration::from_millis(g.group.interval_ms.max(1) as u64), format!("{}\u{ff}{}", g.group.file, g.group.name), group_key(&g.group))
    };
    let mut saved = match (&settings.notify, restore) {
        (Some(n), true) => n.saved_alerts(&name).await,
        _ => Vec::new(),
    };
    // The store starts empty: an alert may only come back once its series have been scraped
    // again, so alerts that appear within this window after the start are restored.
    let restore_until = now_ms() + 2 * interval.as_millis() as i64 + RESTORE_WINDOW_MS;
    tokio::time::sleep(first_delay(&key, interval, now_ms())).await;
    let mut last_rows: Vec<AlertRow> = Vec::new();
    let mut first = true;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let t = eval_once(&group, &store, &settings);
        let Some(n) = &settings.notify else { continue };
        let mut g = group.lock().unwrap_or_else(|p| p.into_inner());
        if !saved.is_empty() {
            let (tolerance, grace) = (n.settings.for_outage_tolerance.as_millis() as i64, n.settings.for_grace_period.as_millis() as i64);
            g.group.restore_for_state(t, &saved, tolerance, grace);
            if t > restore_until {
                saved = Vec::new();
            }
        }
        let rows = g.group.for_state_rows(t);
        let same =
            !std::mem::take(&mut first) && rows.len() == last_rows.len() && rows.iter().zip(&last_rows).all(|(a, b)| same_alert(a, b));
        let changed = if same { None } else { Some(rows.clone()) };
        last_rows = rows;
        n.evaluated(name.clone(), t, changed, snapshots(&g.group, &settings.external_url));
    }
}

/// Whether two saved alert rows describe the same alert state (the evaluation time aside).
fn same_alert(a: &AlertRow, b: &AlertRow) -> bool {
    a.rule == b.rule && a.labels == b.labels && a.active_at == b.active_at && a.fired_at == b.fired_at
}

/// The group's firing alerts and the resolved ones still kept, as the dispatcher takes them.
fn snapshots(g: &GroupEval, external_url: &str) -> Vec<AlertSnapshot> {
    g.alerts()
        .into_iter()
        .filter(|(_, a)| a.state != State::Pending)
        .map(|(_, a)| AlertSnapshot {
            labels: a.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<KV>(),
            annotations: a.annotations.iter().cloned().collect(),
            starts_at_ms: a.active_at,
            ends_at_ms: if a.state == State::Inactive { a.resolved_at } else { None },
            generator_url: external_url.to_string(),
        })
        .collect()
}

/// Evaluates the group now; returns the evaluation time.
fn eval_once(group: &Mutex<RunningGroup>, store: &RwLock<Store>, settings: &EvalSettings) -> i64 {
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
    t
}
