//! Delivery: the loop that takes notifications from the durable outbox to the receivers'
//! integrations. Per (integration, group) only the oldest entry is attempted, so each group's
//! notifications arrive in order; receivers run at most `concurrency` attempts at once; failed
//! attempts are retried with exponential backoff and jitter until the entry is older than the
//! max age, then dropped and counted as expired.
//!
//! Guarantee: an entry leaves the outbox in the same transaction that writes the notification log
//! and the `notified` history, after the receiver accepted it. A crash between the receiver's
//! answer and that commit re-sends it after the restart (at-least-once across a crash mid-send);
//! otherwise each notification is delivered exactly once.

use super::db::{self, Db, HistoryRow, OutboxEntry, Outcome};
use super::message::Notification;
use super::receiver::Integration;
use crate::scrape::now_ms;
use fleetwatch_common::expfmt::{Family, MetricType};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// Upper bounds of the latency histogram (enqueued → delivered), in seconds.
const LATENCY_BUCKETS: [f64; 11] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0];

#[derive(Debug, Clone)]
pub struct Settings {
    /// The first retry's delay; it doubles per attempt up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Entries older than this are dropped (counted as expired).
    pub max_age: Duration,
    /// Attempts in flight per receiver.
    pub concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_age: Duration::from_secs(24 * 3600),
            concurrency: 4,
        }
    }
}

/// The built integrations of every receiver, by receiver name.
pub type Receivers = BTreeMap<String, Vec<Arc<Integration>>>;

#[derive(Default)]
struct Metrics {
    totals: BTreeMap<(String, &'static str), u64>,
    latency: BTreeMap<String, ([u64; LATENCY_BUCKETS.len()], u64, f64)>,
    pending: BTreeMap<String, u64>,
}

pub struct Delivery {
    db: Arc<Db>,
    settings: Settings,
    receivers: RwLock<Arc<Receivers>>,
    wake: Notify,
    in_flight: Mutex<HashSet<i64>>,
    /// Held by a pass from reading the outbox until its attempts are registered, and by an
    /// attempt while it records its outcome: a pass never sees an entry that was just delivered.
    bookkeeping: tokio::sync::Mutex<()>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    metrics: Mutex<Metrics>,
}

impl Delivery {
    pub fn new(db: Arc<Db>, settings: Settings, receivers: Receivers) -> Arc<Delivery> {
        Arc::new(Delivery {
            db,
            settings,
            receivers: RwLock::new(Arc::new(receivers)),
            wake: Notify::new(),
            in_flight: Mutex::new(HashSet::new()),
            bookkeeping: tokio::sync::Mutex::new(()),
            limits: Mutex::new(HashMap::new()),
            metrics: Mutex::new(Metrics::default()),
        })
    }

    /// Swaps in the receivers of a reloaded config; entries in flight finish with the old ones.
    pub fn set_receivers(&self, receivers: Receivers) {
        *self.receivers.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(receivers);
        self.wake.notify_one();
    }

    /// Tells the loop that new entries are in the outbox.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until the returned task is aborted.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.run().await })
    }

    async fn run(self: Arc<Self>) {
        loop {
            let wait = match self.pass().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(err = %e, "notification delivery: reading the outbox failed");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Starts an attempt for every due head not already in flight; returns how long to sleep.
    async fn pass(self: &Arc<Self>) -> Result<Duration, db::DbError> {
        let _guard = self.bookkeeping.lock().await;
        let now = now_ms();
        let (heads, next, pending) = self.db.call(move |c| Ok((db::due_heads(c, now)?, db::next_due(c)?, db::pending_counts(c)?))).await?;
        {
            let mut m = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
            m.pending.values_mut().for_each(|v| *v = 0);
            m.pending.extend(pending);
        }
        for e in heads {
            if self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(e.id) {
                let me = self.clone();
                tokio::spawn(async move { me.attempt(e).await });
            }
        }
        let until = next.map(|t| (t - now_ms()).max(10)).unwrap_or(1000).min(1000);
        Ok(Duration::from_millis(until as u64))
    }

    fn limit(&self, receiver: &str) -> Arc<Semaphore> {
        let mut l = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        l.entry(receiver.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.settings.concurrency.max(1)))).clone()
    }

    fn integration(&self, e: &OutboxEntry) -> Option<Arc<Integration>> {
        let r = self.receivers.read().unwrap_or_else(|p| p.into_inner()).clone();
        r.get(&e.receiver)?.iter().find(|i| i.kind == e.kind && i.index == e.index).cloned()
    }

