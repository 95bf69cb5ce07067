//! The embedded store: [`SqliteStore`] implements [`pipeline_core::store::Store`] on a SQLite
//! file (or in memory), so the whole pipeline runs on a laptop and results can be inspected
//! with any SQLite tool.
//!
//! Tables (records are JSON text, with the fields people filter on copied into columns):
//! - `events(event_id PK, entity_id, version, content_hash, status, occurred_at, score,
//!   is_anomaly, record)`, with partial indexes over the anomalies only (by entity and event
//!   time, and by event time) for anomaly listings: an ordinary event costs no index entry
//!   beyond its key;
//! - `entities(entity_id PK, version, state)`;
//! - `quarantine(quarantine_id PK, batch_id, event_id, stage, reasons, payload, record)`.
//!
//! Each write call is atomic, so a batch of
//! conditional writes is all-or-nothing and a condition is checked and acted on without a
//! window in between. Write transactions start `IMMEDIATE` (they take the write lock before
//! reading what their conditions check), and a second process on the same file waits up to
//! [`BUSY_TIMEOUT_MS`] for the lock instead of failing: with WAL, readers never wait, and
//! writers queue.
//!
//! By default every write call commits at once. [`SqliteStore::with_group_commit`] lets
//! consecutive batches share one transaction for up to a given time, committed at the first
//! [`Batching::end_batch`] after that time or by [`Batching::flush`]: what makes a local backfill
//! fast, since one commit per batch rewrites the same index pages into the WAL over and over.
//! A group ends only between batches, and a crash loses the open group *whole* (records and
//! entity states together), so a rerun finds no batch half written, counts nothing twice, and
//! enriches what it redoes against the states a clean run saw.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pipeline_core::Error as CoreError;
use pipeline_core::detect::EntityState;
use pipeline_core::store::{
    Batching, EntityCommit, EntityStore, EntityWrite, EventRecord, EventStore, EventWrite, Inspect,
    Listing, QuarantineRecord, QuarantineStore, StoreDump, WriteCondition, WriteResult,
};
use rusqlite::{Connection, OptionalExtension, params};

mod read;
mod schema;

use read::{decode, read_event, read_map};
use schema::check_is_store;

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
    /// SQLite ended the open group-commit transaction on its own (after an I/O error, say), so
    /// writes this store had answered were rolled back. Nothing of them is stored; running the
    /// same input again redoes them.
    #[error(
        "the database rolled back uncommitted writes (group commit) after an error; nothing of them is stored, so running the input again is safe"
    )]
    GroupLost,
    /// The file is an SQLite database, but not this product's store (nothing was changed).
    #[error("this SQLite database is not a pipeline store ({0}); nothing was changed")]
    NotAStore(String),
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
            Error::GroupLost => CoreError::StoreRejected {
                message: e.to_string(),
                source: Some(Box::new(e)),
            },
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

/// A store on one SQLite database.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Conn>,
}

/// The connection and its open write transaction, if any.
#[derive(Debug)]
struct Conn {
    db: Connection,
    /// When the open write transaction began (`None`: none is open).
    open_since: Option<Instant>,
    /// How long write calls may share one transaction (`None`: each commits at once).
    group: Option<Duration>,
    /// Entity states as this connection last read or wrote them.
    states: StateCache,
}

/// Entity states kept decoded between calls: the stages read an entity's state three times
/// per batch (enrich, detect, persist), and decoding it from JSON each time was a fifth of a
/// local run. Valid while no other connection has committed: SQLite's `data_version` tells,
/// and the cache is emptied when it moves (or when a transaction of ours is rolled back).
#[derive(Debug, Default)]
struct StateCache {
    map: HashMap<String, EntityState>,
    data_version: Option<i64>,
}

/// Most entity states kept decoded (a few KB each).
const STATE_CACHE_ENTRIES: usize = 20_000;

impl StateCache {
    fn remember(&mut self, state: &EntityState) {
        if self.map.len() >= STATE_CACHE_ENTRIES && !self.map.contains_key(&state.entity_id) {
            self.map.clear();
        }
        self.map.insert(state.entity_id.clone(), state.clone());
    }
}

