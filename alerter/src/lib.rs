//! fleetwatch-alerter: scrapes exporters across a fleet into a short-term store for alert rules.
