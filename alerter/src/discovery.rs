//! Service discovery: `static_configs`, `file_sd_configs` (Prometheus's JSON/YAML target files,
//! re-read when a file changes, appears or disappears, and every `refresh_interval`) and
//! `http_sd_configs`. Each provider sends the full set of groups of one source (a file, a URL)
//! whenever it changes; a source that fails to refresh keeps its last good groups.

use crate::config::{FileSdConfig, HttpSdConfig, ScrapeConfig, TargetGroup};
use crate::telemetry::Telemetry;
use fleetwatch_common::client::HttpClient;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// The current groups of one source of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub job: String,
    /// Which incarnation of the job's config sent this (updates from a replaced one are ignored).
    pub epoch: u64,
    pub source: String,
    pub groups: Vec<TargetGroup>,
}

/// How often target files are checked for changes (besides their `refresh_interval`).
const FILE_POLL: Duration = Duration::from_secs(2);

/// Starts every provider of one scrape config; its static groups are sent at once.
pub fn start_job(sc: &ScrapeConfig, epoch: u64, tx: UnboundedSender<Update>, telemetry: Arc<Telemetry>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let job = Job { name: sc.job_name.clone(), epoch, tx };
    job.send("static".into(), sc.static_configs.clone());
    for (i, f) in sc.file_sd_configs.iter().enumerate() {
        let w = FileWatcher::new(job.clone(), i, f.clone(), telemetry.clone());
        tasks.push(tokio::spawn(w.run()));
    }
    for (i, h) in sc.http_sd_configs.iter().enumerate() {
        tasks.push(tokio::spawn(http_sd(job.clone(), i, h.clone(), telemetry.clone())));
    }
    tasks
}

/// Where a provider sends its job's updates.
#[derive(Clone)]
struct Job {
    name: String,
    epoch: u64,
    tx: UnboundedSender<Update>,
}

impl Job {
    fn send(&self, source: String, groups: Vec<TargetGroup>) {
        let _ = self.tx.send(Update { job: self.name.clone(), epoch: self.epoch, source, groups });
    }
}

/// Parses a target file: a JSON or YAML list of `{targets, labels}`.
pub fn parse_target_file(path: &Path, text: &str) -> Result<Vec<TargetGroup>, String> {
    let groups: Vec<TargetGroup> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?
    };
    for g in &groups {
        for name in g.labels.keys() {
            if !fleetwatch_common::expfmt::is_valid_label_name(name) {
                return Err(format!("{name:?} is not a valid label name"));
            }
        }
    }
    Ok(groups)
}

fn with_meta(mut groups: Vec<TargetGroup>, name: &str, value: &str) -> Vec<TargetGroup> {
    for g in &mut groups {
        g.labels.insert(name.to_string(), value.to_string());
    }
    groups
}

struct FileWatcher {
    job: Job,
    index: usize,
    config: FileSdConfig,
    telemetry: Arc<Telemetry>,
    /// Per file: the (mtime, length) last read, and whether it was read successfully.
    seen: BTreeMap<PathBuf, (Option<SystemTime>, u64)>,
}

impl FileWatcher {
    fn new(job: Job, index: usize, config: FileSdConfig, telemetry: Arc<Telemetry>) -> Self {
        FileWatcher { job, index, config, telemetry, seen: BTreeMap::new() }
    }

    async fn run(mut self) {
        let mut last_full = Instant::now();
        self.refresh(true);
        let mut tick = tokio::time::interval(FILE_POLL.min(self.config.refresh_interval.0.max(Duration::from_millis(100))));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let full = last_full.elapsed() >= self.config.refresh_interval.0;
            if full {
                last_full = Instant::now();
            }
            if self.job.tx.is_closed() {
                return;
            }
            self.refresh(full);
        }
    }

    /// Re-reads changed, new and (when `full`) all files; reports removed ones as empty.
    fn refresh(&mut self, full: bool) {
        let now = self.expand();
        let gone: Vec<PathBuf> = self.seen.keys().filter(|p| !now.contains_key(*p)).cloned().collect();
        for path in gone {
            self.seen.remove(&path);
            self.send(&path, Vec::new());
        }
        for (path, stamp) in now {
            if !full && self.seen.get(&path) == Some(&stamp) {
                continue;
            }
            match std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|t| parse_target_file(&path, &t)) {
                Ok(groups) => {
                    self.seen.insert(path.clone(), stamp);
                    let shown = path.display().to_string();
                    self.send(&path, with_meta(groups, "__meta_filepath", &shown));
                }
                Err(e) => {
                    // Keep the file's last good groups; try again on the next change.
                    self.seen.insert(path.clone(), stamp);
                    self.telemetry.sd_failure("file");
                    tracing::error!(job = %self.job.name, file = %path.display(), err = %e, "cannot read target file; keeping its previous targets");
                }
            }
        }
    }

    fn expand(&self) -> BTreeMap<PathBuf, (Option<SystemTime>, u64)> {
        let mut out = BTreeMap::new();
        for pattern in &self.config.files {
            let Ok(paths) = glob::glob(pattern) else { continue };
            for path in paths.flatten() {
                if let Ok(meta) = std::fs::metadata(&path) {
                    if meta.is_file() {
                        out.insert(path, (meta.modified().ok(), meta.len()));
                    }
                }
            }
        }
        out
    }

    fn send(&self, path: &Path, groups: Vec<TargetGroup>) {
        self.job.send(format!("file_sd/{}/{}", self.index, path.display()), groups);
    }
}

