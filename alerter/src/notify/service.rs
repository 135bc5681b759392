//! The notification service: connects the rule manager to the receivers. After each rule group
//! evaluation it gets the group's alerts; it steps the dispatcher (routing, grouping, silences,
//! inhibition) with every group's firing and resolved alerts and writes, in one transaction, the
//! group's alert states (for the `for` restore), the notifications into the outbox (one entry per
//! integration), the history events and the dispatcher's state. The delivery loop empties the
//! outbox. A reload rebuilds receivers and routes but keeps the dispatcher's group state.

use super::db::{self, AlertRow, Db, HistoryRow};
use super::deliver::{self, Delivery, Receivers};
use super::dispatch::{AlertSnapshot, Dispatcher, GroupState, HistoryEvent};
use super::receiver::{self, BuildContext, ReceiverConfig};
use super::silences::SilenceRecord;
use crate::config::Config;
use crate::scrape::now_ms;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Settings from flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub storage_path: PathBuf,
    pub history_retention: Duration,
    pub for_outage_tolerance: Duration,
    pub for_grace_period: Duration,
    pub resend_delay: Duration,
    pub delivery: deliver::Settings,
}

/// One rule group evaluation's result, as the service needs it.
struct Evaluated {
    group: String,
    t: i64,
    /// `None` when the group's pending and firing alerts are the same as last time.
    rows: Option<Vec<AlertRow>>,
    alerts: Vec<AlertSnapshot>,
}

struct Inner {
    dispatcher: Dispatcher,
    /// Receiver name → its integrations (kind, index).
    integrations: BTreeMap<String, Vec<(&'static str, usize)>>,
    /// The last evaluation's firing and resolved alerts of each rule group.
    alerts: HashMap<String, Vec<AlertSnapshot>>,
    /// When the dispatcher last stepped.
    last_step_ms: i64,
    /// Silences or routes changed since: the next tick steps even if nothing is due.
    changed: bool,
}

pub struct Service {
    pub db: Arc<Db>,
    pub delivery: Arc<Delivery>,
    pub settings: Settings,
    tx: mpsc::UnboundedSender<Evaluated>,
    inner: Mutex<Inner>,
    silences: Mutex<Vec<SilenceRecord>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            t.abort();
        }
    }
}

/// Receivers, routes and dispatcher built from a config.
struct Built {
    receivers: Receivers,
    integrations: BTreeMap<String, Vec<(&'static str, usize)>>,
    dispatcher: Dispatcher,
}

fn build(config: &Config, external_url: &str, settings: Option<&Settings>) -> Result<Built, String> {
    let mut receivers = Receivers::new();
    let mut integrations = BTreeMap::new();
    let mut kinds = BTreeMap::new();
    let ctx = BuildContext { base_dir: config.base_dir.clone() };
    for r in receiver_configs(config) {
        let built = receiver::build(&r, &ctx).map_err(|e| e.to_string())?;
        kinds.insert(r.name.clone(), built.iter().map(|i| i.kind).collect::<Vec<_>>());
        integrations.insert(r.name.clone(), built.iter().map(|i| (i.kind, i.index)).collect::<Vec<_>>());
        receivers.insert(r.name.clone(), built.into_iter().map(Arc::new).collect());
    }
    let mut dispatcher = Dispatcher::new(&config.notify_config(), &kinds, external_url).map_err(|e| e.to_string())?;
    if let Some(s) = settings {
        dispatcher.set_resend_delay(s.resend_delay.as_millis() as i64);
        // An alert notified before a restart may be missing while its `for` is restored: at
        // most the grace period plus an evaluation.
        dispatcher.set_restore_grace((s.for_grace_period + config.evaluation_interval()).as_millis() as i64);
    }
    Ok(Built { receivers, integrations, dispatcher })
}

/// The configured receivers, plus the default `log` receiver when none is named `log`.
fn receiver_configs(config: &Config) -> Vec<ReceiverConfig> {
    let mut out = config.receivers.clone();
    if !out.iter().any(|r| r.name == "log") {
        let log: ReceiverConfig = serde_yaml_ng::from_str("{name: log, log_configs: [{}]}").expect("the default log receiver parses");
        out.push(log);
    }
    out
}

/// Checks that the config's receivers build and its routes name existing receivers.
pub fn check(config: &Config) -> Result<(), String> {
    build(config, "", None).map(|_| ())
}

impl Service {
    /// Opens the database, builds receivers and the dispatcher (restoring its saved state) and
    /// starts the service and delivery loops.
    pub fn start(settings: Settings, config: &Config, external_url: &str) -> Result<Arc<Service>, String> {
        let db = Db::open(&settings.storage_path).map_err(|e| e.to_string())?;
        let Built { receivers, integrations, mut dispatcher } = build(config, external_url, Some(&settings))?;
        let saved = db.with(|c| db::group_states(c)).map_err(|e| e.to_string())?;
        let mut state = Vec::with_capacity(saved.len());
        for json in saved {
            match serde_json::from_str::<GroupState>(&json) {
                Ok(s) => state.push(s),
                Err(e) => tracing::warn!(err = %e, "a saved notification group state is unreadable; left out"),
            }
        }
        dispatcher.restore(state);
        dispatcher.take_state_changes();
        let silences = db
            .with(|c| db::silences(c))
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|body| serde_json::from_str::<SilenceRecord>(&body).ok())
            .collect();
        let delivery = Delivery::new(db.clone(), settings.delivery.clone(), receivers);
        let (tx, rx) = mpsc::unbounded_channel();
        let service = Arc::new(Service {
            db,
            delivery: delivery.clone(),
            settings,
            tx,
            inner: Mutex::new(Inner { dispatcher, integrations, alerts: HashMap::new(), last_step_ms: i64::MIN, changed: true }),
            silences: Mutex::new(silences),
            tasks: Mutex::new(Vec::new()),
        });
        let tasks =
            vec![delivery.start(), tokio::spawn(run(Arc::downgrade(&service), rx)), tokio::spawn(prune_loop(Arc::downgrade(&service)))];
        *service.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        Ok(service)
    }