impl std::ops::Deref for Conn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.db
    }
}

impl Conn {
    /// Runs `op` atomically in the write transaction (begun `IMMEDIATE` if none is open).
    /// Without group commit the transaction commits when `op` succeeds and rolls back when it
    /// fails. With it, it stays open until [`Conn::end_batch`] finds it older than the group
    /// time, or [`Conn::commit`]; a failing `op` then rolls back the whole group and answers
    /// [`Error::GroupLost`]. Ops check every condition before writing anything, so a
    /// failed condition never needs undoing: only an SQLite error midway does, and undoing just
    /// that op would need a savepoint, whose sub-journal copies every page it touches.
    fn write<T>(&mut self, op: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        if self.open_since.is_none() {
            self.db.execute_batch("BEGIN IMMEDIATE")?;
            self.open_since = Some(Instant::now());
        }
        match op(&self.db) {
            Ok(v) if self.db.is_autocommit() => {
                // SQLite ended the transaction on its own: whatever it held is gone.
                self.open_since = None;
                self.states.map.clear();
                drop(v);
                Err(Error::GroupLost)
            }
            Ok(v) => {
                if self.group.is_none()
                    && let Err(e) = self.commit()
                {
                    // Not committed: undo it, so the next write does not join (and later
                    // commit) what this one answered as failed.
                    self.rollback();
                    return Err(e);
                }
                Ok(v)
            }
            Err(e) => {
                self.rollback();
                Err(if self.group.is_some() {
                    Error::GroupLost
                } else {
                    e
                })
            }
        }
    }

    /// A batch's writes are all made: with group commit, the open group is committed once it
    /// is older than the group time. Only here, so a group never ends inside a batch.
    fn end_batch(&mut self) -> Result<(), Error> {
        match (self.open_since, self.group) {
            (Some(since), Some(group)) if since.elapsed() >= group => self.commit(),
            _ => Ok(()),
        }
    }

    /// Commits the open write transaction, if any.
    fn commit(&mut self) -> Result<(), Error> {
        if self.open_since.is_some() {
            if let Err(e) = self.db.execute_batch("COMMIT") {
                if self.db.is_autocommit() {
                    self.open_since = None;
                    return Err(if self.group.is_some() {
                        Error::GroupLost
                    } else {
                        e.into()
                    });
                }
                return Err(e.into());
            }
            self.open_since = None;
        }
        Ok(())
    }

    fn rollback(&mut self) {
        self.states.map.clear();
        if self.open_since.take().is_some() && !self.db.is_autocommit() {
            // Nothing to report: the connection goes on in autocommit either way.
            let _ = self.db.execute_batch("ROLLBACK");
        }
    }

