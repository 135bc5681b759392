//! The `git` collector: the latest background scan of every repository found under the `git:`
//! roots (see `crate::git`), as `git_repo_*` families with a `repo` label. It only reads what
//! the refresh loop recorded; a scrape never opens a repository.

use super::{CollectError, Collector, Context};
use crate::git::runner::{GitState, Refresher, Report};
use crate::git::scan::{RepoStats, OPERATIONS};
use crate::health::metrics::Families;
use fleetwatch_common::expfmt::Family;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

pub struct Git {
    state: Arc<GitState>,
    _refresher: Option<Refresher>,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    let cfg = Arc::new(ctx.config.git.clone());
    let state = ctx.shared.git.clone();
    let hook = crate::git::statslog::hook(&cfg);
    let refresher = Refresher::start(cfg, state.clone(), hook);
    Ok(Box::new(Git { state, _refresher: refresher }))
}

impl Collector for Git {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let mut f = Families::default();
        for report in self.state.reports() {
            add(&mut f, &report);
        }
        out.extend(f.into_vec());
        Ok(())
    }
}

/// Adds one repository's series.
pub fn add(f: &mut Families, report: &Report) {
    let repo = [("repo", report.name.as_str())];
    let ok = report.result.is_ok();
    f.gauge("git_repo_scan_success", "1 when the last scan of the repository succeeded, 0 when it failed.")
        .add(&repo, if ok { 1.0 } else { 0.0 });
    f.gauge("git_repo_scan_duration_seconds", "How long the last scan of the repository took, in seconds.")
        .add(&repo, report.duration.as_secs_f64());
    let at = report.at.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    f.gauge("git_repo_last_scan_timestamp_seconds", "When the repository was last scanned (Unix time).").add(&repo, at);
    if let Ok(stats) = &report.result {
        add_stats(f, report, stats);
    }
}

fn add_stats(f: &mut Families, report: &Report, s: &RepoStats) {
    let name = report.name.as_str();
    let repo = [("repo", name)];
    let path = report.path.display().to_string();
    f.gauge("git_repo_info", "The repository's path, current branch (empty when HEAD is detached) and upstream; always 1.")
        .add(&[("repo", name), ("path", &path), ("branch", &s.branch), ("upstream", &s.upstream)], 1.0);
    f.gauge("git_repo_commits", "Commits reachable from HEAD.").add(&repo, s.commits as f64);
    for w in &s.windows {
        let labels = [("repo", name), ("window", w.label.as_str())];
        f.gauge("git_repo_recent_commits", "Commits reachable from HEAD with a commit time within the window (as git log --since).")
            .add(&labels, w.commits as f64);
        f.gauge("git_repo_recent_insertions", "Lines inserted by the window's non-merge commits (as git log --numstat).")
            .add(&labels, w.insertions as f64);
        f.gauge("git_repo_recent_deletions", "Lines deleted by the window's non-merge commits (as git log --numstat).")
            .add(&labels, w.deletions as f64);
        f.gauge("git_repo_recent_files_changed", "Files changed by the window's non-merge commits, summed over commits.")
            .add(&labels, w.files_changed as f64);
        let authors = f.gauge("git_repo_author_recent_commits", "Commits in the window by author name, for the top authors only.");
        for (author, n) in &w.authors {
            authors.add(&[("repo", name), ("author", author), ("window", w.label.as_str())], *n as f64);
        }
    }
    if let Some(c) = &s.last_commit {
        f.gauge("git_repo_last_commit_timestamp_seconds", "Commit time of the commit HEAD points at (Unix time).")
            .add(&repo, c.time as f64);
    }
    if let Some(u) = &s.uncommitted {
        let files = f.gauge("git_repo_uncommitted_files", "Files not committed, by state, as git status --porcelain lists them.");
        let mut states = vec![("staged", u.staged), ("unstaged", u.unstaged), ("conflicted", u.conflicted)];
        if let Some(n) = u.untracked {
            states.push(("untracked", n));
        }
        for (state, n) in states {
            files.add(&[("repo", name), ("state", state)], n as f64);
        }
    }
    if let Some((ahead, behind)) = s.ahead_behind {
        f.gauge("git_repo_ahead_commits", "Commits on the current branch that its upstream does not have.").add(&repo, ahead as f64);
        f.gauge("git_repo_behind_commits", "Commits on the upstream that the current branch does not have.").add(&repo, behind as f64);
    }
    f.gauge("git_repo_stashes", "Entries in the stash.").add(&repo, s.stashes as f64);
    let ops = f.gauge("git_repo_operation_in_progress", "1 for the operation (merge, rebase, ...) the repository is in the middle of.");
    for op in OPERATIONS {
        ops.add(&[("repo", name), ("operation", op)], if s.operation == Some(op) { 1.0 } else { 0.0 });
    }
}
