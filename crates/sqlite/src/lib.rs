//! The embedded store: [`SqliteStore`] implements [`pipeline_core::store::Store`] on a SQLite
//! file (or in memory), so the whole pipeline runs on a laptop and results can be inspected
//! with any SQLite tool.
//!
//! Tables (records are JSON text, with the fields people filter on copied into columns):
//! - `events(event_id PK, entity_id, version, content_hash, status, occurred_at, score,
//!   is_anomaly, record)`, with an index on `(entity_id, is_anomaly, occurred_at)` for
//!   anomaly listings;
//! - `entities(entity_id PK, version, state)`;
//! - `quarantine(quarantine_id PK, batch_id, event_id, stage, reasons, payload, record)`.
//!
//! Each trait call runs in one transaction, so a batch of conditional writes is atomic and a
//! condition is checked and acted on without a window in between. Write transactions start
//! `IMMEDIATE` (they take the write lock before reading what their conditions check), and a
//! second process on the same file waits up to [`BUSY_TIMEOUT_MS`] for the lock instead of
//! failing: with WAL, readers never wait, and writers queue.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use pipeline_core::Error as CoreError;
use pipeline_core::detect::EntityState;
use pipeline_core::store::{
    EntityCommit, EntityWrite, EventRecord, EventWrite, QuarantineRecord, Store, StoreDump,
    WriteCondition, WriteResult,
};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

/// Errors of the embedded store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON document does not decode.
    #[error("stored document {key} does not decode: {source}")]
    Decode {
        /// The row's key.
        key: String,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
    /// A document could not be encoded.
    #[error("cannot encode document: {0}")]
    Encode(#[source] serde_json::Error),
    /// The connection mutex was poisoned by a panic elsewhere.
    #[error("the database connection is unusable after an earlier panic")]
    Poisoned,
}

impl From<Error> for CoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                CoreError::StoreThrottled {
                    message: "database is busy".into(),
                    source: Some(Box::new(e)),
                }
            }
            Error::Decode { ref key, .. } => CoreError::StoreCorrupt {
                key: key.clone(),
                message: e.to_string(),
            },
            other => CoreError::StoreUnavailable {
                message: "embedded database failed".into(),
                source: Some(Box::new(other)),
            },
        }
    }
}

/// How long a write waits for another process's write transaction to end before giving up
/// (as a retryable `StoreThrottled`). A batch transaction takes milliseconds; a minute covers
/// a writer stalled by a slow disk.
pub const BUSY_TIMEOUT_MS: u64 = 60_000;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS events (
    event_id     TEXT PRIMARY KEY,
    entity_id    TEXT NOT NULL,
    version      INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    status       TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    score        REAL NOT NULL,
    is_anomaly   INTEGER NOT NULL,
    record       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_anomalies ON events (entity_id, is_anomaly, occurred_at);
CREATE INDEX IF NOT EXISTS events_anomalies_by_time ON events (is_anomaly, occurred_at);
CREATE TABLE IF NOT EXISTS entities (
    entity_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    state     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    quarantine_id TEXT PRIMARY KEY,
    batch_id      TEXT NOT NULL,
    event_id      TEXT,
    stage         TEXT NOT NULL,
    reasons       TEXT NOT NULL,
    payload       TEXT NOT NULL,
    record        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_by_event ON quarantine (event_id);
";

/// A store on one SQLite database.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::init(Connection::open(path)?)
    }

    /// A private in-memory database (tests, benchmarks).
    pub fn in_memory() -> Result<Self, Error> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, Error> {
        // Before anything else: creating the schema can already meet another writer.
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    // A std mutex, not an async one: every critical section is a short synchronous SQLite call
    // that never awaits, and SQLite serialises writers anyway.
    fn conn(&self) -> Result<MutexGuard<'_, Connection>, Error> {
        self.conn.lock().map_err(|_| Error::Poisoned)
    }

    /// The quarantine entries of one event id, oldest first.
    pub fn quarantine_of(&self, event_id: &str) -> Result<Vec<QuarantineRecord>, Error> {
        let conn = self.conn()?;
        let rows: Vec<(String, String)> = conn
            .prepare_cached(
                "SELECT quarantine_id, record FROM quarantine WHERE event_id = ?1 ORDER BY rowid",
            )?
            .query_map([event_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        rows.iter().map(|(k, t)| decode(k, t)).collect()
    }

    /// Reads one record.
    pub fn get_event(&self, event_id: &str) -> Result<Option<EventRecord>, Error> {
        let conn = self.conn()?;
        read_event(&conn, event_id)
    }
}

fn read_event(conn: &Connection, event_id: &str) -> Result<Option<EventRecord>, Error> {
    let text: Option<String> = conn
        .prepare_cached("SELECT record FROM events WHERE event_id = ?1")?
        .query_row([event_id], |r| r.get(0))
        .optional()?;
    text.map(|t| decode(event_id, &t)).transpose()
}

/// A write transaction that holds the write lock from its start, so the conditions it reads
/// cannot change before it writes, and a lock held by another process is waited for (busy
/// timeout) rather than met half way through as `SQLITE_BUSY`.
fn write_tx(conn: &mut Connection) -> Result<Transaction<'_>, Error> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|source| Error::Decode {
        key: key.to_owned(),
        source,
    })
}