    /// Whether reads must open their own transaction (none is open to read in).
    fn in_write(&self) -> bool {
        self.open_since.is_some()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`. A database that already holds
    /// tables other than this store's is refused before anything is changed.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
        check_is_store(&conn, true)?;
        Self::init(conn)
    }

    /// Opens the existing database at `path` for reading only: no schema statement, no
    /// journal-mode change, nothing written, so it works on a read-only file and leaves any
    /// other SQLite file as it was (refusing it when it is not this product's store).
    pub fn open_read_only(path: &Path) -> Result<Self, Error> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
        check_is_store(&conn, false)?;
        Ok(Self::on(conn))
    }

    /// A private in-memory database (tests, benchmarks).
    pub fn in_memory() -> Result<Self, Error> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, Error> {
        // Before anything else: creating the schema can already meet another writer.
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
        schema::create(&conn)?;
        Ok(Self::on(conn))
    }

    /// The store on an open, checked connection, with nothing in flight.
    fn on(conn: Connection) -> Self {
        SqliteStore {
            conn: Mutex::new(Conn {
                db: conn,
                open_since: None,
                group: None,
                states: StateCache::default(),
            }),
        }
    }

    /// Lets the writes of consecutive batches share one transaction for up to `group` (see
    /// the module docs); the transaction ends at a batch's end ([`Batching::end_batch`]), never
    /// inside one. The write lock is held meanwhile, so another writer on the file waits up to
    /// that long (plus one batch) between its chances; call [`Batching::flush`] when done, or the
    /// open group is rolled back when the store is dropped.
    pub fn with_group_commit(self, group: Duration) -> Self {
        let mut conn = match self.conn.into_inner() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        conn.group = Some(group);
        SqliteStore {
            conn: Mutex::new(conn),
        }
    }

    // A std mutex, not an async one: every critical section is a short synchronous SQLite call
    // that never awaits, and SQLite serialises writers anyway.
    fn conn(&self) -> Result<MutexGuard<'_, Conn>, Error> {
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

    fn replace_quarantine_sync(&self, q: &QuarantineRecord) -> Result<(), Error> {
        self.conn()?.write(|tx| {
            let record = serde_json::to_string(q).map_err(Error::Encode)?;
            let reasons = serde_json::to_string(&q.item.reasons).map_err(Error::Encode)?;
            let payload = serde_json::to_string(&q.item.payload).map_err(Error::Encode)?;
            tx.prepare_cached(
                "INSERT INTO quarantine (quarantine_id, batch_id, event_id, stage, reasons, payload, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(quarantine_id) DO UPDATE SET batch_id = ?2, event_id = ?3, stage = ?4,
                   reasons = ?5, payload = ?6, record = ?7",
            )?
            .execute(params![
                q.quarantine_id,
                q.batch_id,
                q.item.event_id,
                q.item.stage.as_str(),
                reasons,
                payload,
                record
            ])?;
            Ok(())
        })
    }

    fn list_quarantine_sync(&self) -> Result<Vec<QuarantineRecord>, Error> {
        let conn = self.conn()?;
        let rows: Vec<(String, String)> = conn
            .prepare_cached("SELECT quarantine_id, record FROM quarantine ORDER BY rowid")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        rows.iter().map(|(k, t)| decode(k, t)).collect()
    }

    /// Reads one record.
    pub fn get_event(&self, event_id: &str) -> Result<Option<EventRecord>, Error> {
        let conn = self.conn()?;
        read_event(&conn, event_id)
    }
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

/// One entity commit inside an open write transaction: checks every condition first and
/// answers `Conflict` having written nothing, or writes it all.
fn commit_in(conn: &Connection, commit: &EntityCommit) -> Result<EntityWrite, Error> {
    let state = &commit.state;
    let stored: u64 = conn
        .prepare_cached("SELECT version FROM entities WHERE entity_id = ?1")?
        .query_row([&state.entity_id], |r| r.get::<_, i64>(0))
        .optional()?
        .map_or(0, |v| v as u64);
    if stored + 1 != state.version {
        return Ok(EntityWrite::Conflict);
    }
    let mut exists = conn.prepare_cached("SELECT 1 FROM events WHERE event_id = ?1")?;
    for r in &commit.inserts {
        if exists.exists([&r.event_id])? {
            return Ok(EntityWrite::Conflict);
        }
    }
    for r in &commit.inserts {
        write_record(conn, r)?;
    }
    let text = serde_json::to_string(state).map_err(Error::Encode)?;
    conn.prepare_cached(
        "INSERT INTO entities (entity_id, version, state) VALUES (?1, ?2, ?3)
         ON CONFLICT(entity_id) DO UPDATE SET version = ?2, state = ?3",
    )?
    .execute(params![state.entity_id, state.version as i64, text])?;
    Ok(EntityWrite::Written)
}

impl SqliteStore {
    fn write_events_sync(&self, writes: Vec<EventWrite>) -> Result<Vec<WriteResult>, Error> {
        self.conn()?.write(|tx| {
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
                    write_record(tx, &w.record)?;
                    out.push(WriteResult::Written);
                } else {
                    let current = read_event(tx, &w.record.event_id)?.map(Box::new);
                    out.push(WriteResult::ConditionFailed { current });
                }
            }
            Ok(out)
        })
    }

    fn commit_entities_sync(&self, commits: &[EntityCommit]) -> Result<Vec<EntityWrite>, Error> {
        let mut conn = self.conn()?;
        let answers = conn.write(|tx| {
            let mut out = Vec::with_capacity(commits.len());
            for commit in commits {
                out.push(commit_in(tx, commit)?);
            }
            Ok(out)
        })?;
        for (commit, answer) in commits.iter().zip(&answers) {
            if *answer == EntityWrite::Written {
                conn.states.remember(&commit.state);
            }
        }
        Ok(answers)
    }

    fn get_entities_sync(&self, ids: &[String]) -> Result<HashMap<String, EntityState>, Error> {
        let mut conn = self.conn()?;
        let version: i64 = conn
            .db
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if conn.states.data_version != Some(version) {
            conn.states.map.clear();
            conn.states.data_version = Some(version);
        }
        let mut out = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match conn.states.map.get(id) {
                Some(state) => {
                    out.insert(id.clone(), state.clone());
                }
                None => missing.push(id.clone()),
            }
        }
        if !missing.is_empty() {
            let read: HashMap<String, EntityState> = read_map(
                &conn,
                "SELECT state FROM entities WHERE entity_id = ?1",
                &missing,
            )?;
            for state in read.values() {
                conn.states.remember(state);
            }
            out.extend(read);
        }
        Ok(out)
    }

    fn put_quarantine_sync(&self, items: &[QuarantineRecord]) -> Result<(), Error> {
        self.conn()?.write(|tx| {
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
        Ok(())
        })
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn get_events(&self, ids: &[String]) -> Result<HashMap<String, EventRecord>, CoreError> {
        Ok(self.get_map("SELECT record FROM events WHERE event_id = ?1", ids)?)
    }
    async fn write_events(&self, writes: Vec<EventWrite>) -> Result<Vec<WriteResult>, CoreError> {
        Ok(self.write_events_sync(writes)?)
    }
}

#[async_trait]
impl EntityStore for SqliteStore {
    async fn get_entities(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, EntityState>, CoreError> {
        Ok(self.get_entities_sync(ids)?)
    }
    async fn commit_entity(&self, commit: &EntityCommit) -> Result<EntityWrite, CoreError> {
        let mut answers = self.commit_entities_sync(std::slice::from_ref(commit))?;
        Ok(answers.pop().unwrap_or(EntityWrite::Conflict))
    }
    async fn commit_entities(
        &self,
        commits: &[EntityCommit],
    ) -> Result<Vec<EntityWrite>, CoreError> {
        Ok(self.commit_entities_sync(commits)?)
    }
}

#[async_trait]
impl QuarantineStore for SqliteStore {
    async fn put_quarantine(&self, items: &[QuarantineRecord]) -> Result<(), CoreError> {
        Ok(self.put_quarantine_sync(items)?)
    }
    async fn replace_quarantine(&self, record: &QuarantineRecord) -> Result<(), CoreError> {
        Ok(self.replace_quarantine_sync(record)?)
    }
    async fn scan_quarantine(&self) -> Result<Vec<QuarantineRecord>, CoreError> {
        Ok(self.list_quarantine_sync()?)
    }
    async fn scan_quarantine_of(&self, event_id: &str) -> Result<Vec<QuarantineRecord>, CoreError> {
        Ok(SqliteStore::quarantine_of(self, event_id)?)
    }
}

#[async_trait]
impl Batching for SqliteStore {
    async fn flush(&self) -> Result<(), CoreError> {
        Ok(self.conn()?.commit()?)
    }
    async fn end_batch(&self) -> Result<(), CoreError> {
        Ok(self.conn()?.end_batch()?)
    }
}

#[async_trait]
impl Inspect for SqliteStore {
    async fn list_anomalies(
        &self,
        entity_id: Option<&str>,
        limit: usize,
    ) -> Result<Listing, CoreError> {
        Ok(self.list_anomalies_sync(entity_id, limit)?)
    }
    async fn scan_all(&self) -> Result<StoreDump, CoreError> {
        Ok(self.dump_sync()?)
    }
}
