//! One repository's statistics through libgit2: branch and upstream, commits reachable from
//! HEAD, activity windows, work tree status, stashes and the operation in progress. What a scan
//! learns about history is kept in a [`RepoCache`] so the next scan of an unchanged repository
//! walks nothing and a scan after new commits walks and diffs only those.

use git2::{BranchType, DiffFindOptions, ErrorCode, Oid, Repository, RepositoryState, Sort, Status, StatusOptions};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Why a repository could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("repository is gone")]
    Vanished,
    #[error("repository is locked ({0} exists)")]
    Locked(String),
    #[error("{0}")]
    Git(#[from] git2::Error),
}

/// What a scan is asked for.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// (label, length) of every activity window.
    pub windows: Vec<(String, Duration)>,
    pub top_authors: usize,
    pub include_untracked: bool,
}

/// Lines and files changed by one commit against its only parent (or the empty tree for a root
/// commit), as `git log --numstat` shows them: renames detected, binary files count as changed
/// files with no lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStat {
    pub insertions: u64,
    pub deletions: u64,
    pub files: u64,
}

/// What the history walk needs of one commit; a commit id never changes, so neither does this.
#[derive(Debug, Clone)]
struct CommitMeta {
    time: i64,
    parents: Vec<Oid>,
    author: Arc<str>,
    stat: Option<DiffStat>,
}

/// History learnt by earlier scans of one repository.
#[derive(Debug, Default)]
pub struct RepoCache {
    /// HEAD at the last count, and how many commits were reachable from it.
    counted: Option<(Oid, u64)>,
    /// Commits within (or just past) the longest window at the last scan.
    commits: HashMap<Oid, CommitMeta>,
    /// Commits read from the object database by the last scan (for tests and logs).
    pub last_loaded: usize,
    /// Commits walked to count (0 when the count came from the cache).
    pub last_counted_walk: usize,
}

/// One activity window's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowStats {
    pub label: String,
    pub commits: u64,
    pub insertions: u64,
    pub deletions: u64,
    pub files_changed: u64,
    /// The top authors by commits in the window: (name, commits), most first, then by name.
    pub authors: Vec<(String, u64)>,
    /// The window's commits: (id, author, commit time, diff), newest first.
    pub list: Vec<WindowCommit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowCommit {
    pub id: String,
    pub author: String,
    pub time: i64,
    /// None for merges (no diff is counted for them).
    pub stat: Option<DiffStat>,
}

/// Files not committed, counted as `git status --porcelain` lists them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uncommitted {
    pub staged: u64,
    pub unstaged: u64,
    /// None when untracked files are not looked for.
    pub untracked: Option<u64>,
    pub conflicted: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCommit {
    pub id: String,
    pub author: String,
    /// Committer time (Unix seconds).
    pub time: i64,
    pub summary: String,
}

/// Everything one scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoStats {
    /// Current branch; empty when HEAD is detached.
    pub branch: String,
    /// Upstream of the current branch (`origin/main`); empty when none.
    pub upstream: String,
    pub bare: bool,
    pub commits: u64,
    pub windows: Vec<WindowStats>,
    pub last_commit: Option<LastCommit>,
    /// None for bare repositories.
    pub uncommitted: Option<Uncommitted>,
    /// (ahead, behind) the upstream; None without one.
    pub ahead_behind: Option<(u64, u64)>,
    pub stashes: u64,
    /// merge, rebase, cherry_pick, revert or bisect.
    pub operation: Option<&'static str>,
}

/// The operations reported by `git_repo_operation_in_progress`.
pub const OPERATIONS: [&str; 5] = ["merge", "rebase", "cherry_pick", "revert", "bisect"];

/// Scans the repository at `path` at Unix time `now`.
pub fn scan(path: &Path, opts: &ScanOptions, cache: &mut RepoCache, now: i64) -> Result<RepoStats, ScanError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Err(ScanError::Vanished);
    }
    let repo = Repository::open_ext(path, git2::RepositoryOpenFlags::NO_SEARCH, std::iter::empty::<&str>())?;
    let lock = repo.path().join("index.lock");
    if lock.exists() {
        return Err(ScanError::Locked(lock.display().to_string()));
    }
    cache.last_loaded = 0;
    cache.last_counted_walk = 0;
    let (branch, head) = head_of(&repo)?;
    let mut stats = RepoStats {
        upstream: String::new(),
        bare: repo.is_bare(),
        commits: 0,
        windows: Vec::new(),
        last_commit: None,
        uncommitted: None,
        ahead_behind: None,
        stashes: stashes(&repo)?,
        operation: operation(repo.state()),
        branch,
    };
    if let Some(head) = head {
        stats.commits = count(&repo, cache, head)?;
        stats.windows = windows(&repo, cache, head, opts, now)?;
        stats.last_commit = Some(last_commit(&repo, head)?);
        if !stats.branch.is_empty() {
            (stats.upstream, stats.ahead_behind) = upstream(&repo, &stats.branch, head)?;
        }
    } else {
        cache.counted = None;
        cache.commits.clear();
        stats.windows = opts.windows.iter().map(|(label, _)| WindowStats { label: label.clone(), ..Default::default() }).collect();
    }
    if !stats.bare {
        stats.uncommitted = Some(uncommitted(&repo, opts.include_untracked)?);
    }
    Ok(stats)
}

