//! fleetwatch-exporter: a Prometheus exporter for Linux hosts. The collectors (one module each,
//! behind one `Collector` trait and one registry table) produce node_exporter-compatible families;
//! `scrape` runs them concurrently; `http` serves the result and blackbox-style `/probe`s
//! (`health`).

pub mod activity;
pub mod cli;
pub mod collector;
pub mod config;
pub mod containers;
pub mod git;
pub mod health;
pub mod http;
pub mod paths;
pub mod process;
pub mod scrape;
