//! The alerter's durable state in one SQLite file (`<storage.path>/alerter.db`): alert states for
//! the `for` restore, the outbox of notifications not yet delivered, the notification log, the
//! dispatcher's group state, silences and the alert history with its retention.
//!
//! WAL journal with `synchronous=NORMAL`: a committed transaction survives a crash of the process
//! (kill -9 included); only a power loss or kernel crash may lose the last few transactions.
//! Every method is blocking: callers on the (single-threaded) runtime go through `Db::call`,
//! which runs them on the blocking pool.

use super::message::KV;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The schema version this build writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE alert_state (
    grp TEXT NOT NULL, rule TEXT NOT NULL, labels TEXT NOT NULL,
    active_at INTEGER NOT NULL, fired_at INTEGER, last_seen INTEGER NOT NULL,
    PRIMARY KEY (grp, rule, labels)
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver TEXT NOT NULL, kind TEXT NOT NULL, idx INTEGER NOT NULL, group_key TEXT NOT NULL,
    payload TEXT NOT NULL, created INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL, last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_by_integration ON outbox (receiver, kind, idx, group_key, id);
CREATE TABLE notification_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL, receiver TEXT NOT NULL, kind TEXT NOT NULL, idx INTEGER NOT NULL,
    group_key TEXT NOT NULL, status TEXT NOT NULL, alerts INTEGER NOT NULL, attempts INTEGER NOT NULL
);
CREATE INDEX notification_log_at ON notification_log (at);
CREATE TABLE group_state (receiver TEXT NOT NULL, group_key TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (receiver, group_key));
CREATE TABLE silences (id TEXT PRIMARY KEY, ends_at INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL, kind TEXT NOT NULL, alertname TEXT NOT NULL, labels TEXT NOT NULL,
    fingerprint TEXT NOT NULL, receiver TEXT, detail TEXT NOT NULL
);
CREATE INDEX history_at ON history (at);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("storage {path}: {source}")]
    Open { path: PathBuf, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("storage: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("storage: {0}")]
    Json(#[from] serde_json::Error),
    #[error("storage: database schema version {0} is newer than this build's ({SCHEMA_VERSION})")]
    TooNew(i64),
    #[error("storage: blocking task failed: {0}")]
    Task(String),
}

/// The database, shared by the service, the delivery loop and the API.
pub struct Db {
    conn: Mutex<Connection>,
}

/// A pending or firing alert as saved after each evaluation of its group.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub rule: String,
    pub labels: String,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub last_seen: i64,
}

/// One notification for one integration, waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub id: i64,
    pub receiver: String,
    pub kind: String,
    pub index: usize,
    pub group_key: String,
    /// The `Notification` as JSON.
    pub payload: String,
    pub created: i64,
    pub attempts: i64,
    pub next_attempt: i64,
    pub last_error: String,
}

/// An entry of the alert history.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct HistoryRow {
    #[serde(rename = "at")]
    pub at_ms: i64,
    pub kind: String,
    pub alertname: String,
    pub labels: KV,
    pub fingerprint: String,
    pub receiver: Option<String>,
    pub detail: String,
}

impl Db {
    /// Opens (creating when missing) `dir/alerter.db`, migrating the schema.
    pub fn open(dir: &Path) -> Result<Arc<Db>, DbError> {
        let open_err = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Open { path: dir.to_path_buf(), source: e };
        std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
        let conn = Connection::open(dir.join("alerter.db")).map_err(|e| open_err(Box::new(e)))?;
        Self::setup(conn)
    }

    /// An in-memory database, for tests.
    pub fn memory() -> Result<Arc<Db>, DbError> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(conn: Connection) -> Result<Arc<Db>, DbError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(DbError::TooNew(version));
        }
        if version < 1 {
            conn.execute_batch(&format!("BEGIN; {SCHEMA_V1} PRAGMA user_version = 1; COMMIT;"))?;
        }
        Ok(Arc::new(Db { conn: Mutex::new(conn) }))
    }

    /// Runs `f` with the connection on the blocking pool (never on the runtime's one thread).
    pub async fn call<T, F>(self: &Arc<Self>, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.with(f)).await.map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Runs `f` with the connection on the calling thread.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, DbError>) -> Result<T, DbError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }
}

/// Records an evaluation of rule group `grp` at `t`, replacing its saved alerts with `rows` when
/// they changed (`None`: same alerts as saved, only the evaluation time is updated).
pub fn save_group_alerts(tx: &Transaction, grp: &str, t: i64, rows: Option<&[AlertRow]>) -> Result<(), DbError> {
    if let Some(rows) = rows {
        tx.execute("DELETE FROM alert_state WHERE grp = ?1", params![grp])?;
        let mut ins = tx.prepare_cached(
            "INSERT OR REPLACE INTO alert_state (grp, rule, labels, active_at, fired_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for r in rows {
            ins.execute(params![grp, r.rule, r.labels, r.active_at, r.fired_at, r.last_seen])?;
        }
    }
    set_meta(tx, &format!("seen:{grp}"), t)?;
    set_meta(tx, "last_eval", t)
}

