//! Developer activity (issue 8): the `activity:` config, sampling of CPU, the users' processes
//! and login sessions (`sample`, with the pure parsers in `procfs` and `utmp`), file changes
//! (`watch`), the idle policy's state machine (`idle`), the background loop that steps it and
//! runs the opt-in idle action (`runner`, `action`), and the JSON-lines event log (`eventlog`).
//! The `activity` collector only reads what the loop recorded.

pub mod action;
pub mod config;
pub mod eventlog;
pub mod idle;
pub mod procfs;
pub mod runner;
pub mod sample;
pub mod utmp;
pub mod watch;
