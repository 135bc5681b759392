//! fleetwatch-alerter: scrapes Prometheus exporters across a fleet into a short-term series store
//! that holds what its alert rules select, and serves Prometheus's HTTP API over it.
//!
//! Layers: `config` and `rules` (loading), `discovery` → `manager` → `targets` and `scrape` (getting
//! samples), `store` (keeping them), `api` (serving them), `check` and `lint` (the CLI tools).

pub mod alert_state;
pub mod api;
pub mod app;
pub mod check;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod evaluate;
pub mod lint;
pub mod manager;
pub mod notify;
pub mod relabel;
pub mod rule_manager;
pub mod rules;
pub mod scrape;
pub mod series_cache;
pub mod store;
pub mod targets;
pub mod telemetry;
pub mod template;
pub mod timefmt;
pub mod unittest;
