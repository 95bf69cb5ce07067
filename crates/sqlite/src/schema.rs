//! The tables of the store, and the check that an existing database is one (so that a
//! foreign SQLite file is refused before anything in it changes).

use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::{BUSY_TIMEOUT_MS, Error};

/// Settings of the connection and the file (WAL); they cannot run inside a transaction.
pub(crate) const PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA cache_size = -65536;
PRAGMA wal_autocheckpoint = 8192;
";

/// The tables and indexes, created in one transaction, so that another process opening the
/// file at the same time sees all of them or none (never a store with a table missing). The
/// transaction is deferred: on a store that has them all it writes nothing and takes no write
/// lock, so opening a store does not wait for a run that is writing to it.
pub(crate) const SCHEMA: &str = "
BEGIN;
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
DROP INDEX IF EXISTS events_anomalies;
DROP INDEX IF EXISTS events_anomalies_by_time;
CREATE INDEX IF NOT EXISTS anomalies_by_entity ON events (entity_id, occurred_at) WHERE is_anomaly = 1;
CREATE INDEX IF NOT EXISTS anomalies_by_time ON events (occurred_at) WHERE is_anomaly = 1;
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
COMMIT;
";

/// The tables of the store and a column each must have.
const STORE_TABLES: [(&str, &str); 3] = [
    ("events", "record"),
    ("entities", "state"),
    ("quarantine", "record"),
];

/// Refuses a database that is not this store: with `empty_ok`, an empty one (a new file) is
/// fine; otherwise the three tables must be there. Reads only the catalogue, so a foreign
/// file is left exactly as it was.
pub(crate) fn check_is_store(conn: &Connection, empty_ok: bool) -> Result<(), Error> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if tables.is_empty() && empty_ok {
        return Ok(());
    }
    for (table, column) in STORE_TABLES {
        if !tables.iter().any(|t| t == table) {
            return Err(Error::NotAStore(format!("it has no {table} table")));
        }
        let has: bool = conn
            .prepare(&format!(
                "SELECT count(*) FROM pragma_table_info('{table}') WHERE name = ?1"
            ))?
            .query_row([column], |r| r.get::<_, i64>(0))?
            > 0;
        if !has {
            return Err(Error::NotAStore(format!(
                "its {table} table has no {column} column"
            )));
        }
    }
    Ok(())
}

/// Creates what is missing of the store in the open database (settings, then tables).
pub(crate) fn create(conn: &Connection) -> Result<(), Error> {
    // Two processes opening a new file at once race to switch it to WAL, and SQLite
    // answers the loser with "database is locked" at once, without waiting through the
    // busy timeout: try again until the timeout would have run out. Both batches can be
    // run again (settings, and tables `IF NOT EXISTS` in one transaction).
    let deadline = Instant::now() + Duration::from_millis(BUSY_TIMEOUT_MS);
    for batch in [PRAGMAS, SCHEMA] {
        loop {
            match conn.execute_batch(batch) {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if matches!(
                        f.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && Instant::now() < deadline =>
                {
                    if !conn.is_autocommit() {
                        conn.execute_batch("ROLLBACK")?;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