async fn http_sd(job: Job, index: usize, config: HttpSdConfig, telemetry: Arc<Telemetry>) {
    let client = match crate::scrape::client_for(&config.http()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(job = %job.name, url = %config.url, err = %e, "http_sd: cannot build the HTTP client");
            return;
        }
    };
    let mut tick = tokio::time::interval(config.refresh_interval.0.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Vec<TargetGroup>> = None;
    loop {
        tick.tick().await;
        if job.tx.is_closed() {
            return;
        }
        match fetch_http_sd(&client, &config.url).await {
            Ok(groups) => {
                let groups = with_meta(groups, "__meta_url", &config.url);
                if last.as_ref() != Some(&groups) {
                    last = Some(groups.clone());
                    job.send(format!("http_sd/{index}"), groups);
                }
            }
            Err(e) => {
                telemetry.sd_failure("http");
                tracing::error!(job = %job.name, url = %config.url, err = %e, "http_sd refresh failed; keeping the previous targets");
            }
        }
    }
}

async fn fetch_http_sd(client: &HttpClient, url: &str) -> Result<Vec<TargetGroup>, String> {
    let resp = client.get(url, &[], Duration::from_secs(30), 16 << 20).await.map_err(|e| e.to_string())?;
    if resp.status != 200 {
        return Err(format!("server returned HTTP status {}", resp.status));
    }
    let ct = resp.content_type.as_deref().unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(format!("unsupported content type {ct:?}"));
    }
    let groups: Vec<TargetGroup> = serde_json::from_slice(&resp.body).map_err(|e| e.to_string())?;
    Ok(groups)
}

/// All groups of a job, merged over its sources in a stable order.
#[derive(Debug, Default)]
pub struct JobGroups {
    pub sources: HashMap<String, Vec<TargetGroup>>,
}

impl JobGroups {
    pub fn all(&self) -> Vec<TargetGroup> {
        let mut keys: Vec<&String> = self.sources.keys().collect();
        keys.sort();
        keys.into_iter().flat_map(|k| self.sources[k].iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_files_in_both_formats() {
        let json = r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod"}}, {"targets": ["c:3"]}]"#;
        let g = parse_target_file(Path::new("x.json"), json).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].labels["env"], "prod");
        let yaml = "- targets: ['a:1']\n  labels:\n    team: x\n";
        let g = parse_target_file(Path::new("x.yml"), yaml).unwrap();
        assert_eq!(g[0].targets, vec!["a:1".to_string()]);
        assert!(parse_target_file(Path::new("x.yml"), "").unwrap().is_empty());
        assert!(parse_target_file(Path::new("x.yml"), "- targets: ['a:1']\n  labels: {'bad-name': x}\n").is_err());
        assert!(parse_target_file(Path::new("x.yml"), "- targetz: ['a:1']\n").is_err());
    }

    #[test]
    fn the_deploy_example_targets_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/targets/fleet.yml");
        let groups = parse_target_file(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(groups.len() >= 2 && groups.iter().all(|g| !g.targets.is_empty()), "{groups:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn file_changes_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.yml");
        std::fs::write(&file, "- targets: ['a:1']\n").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let cfg = FileSdConfig {
            files: vec![dir.path().join("*.yml").display().to_string()],
            refresh_interval: fleetwatch_common::duration::PromDuration(Duration::from_secs(300)),
        };
        let job = Job { name: "j".into(), epoch: 1, tx };
        let mut w = FileWatcher::new(job, 0, cfg, Arc::new(Telemetry::default()));
        w.refresh(true);
        let u = rx.recv().await.unwrap();
        assert_eq!(u.groups[0].targets, vec!["a:1".to_string()]);
        assert_eq!(u.groups[0].labels["__meta_filepath"], file.display().to_string());
        // Unchanged: nothing sent.
        w.refresh(false);
        assert!(rx.try_recv().is_err());
        // A broken file keeps its previous groups (nothing sent); a fixed one is sent.
        std::fs::write(&file, "- targets: [[[\n").unwrap();
        w.refresh(true);
        assert!(rx.try_recv().is_err());
        std::fs::write(&file, "- targets: ['b:2', 'c:3']\n").unwrap();
        w.refresh(true);
        assert_eq!(rx.recv().await.unwrap().groups[0].targets.len(), 2);
        // A removed file empties its source.
        std::fs::remove_file(&file).unwrap();
        w.refresh(false);
        assert!(rx.recv().await.unwrap().groups.is_empty());
    }
}
