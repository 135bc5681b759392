//! Developer activity (issue 8, in progress): the pieces of the `activity` collector that are
//! pure and tested on their own — utmp parsing and the idle policy's state machine. The collector
//! that observes files, CPU, processes and sessions and runs the idle action builds on them.

pub mod idle;
pub mod utmp;
pub mod watch;