fn write_record(conn: &Connection, r: &EventRecord) -> Result<(), Error> {
    let text = serde_json::to_string(r).map_err(Error::Encode)?;
    let status = match r.status {
        pipeline_core::store::RecordStatus::Persisted => "persisted",
        pipeline_core::store::RecordStatus::Updated => "updated",
    };
    conn.prepare_cached(
        "INSERT INTO events (event_id, entity_id, version, content_hash, status, occurred_at, score, is_anomaly, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(event_id) DO UPDATE SET entity_id = ?2, version = ?3, content_hash = ?4, status = ?5,
           occurred_at = ?6, score = ?7, is_anomaly = ?8, record = ?9",
    )?
    .execute(params![
        r.event_id,
        r.entity_id,
        r.version,
        r.content_hash,
        status,
        r.occurred_at,
        r.detection.score,
        r.detection.is_anomaly,
        text
    ])?;
    Ok(())
}

impl SqliteStore {
    fn write_events_sync(&self, writes: Vec<EventWrite>) -> Result<Vec<WriteResult>, Error> {
        let mut conn = self.conn()?;
        let tx = write_tx(&mut conn)?;
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            let stored: Option<u32> = tx
                .prepare_cached("SELECT version FROM events WHERE event_id = ?1")?
                .query_row([&w.record.event_id], |r| r.get(0))
                .optional()?;
            let ok = match w.condition {
                WriteCondition::Absent => stored.is_none(),
                WriteCondition::VersionIs(v) => stored == Some(v),
            };
            if ok {
                write_record(&tx, &w.record)?;
                out.push(WriteResult::Written);
            } else {
                let current = read_event(&tx, &w.record.event_id)?.map(Box::new);
                out.push(WriteResult::ConditionFailed { current });
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn commit_entity_sync(&self, commit: &EntityCommit) -> Result<EntityWrite, Error> {
        let mut conn = self.conn()?;
        let tx = write_tx(&mut conn)?;
        let state = &commit.state;
        let stored: u64 = tx
            .prepare_cached("SELECT version FROM entities WHERE entity_id = ?1")?
            .query_row([&state.entity_id], |r| r.get::<_, i64>(0))
            .optional()?
            .map_or(0, |v| v as u64);
        if stored + 1 != state.version {
            return Ok(EntityWrite::Conflict);
        }
        for r in &commit.inserts {
            let exists = tx
                .prepare_cached("SELECT 1 FROM events WHERE event_id = ?1")?
                .query_row([&r.event_id], |_| Ok(()))
                .optional()?
                .is_some();
            if exists {
                // Dropping the transaction rolls it back: nothing of the commit is written.
                return Ok(EntityWrite::Conflict);
            }
            write_record(&tx, r)?;
        }
        let text = serde_json::to_string(state).map_err(Error::Encode)?;
        tx.prepare_cached(
            "INSERT INTO entities (entity_id, version, state) VALUES (?1, ?2, ?3)
             ON CONFLICT(entity_id) DO UPDATE SET version = ?2, state = ?3",
        )?
        .execute(params![state.entity_id, state.version as i64, text])?;
        tx.commit()?;
        Ok(EntityWrite::Written)
    }

    fn put_quarantine_sync(&self, items: &[QuarantineRecord]) -> Result<(), Error> {
        let mut conn = self.conn()?;
        let tx = write_tx(&mut conn)?;
        for q in items {
            let record = serde_json::to_string(q).map_err(Error::Encode)?;
            let reasons = serde_json::to_string(&q.item.reasons).map_err(Error::Encode)?;
            let payload = serde_json::to_string(&q.item.payload).map_err(Error::Encode)?;
            // Keep the first quarantine time: quarantining the same thing again changes nothing.
            tx.prepare_cached(
                "INSERT INTO quarantine (quarantine_id, batch_id, event_id, stage, reasons, payload, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(quarantine_id) DO NOTHING",
            )?
            .execute(params![q.quarantine_id, q.batch_id, q.item.event_id, q.item.stage.as_str(), reasons, payload, record])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn list_anomalies_sync(
        &self,
        entity_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventRecord>, Error> {
        let conn = self.conn()?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows: Vec<(String, String)> = match entity_id {
            Some(e) => conn
                .prepare_cached(
                    "SELECT event_id, record FROM events WHERE entity_id = ?1 AND is_anomaly = 1
                     ORDER BY occurred_at DESC, event_id LIMIT ?2",
                )?
                .query_map(params![e, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?,
            None => conn
                .prepare_cached(
                    "SELECT event_id, record FROM events WHERE is_anomaly = 1
                     ORDER BY occurred_at DESC, event_id LIMIT ?1",
                )?
                .query_map(params![limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?,
        };
        rows.iter().map(|(k, t)| decode(k, t)).collect()
    }

    fn dump_sync(&self) -> Result<StoreDump, Error> {
        let conn = self.conn()?;
        let rows = |sql: &str| -> Result<Vec<(String, String)>, Error> {
            Ok(conn
                .prepare(sql)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?)
        };
        Ok(StoreDump {
            events: rows("SELECT event_id, record FROM events ORDER BY event_id")?
                .iter()
                .map(|(k, t)| decode(k, t))
                .collect::<Result<_, _>>()?,
            entities: rows("SELECT entity_id, state FROM entities ORDER BY entity_id")?
                .iter()
                .map(|(k, t)| decode(k, t))
                .collect::<Result<_, _>>()?,
            quarantine: rows(
                "SELECT quarantine_id, record FROM quarantine ORDER BY quarantine_id",
            )?
            .iter()
            .map(|(k, t)| decode(k, t))
            .collect::<Result<_, _>>()?,
        })
    }

    fn get_map<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        ids: &[String],
    ) -> Result<HashMap<String, T>, Error> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql)?;
        let mut out = HashMap::with_capacity(ids.len());
        for id in ids {
            if out.contains_key(id) {
                continue;
            }
            let text: Option<String> = stmt.query_row([id], |r| r.get(0)).optional()?;
            if let Some(t) = text {
                out.insert(id.clone(), decode(id, &t)?);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get_events(&self, ids: &[String]) -> Result<HashMap<String, EventRecord>, CoreError> {
        Ok(self.get_map("SELECT record FROM events WHERE event_id = ?1", ids)?)
    }

    async fn write_events(&self, writes: Vec<EventWrite>) -> Result<Vec<WriteResult>, CoreError> {
        Ok(self.write_events_sync(writes)?)
    }

    async fn get_entities(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, EntityState>, CoreError> {
        Ok(self.get_map("SELECT state FROM entities WHERE entity_id = ?1", ids)?)
    }

    async fn commit_entity(&self, commit: &EntityCommit) -> Result<EntityWrite, CoreError> {
        Ok(self.commit_entity_sync(commit)?)
    }

    async fn put_quarantine(&self, items: &[QuarantineRecord]) -> Result<(), CoreError> {
        Ok(self.put_quarantine_sync(items)?)
    }

    async fn quarantine_of(&self, event_id: &str) -> Result<Vec<QuarantineRecord>, CoreError> {
        let mut records = SqliteStore::quarantine_of(self, event_id)?;
        records.sort_by(|a, b| {
            (a.quarantined_at, &a.quarantine_id).cmp(&(b.quarantined_at, &b.quarantine_id))
        });
        Ok(records)
    }

    async fn list_anomalies(
        &self,
        entity_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventRecord>, CoreError> {
        Ok(self.list_anomalies_sync(entity_id, limit)?)
    }

    async fn dump(&self) -> Result<StoreDump, CoreError> {
        Ok(self.dump_sync()?)
    }
}