/// The current branch (empty when detached) and the commit HEAD points at (None when unborn).
fn head_of(repo: &Repository) -> Result<(String, Option<Oid>), git2::Error> {
    match repo.head() {
        Ok(head) => {
            let branch = if head.is_branch() { head.shorthand().unwrap_or_default().to_string() } else { String::new() };
            let oid = head.peel_to_commit()?.id();
            Ok((branch, Some(oid)))
        }
        Err(e) if e.code() == ErrorCode::UnbornBranch || e.code() == ErrorCode::NotFound => {
            let head = repo.find_reference("HEAD")?;
            let target = head.symbolic_target().unwrap_or_default();
            Ok((target.strip_prefix("refs/heads/").unwrap_or(target).to_string(), None))
        }
        Err(e) => Err(e),
    }
}

/// Commits reachable from `head`: from the cache when HEAD did not move, the new commits added
/// when it moved forward, a full walk otherwise (first scan, rewritten history).
fn count(repo: &Repository, cache: &mut RepoCache, head: Oid) -> Result<u64, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::NONE)?;
    walk.push(head)?;
    let base = match cache.counted {
        Some((old, n)) if old == head => return Ok(n),
        Some((old, n)) if repo.graph_descendant_of(head, old)? => {
            walk.hide(old)?;
            n
        }
        _ => 0,
    };
    let mut walked = 0u64;
    for oid in walk {
        oid?;
        walked += 1;
    }
    cache.last_counted_walk = walked as usize;
    cache.counted = Some((head, base + walked));
    Ok(base + walked)
}

/// Every window's figures. A commit is in a window when its commit time is not before the
/// window's start and it is reachable from HEAD through commits that are also in the window:
/// `git log --since` stops at the first older commit on each path, and so does this walk.
fn windows(repo: &Repository, cache: &mut RepoCache, head: Oid, opts: &ScanOptions, now: i64) -> Result<Vec<WindowStats>, git2::Error> {
    let mut used = HashSet::new();
    let mut out = Vec::new();
    for (label, length) in &opts.windows {
        let since = now - length.as_secs() as i64;
        let members = walk_since(repo, cache, head, since, &mut used)?;
        out.push(window_stats(repo, cache, label, &members, opts.top_authors)?);
    }
    cache.commits.retain(|oid, _| used.contains(oid));
    Ok(out)
}

/// The commits in the window starting at `since`, newest first; every commit looked at is
/// recorded in `used` (the cache keeps those).
fn walk_since(repo: &Repository, cache: &mut RepoCache, head: Oid, since: i64, used: &mut HashSet<Oid>) -> Result<Vec<Oid>, git2::Error> {
    let mut members = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![head];
    while let Some(oid) = stack.pop() {
        if !seen.insert(oid) {
            continue;
        }
        used.insert(oid);
        let meta = meta(repo, cache, oid)?;
        if meta.time < since {
            continue;
        }
        stack.extend(meta.parents.iter().copied());
        members.push((meta.time, oid));
    }
    members.sort_by(|a, b| b.cmp(a));
    Ok(members.into_iter().map(|(_, oid)| oid).collect())
}

fn meta<'c>(repo: &Repository, cache: &'c mut RepoCache, oid: Oid) -> Result<&'c CommitMeta, git2::Error> {
    if !cache.commits.contains_key(&oid) {
        let c = repo.find_commit(oid)?;
        let author: Arc<str> = Arc::from(String::from_utf8_lossy(c.author().name_bytes()).as_ref());
        let m = CommitMeta { time: c.time().seconds(), parents: c.parent_ids().collect(), author, stat: None };
        cache.last_loaded += 1;
        cache.commits.insert(oid, m);
    }
    Ok(&cache.commits[&oid])
}

