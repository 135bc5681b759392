//! The `Collector` trait, the registry table of every collector (name, default on/off,
//! constructor), and the small helpers they share for reading files under the injected roots.

pub mod activity;
pub mod containers;
pub mod cpu;
pub mod diskstats;
pub mod filesystem;
pub mod git;
pub mod health;
pub mod loadavg;
pub mod meminfo;
pub mod netdev;
pub mod pressure;
pub mod stat;
pub mod textfile;
pub mod time;
pub mod uname;

use crate::config::Config;
use crate::paths::Paths;
use fleetwatch_common::expfmt::Family;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a collector produced nothing (or not everything) this scrape.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("no data: {0}")]
    NoData(String),
    #[error("{0}")]
    Other(String),
}

/// One source of metric families. `collect` runs on a blocking thread, concurrently with the
/// other collectors of the same scrape.
pub trait Collector: Send + Sync {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError>;
}

/// State that outlives a config reload (e.g. which mounts are stuck).
#[derive(Default)]
pub struct Shared {
    pub stuck_mounts: Arc<filesystem::StuckMounts>,
    pub health: Arc<crate::health::runner::HealthState>,
    pub git: Arc<crate::git::runner::GitState>,
    pub containers: Arc<crate::containers::metadata::MetadataState>,
    pub activity: Arc<crate::activity::runner::ActivityState>,
}

/// What a constructor gets: roots, config, and the state kept across reloads.
pub struct Context<'a> {
    pub paths: &'a Paths,
    pub config: &'a Config,
    pub shared: &'a Arc<Shared>,
}

pub type Constructor = fn(&Context) -> Result<Box<dyn Collector>, CollectError>;

/// One row of the registry table.
pub struct Spec {
    pub name: &'static str,
    pub default_enabled: bool,
    pub build: Constructor,
}

/// Every collector, in the order they are listed in `--help` and docs.
pub const REGISTRY: &[Spec] = &[
    Spec { name: "activity", default_enabled: true, build: activity::build },
    Spec { name: "containers", default_enabled: true, build: containers::build },
    Spec { name: "cpu", default_enabled: true, build: cpu::build },
    Spec { name: "diskstats", default_enabled: true, build: diskstats::build },
    Spec { name: "filesystem", default_enabled: true, build: filesystem::build },
    Spec { name: "git", default_enabled: true, build: git::build },
    Spec { name: "health", default_enabled: true, build: health::build },
    Spec { name: "loadavg", default_enabled: true, build: loadavg::build },
    Spec { name: "meminfo", default_enabled: true, build: meminfo::build },
    Spec { name: "netdev", default_enabled: true, build: netdev::build },
    Spec { name: "pressure", default_enabled: true, build: pressure::build },
    Spec { name: "stat", default_enabled: true, build: stat::build },
    Spec { name: "textfile", default_enabled: true, build: textfile::build },
    Spec { name: "time", default_enabled: true, build: time::build },
    Spec { name: "uname", default_enabled: true, build: uname::build },
];

/// The names in the registry, for messages and config validation.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|s| s.name).collect()
}

/// Files under /proc and /sys that a collector re-reads every scrape, kept open and re-read from
/// offset 0 with `pread` (procfs and sysfs regenerate a file's content on each read from its
/// start), which saves an open and a close per file per scrape. A handle that fails (a network
/// device that went away) is dropped and the path opened afresh.
#[derive(Default)]
pub struct OpenFiles(Mutex<HashMap<PathBuf, Arc<File>>>);

impl OpenFiles {
    pub fn read(&self, path: &Path) -> Result<String, CollectError> {
        self.read_io(path).map_err(|source| CollectError::Io { path: path.to_path_buf(), source })
    }

    pub fn read_io(&self, path: &Path) -> std::io::Result<String> {
        let cached = self.0.lock().ok().and_then(|m| m.get(path).cloned());
        if let Some(file) = cached {
            match read_at_start(&file) {
                Ok(text) => return Ok(text),
                Err(_) => {
                    if let Ok(mut m) = self.0.lock() {
                        m.remove(path);
                    }
                }
            }
        }
        let file = Arc::new(File::open(path)?);
        let text = read_at_start(&file)?;
        if let Ok(mut m) = self.0.lock() {
            m.insert(path.to_path_buf(), file);
        }
        Ok(text)
    }
}

/// Reads a whole file from offset 0 with `pread`, in as few calls as possible.
pub(crate) fn read_at_start(file: &File) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 16 * 1024]);
    }
    BUF.with_borrow_mut(|buf| {
        let mut len = 0;
        loop {
            if len == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match file.read_at(&mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Not seekable (a pipe): read it sequentially instead.
                Err(e) if e.raw_os_error() == Some(libc::ESPIPE) => return read_sequential(file),
                Err(e) => return Err(e),
            }
        }
        String::from_utf8(buf[..len].to_vec()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    })
}

fn read_sequential(mut file: &File) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Reads a file once (one open, no size probe): for files that are not re-read every scrape.
pub fn read_small(path: &Path) -> std::io::Result<String> {
    read_at_start(&File::open(path)?)
}

/// A parse error about `path`.
pub fn parse_error(path: &Path, message: impl Into<String>) -> CollectError {
    CollectError::Parse { path: path.to_path_buf(), message: message.into() }
}

/// Parses an unsigned integer field as f64, naming the field on failure.
pub fn num(field: &str) -> Result<f64, String> {
    field.parse::<u64>().map(|v| v as f64).or_else(|_| field.parse::<f64>()).map_err(|_| format!("invalid number {field:?}"))
}
