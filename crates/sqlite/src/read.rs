//! Reading the store: one record, many by id, the anomalies, a whole store row by row, and
//! a dump; documents decode here, and one that does not decode is named, not fatal, where a
//! read lists many.

use std::collections::HashMap;

use pipeline_core::store::{EventRecord, Listing, StoreDump, readable};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Conn, Error, SqliteStore};

pub(crate) fn read_event(conn: &Connection, event_id: &str) -> Result<Option<EventRecord>, Error> {
    let text: Option<String> = conn
        .prepare_cached("SELECT record FROM events WHERE event_id = ?1")?
        .query_row([event_id], |r| r.get(0))
        .optional()?;
    text.map(|t| decode(event_id, &t)).transpose()
}

/// Each row's document decoded.
pub(crate) fn decoded<T: serde::de::DeserializeOwned>(
    rows: &[(String, String)],
) -> impl Iterator<Item = Result<T, Error>> + '_ {
    rows.iter().map(|(k, t)| decode(k, t))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|source| Error::Decode {
        key: key.to_owned(),
        source,
    })
}

impl SqliteStore {
    pub(crate) fn list_anomalies_sync(
        &self,
        entity_id: Option<&str>,
        limit: usize,
    ) -> Result<Listing, Error> {
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
        let mut unreadable = Vec::new();
        let records = readable("events", decoded(&rows), &mut unreadable);
        Ok(Listing {
            records,
            unreadable,
        })
    }

    /// Calls `f` with every stored record, or with those of `entities` only, in `event_id`
    /// order, decoding one row at a time (a row that does not decode is passed as its error):
    /// what reads a whole store without holding it (`pipeline report` on millions of records).
    pub fn each_event(
        &self,
        entities: Option<&[String]>,
        f: &mut dyn FnMut(Result<EventRecord, Error>),
    ) -> Result<(), Error> {
        let conn = self.conn()?;
        let mut visit = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<(), Error> {
            let mut stmt = conn.db.prepare(sql)?;
            let mut rows = stmt.query(params)?;
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                let text: String = row.get(1)?;
                f(decode(&key, &text));
            }
            Ok(())
        };
        match entities {
            None => visit("SELECT event_id, record FROM events ORDER BY event_id", &[]),
            Some(ids) => {
                // Bounded lists of parameters (SQLite allows 32766 per statement).
                for chunk in ids.chunks(500) {
                    let marks = vec!["?"; chunk.len()].join(", ");
                    let sql = format!(
                        "SELECT event_id, record FROM events WHERE entity_id IN ({marks}) \
                         ORDER BY event_id"
                    );
                    let params: Vec<&dyn rusqlite::ToSql> =
                        chunk.iter().map(|id| id as &dyn rusqlite::ToSql).collect();
                    visit(&sql, &params)?;
                }
                Ok(())
            }
        }
    }

    pub(crate) fn dump_sync(&self) -> Result<StoreDump, Error> {
        let conn = self.conn()?;
        let rows = |sql: &str| -> Result<Vec<(String, String)>, Error> {
            Ok(conn
                .prepare(sql)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?)
        };
        let mut unreadable = Vec::new();
        let events = rows("SELECT event_id, record FROM events ORDER BY event_id")?;
        let entities = rows("SELECT entity_id, state FROM entities ORDER BY entity_id")?;
        let quarantine =
            rows("SELECT quarantine_id, record FROM quarantine ORDER BY quarantine_id")?;
        Ok(StoreDump {
            events: readable("events", decoded(&events), &mut unreadable),
            entities: readable("entities", decoded(&entities), &mut unreadable),
            quarantine: readable("quarantine", decoded(&quarantine), &mut unreadable),
            unreadable,
        })
    }

    pub(crate) fn get_map<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        ids: &[String],
    ) -> Result<HashMap<String, T>, Error> {
        read_map(&*self.conn()?, sql, ids)
    }
}

/// Reads the documents of `ids` with `sql` (one id parameter).
pub(crate) fn read_map<T: serde::de::DeserializeOwned>(
    conn: &Conn,
    sql: &str,
    ids: &[String],
) -> Result<HashMap<String, T>, Error> {
    // One read transaction for all the ids: one snapshot, and one pair of file-lock calls
    // instead of a pair per id (which dominated a local run's system time). Inside an open
    // write transaction the reads simply join it.
    let tx = if conn.in_write() {
        None
    } else {
        Some(conn.db.unchecked_transaction()?)
    };
    let mut out = HashMap::with_capacity(ids.len());
    {
        let mut stmt = conn.db.prepare_cached(sql)?;
        for id in ids {
            if out.contains_key(id) {
                continue;
            }
            let text: Option<String> = stmt.query_row([id], |r| r.get(0)).optional()?;
            if let Some(t) = text {
                out.insert(id.clone(), decode(id, &t)?);
            }
        }
    }
    if let Some(tx) = tx {
        tx.commit()?;
    }
    Ok(out)
}