    async fn attempt(&self, e: OutboxEntry) {
        let outcome = self.try_send(&e).await;
        let _guard = self.bookkeeping.lock().await;
        let result = {
            let (e, outcome) = (e.clone(), outcome.clone());
            self.db.call(move |c| db::finish(c, &e, &outcome)).await
        };
        if let Err(err) = result {
            tracing::error!(err = %err, receiver = %e.receiver, "notification delivery: updating the outbox failed");
        }
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&e.id);
        self.wake.notify_one();
    }

    /// One attempt; decides what becomes of the entry.
    async fn try_send(&self, e: &OutboxEntry) -> Outcome {
        let now = now_ms();
        if now - e.created > self.settings.max_age.as_millis() as i64 {
            self.count(&e.receiver, "expired");
            tracing::warn!(receiver = %e.receiver, integration = %e.kind, group = %e.group_key, attempts = e.attempts, last_error = %e.last_error, "notification expired undelivered");
            return Outcome::Dropped;
        }
        let Some(integration) = self.integration(e) else {
            tracing::warn!(receiver = %e.receiver, integration = %e.kind, "notification dropped: the receiver is no longer configured");
            self.count(&e.receiver, "failed");
            return Outcome::Dropped;
        };
        let n: Notification = match serde_json::from_str(&e.payload) {
            Ok(n) => n,
            Err(err) => {
                tracing::error!(err = %err, "notification dropped: unreadable outbox entry");
                self.count(&e.receiver, "failed");
                return Outcome::Dropped;
            }
        };
        let Some(n) = super::dispatch::for_integration(&n, integration.sender.send_resolved()) else {
            return Outcome::Dropped;
        };
        let permit = self.limit(&e.receiver).acquire_owned().await;
        let result = match tokio::time::timeout(integration.sender.timeout(), integration.sender.send(&n)).await {
            Ok(r) => r,
            Err(_) => Err(super::receiver::SendError::retry("timed out")),
        };
        drop(permit);
        match result {
            Ok(()) => {
                let at = now_ms();
                self.delivered(&e.receiver, (at - e.created) as f64 / 1000.0);
                Outcome::Delivered { at, status: n.status.as_str().to_string(), alerts: n.alerts.len(), history: notified(&n, e, at) }
            }
            Err(err) => {
                self.count(&e.receiver, "failed");
                if !err.retryable {
                    tracing::error!(receiver = %e.receiver, integration = %e.kind, err = %err.msg, "notification failed, not retryable: dropped");
                    return Outcome::Dropped;
                }
                let next_attempt = now_ms() + self.backoff(e.attempts).as_millis() as i64;
                tracing::warn!(receiver = %e.receiver, integration = %e.kind, attempts = e.attempts + 1, err = %err.msg, "notification failed, will retry");
                Outcome::Retry { next_attempt, error: err.msg }
            }
        }
    }

    /// The delay before retry number `attempts + 1`: doubling from the initial delay up to the
    /// maximum, times a random factor in [0.75, 1.25).
    fn backoff(&self, attempts: i64) -> Duration {
        let base = self.settings.backoff_initial.as_secs_f64() * 2f64.powi(attempts.clamp(0, 30) as i32);
        let capped = base.min(self.settings.backoff_max.as_secs_f64());
        Duration::from_secs_f64(capped * (0.75 + fastrand::f64() * 0.5))
    }

    fn count(&self, receiver: &str, status: &'static str) {
        *self.metrics.lock().unwrap_or_else(|p| p.into_inner()).totals.entry((receiver.to_string(), status)).or_default() += 1;
    }

    fn delivered(&self, receiver: &str, seconds: f64) {
        self.count(receiver, "delivered");
        let mut m = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        let h = m.latency.entry(receiver.to_string()).or_insert(([0; LATENCY_BUCKETS.len()], 0, 0.0));
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                h.0[i] += 1;
            }
        }
        h.1 += 1;
        h.2 += seconds;
    }

    /// `fleetwatch_notifications_total`, `fleetwatch_notification_latency_seconds` and
    /// `fleetwatch_notifications_pending`.
    pub fn families(&self) -> Vec<Family> {
        let m = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = Family::counter(
            "fleetwatch_notifications_total",
            "Notification attempts by receiver and outcome: delivered, failed (an attempt failed), expired (dropped past the max age).",
        );
        let receivers = self.receivers.read().unwrap_or_else(|p| p.into_inner()).clone();
        for r in receivers.keys() {
            for status in ["delivered", "failed", "expired"] {
                total.add(&[("receiver", r), ("status", status)], m.totals.get(&(r.clone(), status)).copied().unwrap_or(0) as f64);
            }
        }
        let mut latency = Family::new(
            "fleetwatch_notification_latency_seconds",
            "Time from a notification entering the outbox to its delivery, by receiver.",
            MetricType::Histogram,
        );
        for (r, (counts, count, sum)) in &m.latency {
            for (le, n) in LATENCY_BUCKETS.iter().zip(counts) {
                latency.add_with_suffix("_bucket", &[("receiver", r), ("le", &le.to_string())], *n as f64);
            }
            latency.add_with_suffix("_bucket", &[("receiver", r), ("le", "+Inf")], *count as f64);
            latency.add_with_suffix("_sum", &[("receiver", r)], *sum);
            latency.add_with_suffix("_count", &[("receiver", r)], *count as f64);
        }
        let mut pending = Family::gauge("fleetwatch_notifications_pending", "Notifications waiting in the outbox, by receiver.");
        for r in receivers.keys() {
            pending.add(&[("receiver", r)], m.pending.get(r).copied().unwrap_or(0) as f64);
        }
        vec![total, latency, pending]
    }
}