fn window_stats(repo: &Repository, cache: &mut RepoCache, label: &str, members: &[Oid], top: usize) -> Result<WindowStats, git2::Error> {
    let mut w = WindowStats { label: label.to_string(), ..Default::default() };
    let mut authors: BTreeMap<Arc<str>, u64> = BTreeMap::new();
    for &oid in members {
        let stat = commit_stat(repo, cache, oid)?;
        let m = &cache.commits[&oid];
        w.commits += 1;
        *authors.entry(m.author.clone()).or_default() += 1;
        if let Some(s) = stat {
            w.insertions += s.insertions;
            w.deletions += s.deletions;
            w.files_changed += s.files;
        }
        w.list.push(WindowCommit { id: oid.to_string(), author: m.author.to_string(), time: m.time, stat });
    }
    let mut ranked: Vec<(String, u64)> = authors.into_iter().map(|(a, n)| (a.to_string(), n)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(top);
    w.authors = ranked;
    Ok(w)
}

/// The commit's diff figures, computed once per commit id; None for merges.
fn commit_stat(repo: &Repository, cache: &mut RepoCache, oid: Oid) -> Result<Option<DiffStat>, git2::Error> {
    let m = &cache.commits[&oid];
    if m.parents.len() > 1 {
        return Ok(None);
    }
    if let Some(s) = m.stat {
        return Ok(Some(s));
    }
    let commit = repo.find_commit(oid)?;
    let parent_tree = match m.parents.first() {
        Some(p) => Some(repo.find_commit(*p)?.tree()?),
        None => None,
    };
    let mut diff = repo.diff_tree_to_tree(parent_tree.as_ref(), Some(&commit.tree()?), None)?;
    diff.find_similar(Some(DiffFindOptions::new().renames(true)))?;
    let s = diff.stats()?;
    let stat = DiffStat { insertions: s.insertions() as u64, deletions: s.deletions() as u64, files: s.files_changed() as u64 };
    if let Some(m) = cache.commits.get_mut(&oid) {
        m.stat = Some(stat);
    }
    Ok(Some(stat))
}

fn last_commit(repo: &Repository, head: Oid) -> Result<LastCommit, git2::Error> {
    let c = repo.find_commit(head)?;
    let author = String::from_utf8_lossy(c.author().name_bytes()).into_owned();
    Ok(LastCommit {
        id: head.to_string(),
        author,
        time: c.time().seconds(),
        summary: c.summary_bytes().map(|s| String::from_utf8_lossy(s).into_owned()).unwrap_or_default(),
    })
}

/// The branch's upstream (short name) and how far HEAD is ahead of and behind it.
fn upstream(repo: &Repository, branch: &str, head: Oid) -> Result<(String, Option<(u64, u64)>), git2::Error> {
    let local = match repo.find_branch(branch, BranchType::Local) {
        Ok(b) => b,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok((String::new(), None)),
        Err(e) => return Err(e),
    };
    let up = match local.upstream() {
        Ok(u) => u,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok((String::new(), None)),
        Err(e) => return Err(e),
    };
    let name = up.name()?.unwrap_or_default().to_string();
    let Some(target) = up.get().target() else { return Ok((name, None)) };
    let (ahead, behind) = repo.graph_ahead_behind(head, target)?;
    Ok((name, Some((ahead as u64, behind as u64))))
}

fn stashes(repo: &Repository) -> Result<u64, git2::Error> {
    match repo.find_reference("refs/stash") {
        Ok(_) => Ok(repo.reflog("refs/stash")?.len() as u64),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

fn operation(state: RepositoryState) -> Option<&'static str> {
    use RepositoryState as S;
    match state {
        S::Clean => None,
        S::Merge => Some("merge"),
        S::Revert | S::RevertSequence => Some("revert"),
        S::CherryPick | S::CherryPickSequence => Some("cherry_pick"),
        S::Bisect => Some("bisect"),
        S::Rebase | S::RebaseInteractive | S::RebaseMerge | S::ApplyMailbox | S::ApplyMailboxOrRebase => Some("rebase"),
    }
}

/// Counts `git status --porcelain` lines by kind: a file both staged and changed again counts
/// in both; conflicted files only as conflicted; an untracked directory as one entry.
fn uncommitted(repo: &Repository, include_untracked: bool) -> Result<Uncommitted, git2::Error> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(include_untracked).recurse_untracked_dirs(false).include_ignored(false).renames_head_to_index(true);
    let statuses = repo.statuses(Some(&mut opts))?;
    let staged_bits = Status::INDEX_NEW | Status::INDEX_MODIFIED | Status::INDEX_DELETED | Status::INDEX_RENAMED | Status::INDEX_TYPECHANGE;
    let unstaged_bits = Status::WT_MODIFIED | Status::WT_DELETED | Status::WT_RENAMED | Status::WT_TYPECHANGE;
    let mut u = Uncommitted { untracked: include_untracked.then_some(0), ..Default::default() };
    for entry in statuses.iter() {
        let s = entry.status();
        if s.contains(Status::CONFLICTED) {
            u.conflicted += 1;
            continue;
        }
        if s.intersects(staged_bits) {
            u.staged += 1;
        }
        if s.intersects(unstaged_bits) {
            u.unstaged += 1;
        }
        if s.contains(Status::WT_NEW) {
            if let Some(n) = u.untracked.as_mut() {
                *n += 1;
            }
        }
    }
    Ok(u)
}
