//! Git repository statistics: discovery of repositories under configured roots (`discover`),
//! libgit2 scans with history caches (`scan`), the background refresh loop (`runner`), the
//! JSON stats log (`statslog`) and the month-end activity report (`report`). The `git`
//! collector exposes the scans.

pub mod config;
pub mod discover;
pub mod report;
pub mod runner;
pub mod scan;
pub mod statslog;
pub mod timefmt;