/// The `notified` history entries of a delivered notification, one per alert.
fn notified(n: &Notification, e: &OutboxEntry, at: i64) -> Vec<HistoryRow> {
    n.alerts
        .iter()
        .map(|a| HistoryRow {
            at_ms: at,
            kind: "notified".into(),
            alertname: a.labels.get("alertname").cloned().unwrap_or_default(),
            labels: a.labels.clone(),
            fingerprint: a.fingerprint.clone(),
            receiver: Some(e.receiver.clone()),
            detail: format!("{} via {}[{}]", a.status.as_str(), e.kind, e.index),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::{NotifiedAlert, Status, KV};
    use crate::notify::receiver::{SendError, SendFuture, Sender};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fails the first `fail` attempts, then records what it got.
    struct Flaky {
        fail: AtomicUsize,
        got: Arc<Mutex<Vec<String>>>,
    }

    impl Sender for Flaky {
        fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
            Box::pin(async move {
                if self.fail.load(Ordering::SeqCst) > 0 {
                    self.fail.fetch_sub(1, Ordering::SeqCst);
                    return Err(SendError::retry("down"));
                }
                self.got.lock().unwrap().push(n.group_key.clone() + ":" + &n.alerts[0].labels["n"]);
                Ok(())
            })
        }
        fn send_resolved(&self) -> bool {
            true
        }
    }

    fn notification(group: &str, i: usize) -> String {
        let mut labels = KV::new();
        labels.insert("alertname".into(), "A".into());
        labels.insert("n".into(), i.to_string());
        let a = NotifiedAlert {
            status: Status::Firing,
            labels,
            annotations: KV::new(),
            starts_at_ms: 0,
            ends_at_ms: None,
            generator_url: String::new(),
            fingerprint: format!("{i}"),
        };
        let mut n = Notification {
            receiver: "r".into(),
            status: Status::Firing,
            group_key: group.into(),
            group_labels: KV::new(),
            common_labels: KV::new(),
            common_annotations: KV::new(),
            external_url: String::new(),
            alerts: vec![a],
            truncated_alerts: 0,
        };
        n.summarize();
        serde_json::to_string(&n).unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn retries_keep_group_order_and_deliver_once() {
        let db = Db::memory().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sender = Flaky { fail: AtomicUsize::new(3), got: got.clone() };
        let receivers: Receivers =
            [("r".to_string(), vec![Arc::new(Integration { kind: "webhook", index: 0, sender: Box::new(sender) })])].into();
        let settings =
            Settings { backoff_initial: Duration::from_millis(20), backoff_max: Duration::from_millis(50), ..Default::default() };
        let d = Delivery::new(db.clone(), settings, receivers);
        db.with(|c| {
            let tx = c.transaction()?;
            for i in 0..3 {
                db::enqueue(&tx, "r", "webhook", 0, "g1", &notification("g1", i), now_ms())?;
                db::enqueue(&tx, "r", "webhook", 0, "g2", &notification("g2", i), now_ms())?;
            }
            tx.commit()?;
            Ok(())
        })
        .unwrap();
        let task = d.start();
        for _ in 0..200 {
            if got.lock().unwrap().len() == 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        task.abort();
        let got = got.lock().unwrap().clone();
        let of = |g: &str| got.iter().filter(|s| s.starts_with(g)).cloned().collect::<Vec<_>>();
        assert_eq!(of("g1"), ["g1:0", "g1:1", "g1:2"]);
        assert_eq!(of("g2"), ["g2:0", "g2:1", "g2:2"]);
        assert!(db.with(|c| db::pending_counts(c)).unwrap().is_empty());
        assert_eq!(db.with(|c| db::history(c, 0, Some("A"), 100)).unwrap().len(), 6);
        let text = fleetwatch_common::expfmt::encode(&d.families(), fleetwatch_common::expfmt::Format::Text);
        assert!(text.contains("fleetwatch_notifications_total{receiver=\"r\",status=\"delivered\"} 6"), "{text}");
        assert!(text.contains("fleetwatch_notifications_total{receiver=\"r\",status=\"failed\"} 3"), "{text}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn old_entries_expire() {
        let db = Db::memory().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let receivers: Receivers = [(
            "r".to_string(),
            vec![Arc::new(Integration {
                kind: "webhook",
                index: 0,
                sender: Box::new(Flaky { fail: AtomicUsize::new(0), got: got.clone() }),
            })],
        )]
        .into();
        let settings = Settings { max_age: Duration::from_secs(60), ..Default::default() };
        let d = Delivery::new(db.clone(), settings, receivers);
        db.with(|c| {
            let tx = c.transaction()?;
            db::enqueue(&tx, "r", "webhook", 0, "g", &notification("g", 0), now_ms() - 61_000)?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
        d.pass().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(got.lock().unwrap().is_empty());
        assert!(db.with(|c| db::pending_counts(c)).unwrap().is_empty());
        let text = fleetwatch_common::expfmt::encode(&d.families(), fleetwatch_common::expfmt::Format::Text);
        assert!(text.contains("status=\"expired\"} 1"), "{text}");
    }
}