    /// Rebuilds receivers and routes from a reloaded config; the group state carries over.
    pub fn reload(&self, config: &Config, external_url: &str) -> Result<(), String> {
        let Built { receivers, integrations, dispatcher } = build(config, external_url, Some(&self.settings))?;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let old = std::mem::replace(&mut inner.dispatcher, dispatcher);
        inner.dispatcher.take_over(old);
        inner.changed = true;
        inner.integrations = integrations;
        self.delivery.set_receivers(receivers);
        Ok(())
    }

    /// Forgets the alerts of rule groups that are no longer loaded.
    pub fn keep_groups(&self, groups: &HashSet<String>) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).alerts.retain(|g, _| groups.contains(g));
    }

    /// The saved pending and firing alerts of a rule group (for the `for` restore at start).
    pub async fn saved_alerts(&self, group: &str) -> Vec<AlertRow> {
        let g = group.to_string();
        let since = now_ms() - self.settings.for_outage_tolerance.as_millis() as i64;
        match self.db.call(move |c| db::group_alerts(c, &g)).await {
            Ok(rows) => rows.into_iter().filter(|r| r.last_seen >= since).collect(),
            Err(e) => {
                tracing::error!(err = %e, group, "reading saved alert states failed; `for` is not restored");
                Vec::new()
            }
        }
    }

    /// Hands over a rule group's evaluation: its pending/firing alerts to save, and its firing and
    /// resolved alerts for the dispatcher.
    pub fn evaluated(&self, group: String, t: i64, rows: Option<Vec<AlertRow>>, alerts: Vec<AlertSnapshot>) {
        let _ = self.tx.send(Evaluated { group, t, rows, alerts });
    }

    /// The silences, newest end first.
    pub fn silences(&self) -> Vec<SilenceRecord> {
        self.silences.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stores a new or updated silence.
    pub async fn put_silence(&self, s: SilenceRecord) -> Result<(), db::DbError> {
        let body = serde_json::to_string(&s)?;
        let (id, ends) = (s.id.clone(), s.ends_at_ms);
        self.db.call(move |c| db::put_silence(c, &id, ends, &body)).await?;
        let mut all = self.silences.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|x| x.id != s.id);
        all.push(s);
        all.sort_by(|a, b| b.ends_at_ms.cmp(&a.ends_at_ms).then(a.id.cmp(&b.id)));
        drop(all);
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).changed = true;
        Ok(())
    }

    /// Whether a step without new evaluations could change anything now: a group's timer or a
    /// restore hold is due, a silence started or ended since the last step, or silences or
    /// routes changed. With thousands of alerts firing and nothing due, the once-a-second tick
    /// then costs nothing.
    fn due(&self, now: i64) -> bool {
        let (last, changed, next) = {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            (inner.last_step_ms, inner.changed, inner.dispatcher.next_due())
        };
        let crossed = |t: i64| last < t && t <= now;
        changed || next.is_some_and(|t| t <= now) || self.silences().iter().any(|s| crossed(s.starts_at_ms) || crossed(s.ends_at_ms))
    }

    /// Ends a silence now; false when there is no such silence.
    pub async fn expire_silence(&self, id: &str) -> Result<bool, db::DbError> {
        let now = now_ms();
        let found = self.silences().into_iter().find(|s| s.id == id);
        let Some(mut s) = found else { return Ok(false) };
        if s.ends_at_ms > now {
            s.ends_at_ms = now;
            s.starts_at_ms = s.starts_at_ms.min(now);
            s.updated_at_ms = now;
            self.put_silence(s).await?;
        }
        Ok(true)
    }

    /// The history since `since` (ms), of one alert when given.
    pub async fn history(&self, since: i64, alertname: Option<String>, limit: usize) -> Result<Vec<HistoryRow>, db::DbError> {
        self.db.call(move |c| db::history(c, since, alertname.as_deref(), limit)).await
    }

    /// One step: the dispatcher over every group's alerts, then one transaction.
    async fn step(&self, batch: Vec<Evaluated>) {
        let now = now_ms();
        let active: Vec<_> = self.silences().into_iter().filter(|s| s.state(now) == "active").map(|s| s.to_dispatch()).collect();
        let (entries, events, state) = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            (inner.last_step_ms, inner.changed) = (now, false);
            for e in &batch {
                inner.alerts.insert(e.group.clone(), e.alerts.clone());
            }
            let all: Vec<AlertSnapshot> = inner.alerts.values().flatten().cloned().collect();
            let out = inner.dispatcher.step(now, &all, &active);
            let changes = inner.dispatcher.take_state_changes();
            let state: Result<Vec<(String, String, String)>, serde_json::Error> =
                changes.changed.iter().map(|g| Ok((g.receiver.clone(), g.group_key.clone(), serde_json::to_string(g)?))).collect();
            let state = (changes.removed, state);
            let mut entries = Vec::new();
            for n in &out.notifications {
                let payload = match serde_json::to_string(n) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(err = %e, "notification not serializable; dropped");
                        continue;
                    }
                };
                for (kind, index) in inner.integrations.get(&n.receiver).into_iter().flatten() {
                    entries.push((n.receiver.clone(), *kind, *index, n.group_key.clone(), payload.clone()));
                }
            }
            (entries, out.events, state)
        };
        let (removed, changed) = match state {
            (removed, Ok(changed)) => (removed, changed),
            (removed, Err(e)) => {
                tracing::error!(err = %e, "notification group state not serializable");
                (removed, Vec::new())
            }
        };
        if batch.is_empty() && entries.is_empty() && events.is_empty() && removed.is_empty() && changed.is_empty() {
            return;
        }
        let history: Vec<HistoryRow> = events.into_iter().map(history_row).collect();
        let queued = entries.len();
        let result = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                for e in &batch {
                    db::save_group_alerts(&tx, &e.group, e.t, e.rows.as_deref())?;
                }
                for (receiver, kind, index, group_key, payload) in &entries {
                    db::enqueue(&tx, receiver, kind, *index, group_key, payload, now)?;
                }
                db::add_history(&tx, &history)?;
                db::save_group_states(&tx, &removed, &changed)?;
                tx.commit()?;
                Ok(())
            })
            .await;
        match result {
            Ok(()) if queued > 0 => self.delivery.wake(),
            Ok(()) => {}
            Err(e) => tracing::error!(err = %e, "saving alert states and notifications failed"),
        }
    }
}

