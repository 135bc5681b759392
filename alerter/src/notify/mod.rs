//! Notifications: what leaves the alerter about its alerts. `message` is the notification a
//! receiver gets (one alert group, Alertmanager's data model); `receiver` holds the integrations
//! that deliver it (webhook, Slack, email, Alertmanager, exec, log).
//!
//! Routing, grouping, inhibition, silences, the durable outbox and the history live beside these
//! modules and only ever talk to a receiver through `receiver::Sender`.

pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod deliver;
pub mod dispatch;
pub mod inhibit;
pub mod matcher;
pub mod message;
pub mod receiver;
pub mod route;
pub mod service;
pub mod silence;
pub mod silences;
pub mod thresholds;