/// The saved alerts of rule group `grp`, `last_seen` being the group's last evaluation.
pub fn group_alerts(conn: &Connection, grp: &str) -> Result<Vec<AlertRow>, DbError> {
    let seen = meta(conn, &format!("seen:{grp}"))?.unwrap_or(0);
    let mut st = conn.prepare_cached("SELECT rule, labels, active_at, fired_at, last_seen FROM alert_state WHERE grp = ?1")?;
    let rows = st.query_map(params![grp], |r| {
        Ok(AlertRow { rule: r.get(0)?, labels: r.get(1)?, active_at: r.get(2)?, fired_at: r.get(3)?, last_seen: r.get(4)? })
    })?;
    let mut out: Vec<AlertRow> = rows.collect::<Result<_, _>>()?;
    for r in &mut out {
        r.last_seen = r.last_seen.max(seen);
    }
    Ok(out)
}

pub fn set_meta(conn: &Connection, key: &str, value: i64) -> Result<(), DbError> {
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", params![key, value])?;
    Ok(())
}

pub fn meta(conn: &Connection, key: &str) -> Result<Option<i64>, DbError> {
    Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| r.get(0)).optional()?)
}

/// Adds a notification for one integration to the outbox, due at once.
pub fn enqueue(
    tx: &Transaction,
    receiver: &str,
    kind: &str,
    index: usize,
    group_key: &str,
    payload: &str,
    now: i64,
) -> Result<(), DbError> {
    tx.prepare_cached(
        "INSERT INTO outbox (receiver, kind, idx, group_key, payload, created, next_attempt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![receiver, kind, index as i64, group_key, payload, now])?;
    Ok(())
}

/// The oldest entry of every (integration, group) queue, when it is due at `now`: a group's later
/// notifications wait for its earlier ones, so each group's order is kept.
pub fn due_heads(conn: &Connection, now: i64) -> Result<Vec<OutboxEntry>, DbError> {
    let mut st = conn.prepare_cached(
        "SELECT o.id, o.receiver, o.kind, o.idx, o.group_key, o.payload, o.created, o.attempts, o.next_attempt, o.last_error
         FROM outbox o JOIN (SELECT MIN(id) AS id FROM outbox GROUP BY receiver, kind, idx, group_key) h ON o.id = h.id
         WHERE o.next_attempt <= ?1 ORDER BY o.id",
    )?;
    let rows = st.query_map(params![now], |r| {
        Ok(OutboxEntry {
            id: r.get(0)?,
            receiver: r.get(1)?,
            kind: r.get(2)?,
            index: r.get::<_, i64>(3)? as usize,
            group_key: r.get(4)?,
            payload: r.get(5)?,
            created: r.get(6)?,
            attempts: r.get(7)?,
            next_attempt: r.get(8)?,
            last_error: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The earliest `next_attempt` in the outbox.
pub fn next_due(conn: &Connection) -> Result<Option<i64>, DbError> {
    Ok(conn.query_row("SELECT MIN(next_attempt) FROM outbox", [], |r| r.get(0))?)
}

/// Entries waiting per receiver.
pub fn pending_counts(conn: &Connection) -> Result<Vec<(String, u64)>, DbError> {
    let mut st = conn.prepare_cached("SELECT receiver, COUNT(*) FROM outbox GROUP BY receiver")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What happened to an outbox entry after one attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered { at: i64, status: String, alerts: usize, history: Vec<HistoryRow> },
    Retry { next_attempt: i64, error: String },
    Dropped,
}

/// Applies an attempt's outcome in one transaction: a delivered entry leaves the outbox and enters
/// the notification log and the history together.
pub fn finish(conn: &mut Connection, e: &OutboxEntry, outcome: &Outcome) -> Result<(), DbError> {
    let tx = conn.transaction()?;
    match outcome {
        Outcome::Delivered { at, status, alerts, history } => {
            tx.execute("DELETE FROM outbox WHERE id = ?1", params![e.id])?;
            tx.execute(
                "INSERT INTO notification_log (at, receiver, kind, idx, group_key, status, alerts, attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![at, e.receiver, e.kind, e.index as i64, e.group_key, status, *alerts as i64, e.attempts + 1],
            )?;
            add_history(&tx, history)?;
        }
        Outcome::Retry { next_attempt, error } => {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3 WHERE id = ?1",
                params![e.id, next_attempt, error],
            )?;
        }
        Outcome::Dropped => {
            tx.execute("DELETE FROM outbox WHERE id = ?1", params![e.id])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// One delivered notification, as the notification log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub at: i64,
    pub receiver: String,
    pub kind: String,
    pub group_key: String,
    pub status: String,
}

/// Notifications delivered since `since` (ms), oldest first.
pub fn notification_log(conn: &Connection, since: i64) -> Result<Vec<LogEntry>, DbError> {
    let mut st = conn.prepare_cached("SELECT at, receiver, kind, group_key, status FROM notification_log WHERE at >= ?1 ORDER BY id")?;
    let rows = st.query_map(params![since], |r| {
        Ok(LogEntry { at: r.get(0)?, receiver: r.get(1)?, kind: r.get(2)?, group_key: r.get(3)?, status: r.get(4)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stores the dispatcher's group state changes: `removed` first, then `changed` (JSON each).
pub fn save_group_states(conn: &Connection, removed: &[(String, String)], changed: &[(String, String, String)]) -> Result<(), DbError> {
    let mut del = conn.prepare_cached("DELETE FROM group_state WHERE receiver = ?1 AND group_key = ?2")?;
    for (r, g) in removed {
        del.execute(params![r, g])?;
    }
    let mut put = conn.prepare_cached("INSERT OR REPLACE INTO group_state (receiver, group_key, state) VALUES (?1, ?2, ?3)")?;
    for (r, g, json) in changed {
        put.execute(params![r, g, json])?;
    }
    Ok(())
}

/// Every stored group state (JSON).
pub fn group_states(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut st = conn.prepare_cached("SELECT state FROM group_state")?;
    let rows = st.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Inserts or replaces a silence (its JSON body), ending at `ends_at`.
pub fn put_silence(conn: &Connection, id: &str, ends_at: i64, body: &str) -> Result<(), DbError> {
    conn.execute("INSERT OR REPLACE INTO silences (id, ends_at, body) VALUES (?1, ?2, ?3)", params![id, ends_at, body])?;
    Ok(())
}

/// Every stored silence's JSON body.
pub fn silences(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut st = conn.prepare_cached("SELECT body FROM silences ORDER BY ends_at DESC, id")?;
    let rows = st.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn silence(conn: &Connection, id: &str) -> Result<Option<String>, DbError> {
    Ok(conn.query_row("SELECT body FROM silences WHERE id = ?1", params![id], |r| r.get(0)).optional()?)
}

/// Forgets silences that ended before `before`.
pub fn prune_silences(conn: &Connection, before: i64) -> Result<usize, DbError> {
    Ok(conn.execute("DELETE FROM silences WHERE ends_at < ?1", params![before])?)
}

pub fn add_history(conn: &Connection, rows: &[HistoryRow]) -> Result<(), DbError> {
    let mut st = conn.prepare_cached(
        "INSERT INTO history (at, kind, alertname, labels, fingerprint, receiver, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for h in rows {
        st.execute(params![h.at_ms, h.kind, h.alertname, serde_json::to_string(&h.labels)?, h.fingerprint, h.receiver, h.detail])?;
    }
    Ok(())
}

/// History since `since` (ms), oldest first, of one alertname when given; at most `limit` rows.
pub fn history(conn: &Connection, since: i64, alertname: Option<&str>, limit: usize) -> Result<Vec<HistoryRow>, DbError> {
    let mut st = conn.prepare_cached(
        "SELECT at, kind, alertname, labels, fingerprint, receiver, detail FROM history
         WHERE at >= ?1 AND (?2 IS NULL OR alertname = ?2) ORDER BY id LIMIT ?3",
    )?;
    let rows = st.query_map(params![since, alertname, limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (at_ms, kind, alertname, labels, fingerprint, receiver, detail) = row?;
        out.push(HistoryRow { at_ms, kind, alertname, labels: serde_json::from_str(&labels)?, fingerprint, receiver, detail });
    }
    Ok(out)
}

/// Drops history and notification log entries older than `before` (the retention).
pub fn prune_history(conn: &Connection, before: i64) -> Result<usize, DbError> {
    let n = conn.execute("DELETE FROM history WHERE at < ?1", params![before])?;
    conn.execute("DELETE FROM notification_log WHERE at < ?1", params![before])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, at: i64, name: &str) -> HistoryRow {
        HistoryRow {
            at_ms: at,
            kind: kind.into(),
            alertname: name.into(),
            labels: [("alertname".to_string(), name.to_string())].into(),
            fingerprint: "f".into(),
            receiver: None,
            detail: String::new(),
        }
    }

    #[test]
    fn schema_survives_reopen_and_alert_states_replace_per_group() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let a = AlertRow { rule: "A".into(), labels: "{x=\"1\"}".into(), active_at: 5, fired_at: None, last_seen: 9 };
        db.with(|c| {
            let tx = c.transaction()?;
            save_group_alerts(&tx, "g", 8, Some(std::slice::from_ref(&a)))?;
            save_group_alerts(&tx, "g", 9, None)?;
            save_group_alerts(&tx, "h", 9, Some(std::slice::from_ref(&a)))?;
            save_group_alerts(&tx, "h", 10, Some(&[]))?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
        drop(db);
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.with(|c| group_alerts(c, "g")).unwrap(), vec![a]);
        assert!(db.with(|c| group_alerts(c, "h")).unwrap().is_empty());
        assert_eq!(db.with(|c| meta(c, "last_eval")).unwrap(), Some(10));
        let v: i64 = db.with(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = db.with(|c| Ok(c.pragma_query_value(None, "journal_mode", |r| r.get(0))?)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn outbox_serves_one_head_per_group_in_order() {
        let db = Db::memory().unwrap();
        db.with(|c| {
            let tx = c.transaction()?;
            enqueue(&tx, "r", "webhook", 0, "g1", "1", 100)?;
            enqueue(&tx, "r", "webhook", 0, "g1", "2", 100)?;
            enqueue(&tx, "r", "webhook", 0, "g2", "3", 100)?;
            enqueue(&tx, "r", "webhook", 1, "g1", "4", 100)?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
        let heads = db.with(|c| due_heads(c, 100)).unwrap();
        assert_eq!(heads.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(), ["1", "3", "4"]);
        let first = heads[0].clone();
        db.with(|c| finish(c, &first, &Outcome::Retry { next_attempt: 200, error: "down".into() })).unwrap();
        let heads = db.with(|c| due_heads(c, 150)).unwrap();
        assert_eq!(heads.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(), ["3", "4"], "g1 waits for its head");
        let retried = db.with(|c| due_heads(c, 200)).unwrap().remove(0);
        assert_eq!((retried.attempts, retried.last_error.as_str()), (1, "down"));
        let delivered = Outcome::Delivered { at: 210, status: "firing".into(), alerts: 1, history: vec![row("notified", 210, "A")] };
        db.with(|c| finish(c, &retried, &delivered)).unwrap();
        let heads = db.with(|c| due_heads(c, 300)).unwrap();
        assert_eq!(heads[0].payload, "2");
        assert_eq!(db.with(|c| pending_counts(c)).unwrap(), vec![("r".to_string(), 3)]);
        assert_eq!(db.with(|c| notification_log(c, 0)).unwrap().len(), 1);
        assert_eq!(db.with(|c| history(c, 0, Some("A"), 10)).unwrap(), vec![row("notified", 210, "A")]);
    }

    #[test]
    fn history_filters_and_retention() {
        let db = Db::memory().unwrap();
        db.with(|c| add_history(c, &[row("fired", 10, "A"), row("fired", 20, "B"), row("resolved", 30, "A")])).unwrap();
        assert_eq!(db.with(|c| history(c, 15, None, 10)).unwrap().len(), 2);
        assert_eq!(db.with(|c| history(c, 0, Some("A"), 10)).unwrap().len(), 2);
        assert_eq!(db.with(|c| prune_history(c, 25)).unwrap(), 2);
        assert_eq!(db.with(|c| history(c, 0, None, 10)).unwrap(), vec![row("resolved", 30, "A")]);
    }

    #[test]
    fn group_states_replace_and_remove() {
        let db = Db::memory().unwrap();
        let st = |r: &str, g: &str, j: &str| (r.to_string(), g.to_string(), j.to_string());
        db.with(|c| save_group_states(c, &[], &[st("r", "a", "1"), st("r", "b", "2")])).unwrap();
        db.with(|c| save_group_states(c, &[("r".into(), "a".into())], &[st("r", "b", "3")])).unwrap();
        assert_eq!(db.with(|c| group_states(c)).unwrap(), ["3"]);
    }

    #[test]
    fn silences_round_trip() {
        let db = Db::memory().unwrap();
        db.with(|c| put_silence(c, "a", 100, "{\"id\":\"a\"}")).unwrap();
        db.with(|c| put_silence(c, "b", 50, "{}")).unwrap();
        assert_eq!(db.with(|c| silences(c)).unwrap().len(), 2);
        assert_eq!(db.with(|c| prune_silences(c, 60)).unwrap(), 1);
        assert_eq!(db.with(|c| silence(c, "a")).unwrap().as_deref(), Some("{\"id\":\"a\"}"));
    }
}
