//! Shared building blocks of the fleetwatch daemons: YAML config loading with `${ENV}` expansion
//! and located errors, Prometheus-style durations, logging set-up, the Prometheus exposition
//! formats (encoding and parsing), the outgoing HTTP client, and the HTTP server with TLS and basic auth in the
//! exporter-toolkit web-config format.

pub mod calendar;
pub mod client;
pub mod client_config;
pub mod config;
pub mod duration;
pub mod expfmt;
pub mod logging;
pub mod process;
pub mod web;
