//! The activity loop in the background: every `interval` one sample (on a long-lived thread of its own: a blocking-pool thread
//! would be created anew each time, which cost more than the sample), the
//! file changes the watcher saw since the previous one, a step of the idle state machine, the
//! warning or idle action when due (on a thread of their own), and the event log. A scrape only
//! reads [`ActivityState`], which is kept across config reloads with the watcher and the idle
//! state (so a reload neither loses counters nor restarts the start-up grace).

use super::config::ActivityConfig;
use super::eventlog::{self, Details, EventLog};
use super::idle::{Action, IdleState, Observation, Policy};
use super::sample::{Sample, Sampler};
use super::watch::{RootStats, WatchConfig, Watcher};
use crate::paths::Paths;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Most directories one pass of the watcher's fallback scan visits.
pub const SCAN_MAX_DIRS: usize = 20_000;
/// While the machine stays active, an `activity_detected` event is written at most this often
/// (in seconds; the seeds' daemon wrote one a minute), carrying the file changes since the
/// previous event: a month of events then fits the default rotation.
pub const ACTIVE_EVENT_PERIOD: f64 = 60.0;

/// What a scrape reads, and what outlives a reload.
#[derive(Default)]
pub struct ActivityState {
    latest: Mutex<Option<Latest>>,
    idle: Mutex<Option<IdleState>>,
    watcher: Mutex<Option<(String, Arc<Watcher>)>>,
    actions_total: AtomicU64,
}

/// The latest sample and the idle state after it.
#[derive(Debug, Clone, Default)]
pub struct Latest {
    pub sample: Sample,
    pub idle: bool,
    pub idle_seconds: f64,
    pub last_active: f64,
}

impl ActivityState {
    pub fn latest(&self) -> Option<Latest> {
        self.latest.lock().ok()?.clone()
    }

    pub fn actions_total(&self) -> u64 {
        self.actions_total.load(Ordering::Relaxed)
    }

    /// The watcher's per-root counters (none without roots).
    pub fn file_stats(&self) -> Vec<RootStats> {
        self.watcher.lock().ok().and_then(|w| w.as_ref().map(|(_, w)| w.stats())).unwrap_or_default()
    }

    /// The running watcher for this config: the same one when roots and options did not change.
    fn watcher(&self, config: WatchConfig) -> Option<Arc<Watcher>> {
        let mut slot = self.watcher.lock().ok()?;
        if config.roots.is_empty() {
            *slot = None;
            return None;
        }
        let key = format!("{config:?}");
        if let Some((k, w)) = slot.as_ref() {
            if *k == key {
                return Some(w.clone());
            }
        }
        match Watcher::start(config) {
            Ok(w) => {
                let w = Arc::new(w);
                *slot = Some((key, w.clone()));
                Some(w)
            }
            Err(e) => {
                tracing::error!(err = %e, "activity: cannot watch files; file changes are not seen");
                *slot = None;
                None
            }
        }
    }
}

/// Unix seconds now.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The roots to watch: as configured, or `$HOME/projects` of each user where it exists (under
/// rootfs). Users here are those of the config or, by default, the regular ones of /etc/passwd.
pub fn roots(cfg: &ActivityConfig, paths: &Paths, sampler: &Sampler) -> Vec<PathBuf> {
    if !cfg.roots.is_empty() {
        return cfg.roots.iter().map(|r| paths.root(&r.to_string_lossy())).collect();
    }
    let passwd = crate::collector::read_small(&paths.root("/etc/passwd")).map(|t| super::procfs::passwd(&t)).unwrap_or_default();
    let users = sampler.users();
    passwd
        .iter()
        .filter(|u| users.contains_key(&u.name) && !u.home.is_empty())
        .map(|u| paths.root(&format!("{}/projects", u.home)))
        .filter(|p| p.is_dir())
        .collect()
}

/// The running loop; dropping it stops the loop (a running action finishes on its own thread).
pub struct Runner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
        }
    }
}

