//! The `activity` collector: who is working on this machine and for how long it has been idle,
//! from the latest background sample (see `crate::activity`): CPU, the users' processes and
//! sessions, file changes under the roots, the idle state and the idle actions taken. A scrape
//! never reads /proc or walks a tree for it.

use super::{CollectError, Collector, Context};
use crate::activity::runner::{ActivityState, Runner};
use crate::health::metrics::Families;
use fleetwatch_common::expfmt::Family;
use std::sync::Arc;

pub struct Activity {
    state: Arc<ActivityState>,
    paths: crate::paths::Paths,
    _runner: Option<Runner>,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    let cfg = Arc::new(ctx.config.activity.clone());
    let state = ctx.shared.activity.clone();
    let runner = Runner::start(cfg, ctx.paths, state.clone());
    Ok(Box::new(Activity { state, paths: ctx.paths.clone(), _runner: runner }))
}

impl Collector for Activity {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let mut f = Families::default();
        self.files(&mut f);
        if let Some(l) = self.state.latest() {
            let s = &l.sample;
            f.gauge("activity_ssh_sessions", "Live SSH sessions of the counted users (utmp records checked against sshd processes).")
                .add(&[], s.ssh_sessions as f64);
            let sessions = f.gauge("activity_user_sessions", "Live login sessions by user.");
            for (user, n) in &s.user_sessions {
                sessions.add(&[("user", user)], *n as f64);
            }
            let procs = f.gauge("activity_user_processes", "Processes by user.");
            for (user, n) in &s.user_processes {
                procs.add(&[("user", user)], *n as f64);
            }
            f.gauge("activity_cpu_busy_ratio", "Share of the host's CPU time that was busy over the last sampling interval (0-1).")
                .add(&[], s.cpu_busy_ratio);
            let top = f.gauge(
                "activity_top_process_cpu_ratio",
                "CPU used over the last interval by the users' processes of that name (1 = one CPU), top 5 names.",
            );
            for (comm, ratio) in &s.top {
                top.add(&[("comm", comm)], *ratio);
            }
            f.gauge("activity_idle", "1 when every idle condition holds.").add(&[], if l.idle { 1.0 } else { 0.0 });
            f.gauge("activity_idle_seconds", "How long every idle condition has held continuously, in seconds.").add(&[], l.idle_seconds);
            f.gauge("activity_last_active_timestamp_seconds", "When activity was last seen (Unix time; start-up at the earliest).")
                .add(&[], l.last_active);
        }
        f.counter("activity_idle_actions_total", "Idle actions run (or logged, in dry-run mode) since start.")
            .add(&[], self.state.actions_total() as f64);
        out.extend(f.into_vec());
        Ok(())
    }
}

impl Activity {
    fn files(&self, f: &mut Families) {
        for r in self.state.file_stats() {
            let root = self.paths.strip_rootfs(&r.root);
            let label = [("root", root.as_str())];
            f.counter("activity_file_modifications_total", "File creations, modifications, renames and deletions seen under the root.")
                .add(&label, r.modifications_total as f64);
            if let Some(t) = r.last_modification {
                f.gauge("activity_last_file_modification_timestamp_seconds", "When a file under the root was last modified (Unix time).")
                    .add(&label, t);
            }
            let dirs =
                f.gauge("activity_watched_directories", "Directories under the root watched by inotify or covered by the fallback scan.");
            dirs.add(&[("root", root.as_str()), ("mode", "inotify")], r.inotify_dirs as f64);
            dirs.add(&[("root", root.as_str()), ("mode", "scan")], r.scan_dirs as f64);
        }
    }
}
