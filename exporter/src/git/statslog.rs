//! The optional JSON stats log (`git.stats_log_dir`).

use super::config::GitConfig;
use super::runner::AfterRefresh;
use std::sync::Arc;

/// The work to do after each refresh; None when no log is configured.
pub fn hook(cfg: &Arc<GitConfig>) -> Option<AfterRefresh> {
    cfg.stats_log_dir.as_ref()?;
    None
}