fn history_row(e: HistoryEvent) -> HistoryRow {
    HistoryRow {
        at_ms: e.at_ms,
        kind: e.kind.as_str().to_string(),
        alertname: e.alertname,
        labels: e.labels,
        fingerprint: e.fingerprint,
        receiver: e.receiver,
        detail: e.detail,
    }
}

/// Steps the dispatcher after every evaluation, and on a once-a-second tick when something is due
/// (group timers, restore holds, silences starting or ending).
async fn run(service: std::sync::Weak<Service>, mut rx: mpsc::UnboundedReceiver<Evaluated>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => batch.push(m),
                None => return,
            },
            _ = tick.tick() => {}
        }
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let Some(service) = service.upgrade() else { return };
        if batch.is_empty() && !service.due(now_ms()) {
            continue;
        }
        service.step(batch).await;
    }
}

/// Drops history past its retention and long-expired silences, hourly.
async fn prune_loop(service: std::sync::Weak<Service>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let Some(service) = service.upgrade() else { return };
        let before = now_ms() - service.settings.history_retention.as_millis() as i64;
        let result = service.db.call(move |c| Ok((db::prune_history(c, before)?, db::prune_silences(c, before)?))).await;
        match result {
            Ok((h, s)) if h + s > 0 => tracing::info!(history = h, silences = s, "pruned entries past the history retention"),
            Ok(_) => {}
            Err(e) => tracing::error!(err = %e, "pruning the history failed"),
        }
        service.silences.lock().unwrap_or_else(|p| p.into_inner()).retain(|s| s.ends_at_ms >= before);
    }
}