impl Runner {
    /// Starts the sampling thread (first sample at once); `None` outside a tokio runtime (e.g. in
    /// `--config.check`) or when no thread can be started.
    pub fn start(cfg: Arc<ActivityConfig>, paths: &Paths, state: Arc<ActivityState>) -> Option<Runner> {
        // Only in the daemon, which runs a runtime (not in `--config.check`).
        tokio::runtime::Handle::try_current().ok()?;
        let sampler = Sampler::new(paths, &cfg.users, &cfg.utmp_path);
        let roots = roots(&cfg, paths, &sampler);
        let watcher = state.watcher(WatchConfig {
            roots,
            exclude: cfg.exclude.clone(),
            scan_interval: cfg.scan_interval,
            scan_max_dirs: SCAN_MAX_DIRS,
            max_watches: cfg.max_watches,
        });
        let mut w = Work {
            cfg: cfg.clone(),
            sampler,
            watcher,
            log: EventLog::new(&cfg.event_log),
            state,
            first: true,
            pending: Pending::default(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let interval = cfg.interval;
        let spawned = std::thread::Builder::new().name("activity".into()).spawn(move || {
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                w.step();
                next = (next + interval).max(Instant::now());
                while let Some(left) = next.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
                    if flag.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::park_timeout(left);
                }
            }
        });
        match spawned {
            Ok(thread) => Some(Runner { stop, thread: Some(thread) }),
            Err(e) => {
                tracing::error!(err = %e, "activity: cannot start the sampling thread");
                None
            }
        }
    }
}

/// Everything one step needs, owned by the sampling thread.
struct Work {
    cfg: Arc<ActivityConfig>,
    sampler: Sampler,
    watcher: Option<Arc<Watcher>>,
    log: Option<EventLog>,
    state: Arc<ActivityState>,
    first: bool,
    pending: Pending,
}

/// File changes not yet written to the event log, and when the last activity event was.
#[derive(Default)]
struct Pending {
    modified: u64,
    files: Vec<String>,
    last_activity_event: f64,
}

impl Pending {
    fn add(&mut self, modified: u64, files: Vec<String>, cap: usize) {
        self.modified += modified;
        for f in files {
            if self.files.len() >= cap {
                break;
            }
            if !self.files.contains(&f) {
                self.files.push(f);
            }
        }
    }
}

impl Work {
    fn policy(&self) -> Policy {
        let idle = &self.cfg.idle;
        Policy {
            cpu_busy_below: idle.cpu_busy_below,
            after: idle.after,
            count_ssh: idle.count_ssh,
            warn_before: idle.action.as_ref().filter(|a| !a.warn_command.is_empty()).map(|a| a.warn_before).unwrap_or_default(),
        }
    }

    fn step(&mut self) {
        let sample = self.sampler.sample();
        let cap = self.cfg.event_log.max_files_listed;
        let (modified, files) = self.watcher.as_ref().map(|w| w.take_recent(cap)).unwrap_or_default();
        let busy = &self.cfg.idle.busy_processes;
        let seen = Observation {
            cpu_busy_ratio: sample.cpu_busy_ratio,
            ssh_sessions: sample.ssh_sessions as u32,
            busy_process: sample.active_processes.iter().any(|p| busy.contains(p)),
            file_changes: modified > 0,
        };
        let now = now();
        let policy = self.policy();
        let first = std::mem::replace(&mut self.first, false);
        let (before, action, after_idle, idle_seconds, last_active) = {
            let Ok(mut slot) = self.state.idle.lock() else { return };
            let idle = slot.get_or_insert_with(|| IdleState::new(now));
            let before = idle.idle();
            // The first sample has no CPU interval yet: it is not evidence of idleness.
            let action = if first { Action::None } else { idle.step(now, &seen, &policy) };
            (before, action, idle.idle(), idle.idle_seconds(now), idle.last_active())
        };
        self.pending.add(modified, files, cap);
        let details = Details {
            cpu_usage: sample.cpu_busy_ratio * 100.0,
            process_count: sample.process_count(),
            modified_files: self.pending.modified,
            files: self.pending.files.clone(),
            ssh_sessions: sample.ssh_sessions,
            active_processes: sample.active_processes.clone(),
        };
        let user = owner(&sample);
        let mut written = false;
        if !first {
            let why = seen.activity(&policy);
            if !why.is_empty() && (before || now - self.pending.last_activity_event >= ACTIVE_EVENT_PERIOD) {
                written = self.event(now, &user, eventlog::ACTIVITY_DETECTED, &details, Some(serde_json::json!({ "reasons": why })));
                self.pending.last_activity_event = now;
            } else if why.is_empty() && !before && after_idle {
                written = self.event(now, &user, eventlog::IDLE_STARTED, &details, None);
            }
        }
        if let Ok(mut l) = self.state.latest.lock() {
            *l = Some(Latest { sample, idle: after_idle, idle_seconds, last_active });
        }
        written |= self.act(action, now, &user, &details, idle_seconds);
        if written {
            self.pending.modified = 0;
            self.pending.files.clear();
        }
    }

    /// Runs the warning or the action (when configured) on a thread of its own; true when an
    /// event was written.
    fn act(&self, action: Action, now: f64, user: &str, details: &Details, idle_seconds: f64) -> bool {
        let Some(cfg) = self.cfg.idle.action.clone() else { return false };
        let (what, argv) = match action {
            Action::None => return false,
            Action::Warn if cfg.warn_command.is_empty() => return false,
            Action::Warn => ("warn_command", cfg.warn_command.clone()),
            Action::Act => ("command", cfg.command.clone()),
        };
        tracing::warn!(what, idle_seconds, "activity: idle");
        let mut written = false;
        if action == Action::Act {
            self.state.actions_total.fetch_add(1, Ordering::Relaxed);
            let extra = serde_json::json!({ "command": argv, "dry_run": cfg.dry_run, "idle_seconds": idle_seconds.round() });
            written = self.event(now, user, eventlog::IDLE_ACTION, details, Some(extra));
        }
        let spawned = std::thread::Builder::new().name("idle-action".into()).spawn(move || {
            super::action::run(what, &argv, cfg.timeout, cfg.dry_run);
        });
        if let Err(e) = spawned {
            tracing::error!(what, err = %e, "activity: cannot start a thread for the idle command");
        }
        written
    }

    /// Appends an event; true when it was written.
    fn event(&self, now: f64, user: &str, kind: &str, details: &Details, extra: Option<serde_json::Value>) -> bool {
        let Some(log) = &self.log else { return false };
        match log.append(&eventlog::line(now as i64, user, kind, details, extra)) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(err = %e, "activity: cannot write the event log");
                false
            }
        }
    }
}

/// The user an event is about: the one with most sessions, then most processes; the exporter's
/// own user when no user is configured or found.
pub fn owner(sample: &Sample) -> String {
    let score = |u: &String| (sample.user_sessions.get(u).copied().unwrap_or(0), sample.user_processes.get(u).copied().unwrap_or(0));
    let mut best: Option<(&String, (u64, u64))> = None;
    for u in sample.user_processes.keys() {
        let s = score(u);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((u, s));
        }
    }
    best.map(|(u, _)| u.clone()).unwrap_or_else(crate::git::statslog::current_user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn pending_files_are_capped_and_distinct() {
        let mut p = Pending::default();
        p.add(3, vec!["a".into(), "b".into()], 3);
        p.add(4, vec!["b".into(), "c".into(), "d".into()], 3);
        assert_eq!(p.modified, 7);
        assert_eq!(p.files, ["a", "b", "c"]);
    }

    #[test]
    fn owner_is_the_most_present_user() {
        let mut s = Sample {
            user_processes: BTreeMap::from([("alice".into(), 3), ("bob".into(), 5), ("carol".into(), 0)]),
            user_sessions: BTreeMap::from([("alice".into(), 1), ("bob".into(), 0), ("carol".into(), 0)]),
            ..Sample::default()
        };
        assert_eq!(owner(&s), "alice");
        s.user_sessions.insert("alice".into(), 0);
        assert_eq!(owner(&s), "bob");
        s.user_processes = BTreeMap::from([("zed".into(), 0), ("amy".into(), 0)]);
        assert_eq!(owner(&s), "amy");
        assert!(!owner(&Sample::default()).is_empty());
    }
}
