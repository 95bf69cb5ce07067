//! The storage boundary: what persistence and reference-data reads need from a database.
//!
//! Five small traits, one per part of a store ([`EventStore`], [`EntityStore`],
//! [`QuarantineStore`], [`Batching`], [`Inspect`]), and [`Store`], every type that has all
//! five: a stage names the part it uses, and a wrapper forwards what it does not change.
//!
//! The trait is shaped after DynamoDB's capabilities so that the embedded SQLite store and the
//! DynamoDB store implement the same semantics: batched reads by key, *conditional* single-item
//! writes that return the current item when the condition fails
//! (`ReturnValuesOnConditionCheckFailure`), and optimistic concurrency on entity state through
//! a version number. New events are written together with the entity state that absorbs them,
//! all or nothing ([`EntityStore::commit_entity`]: one SQLite transaction, one DynamoDB
//! `TransactWriteItems`), which is what makes "counted exactly once" hold without any bound on
//! what happens between a crash and its retry. The decision of *what* to write lives in [`crate::persist`], not in the
//! stores, so both behave identically; the contract test suite in `tests/` runs against every
//! implementation.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::batch::Quarantined;
use crate::detect::{Detection, EntityState};
use crate::enrich::Enrichment;
use crate::event::{Event, Provenance};

/// The names of the DynamoDB store's three tables (the embedded store keeps all three in one file
/// and ignores them). Plain names, so that configuration can carry them without the AWS SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// Event records, keyed by `event_id`.
    pub events: String,
    /// Entity state, keyed by `entity_id`.
    pub entities: String,
    /// Quarantine records, keyed by `quarantine_id`.
    pub quarantine: String,
}

/// The default events table: what the CLI's `--events-table` and `EVENTS_TABLE` default to.
pub const DEFAULT_EVENTS_TABLE: &str = "pipeline-events";
/// The default entities table.
pub const DEFAULT_ENTITIES_TABLE: &str = "pipeline-entities";
/// The default quarantine table.
pub const DEFAULT_QUARANTINE_TABLE: &str = "pipeline-quarantine";

impl Default for Tables {
    /// [`DEFAULT_EVENTS_TABLE`], [`DEFAULT_ENTITIES_TABLE`], [`DEFAULT_QUARANTINE_TABLE`]:
    /// the tables of prefix `pipeline`.
    fn default() -> Self {
        Tables {
            events: DEFAULT_EVENTS_TABLE.to_owned(),
            entities: DEFAULT_ENTITIES_TABLE.to_owned(),
            quarantine: DEFAULT_QUARANTINE_TABLE.to_owned(),
        }
    }
}

impl Tables {
    /// `<prefix>-events`, `<prefix>-entities`, `<prefix>-quarantine`.
    pub fn with_prefix(prefix: &str) -> Self {
        Tables {
            events: format!("{prefix}-events"),
            entities: format!("{prefix}-entities"),
            quarantine: format!("{prefix}-quarantine"),
        }
    }
}

/// How the current version of a stored record came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// First written.
    Persisted,
    /// Replaced by a higher version.
    Updated,
}

/// One stored event: the unit of idempotency, keyed by `event_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The key.
    pub event_id: String,
    /// The entity (anomaly index partition).
    pub entity_id: String,
    /// Event version stored.
    pub version: u32,
    /// Hex xxh3 of the event's content (see [`Event::content_hash`]).
    pub content_hash: String,
    /// How this version was written.
    pub status: RecordStatus,
    /// Event time in UTC, RFC 3339 with milliseconds (sorts as text: the anomaly index sort key).
    pub occurred_at: String,
    /// The event as received.
    pub event: Event,
    /// What enrich added.
    pub enrichment: Enrichment,
    /// What detect concluded.
    pub detection: Detection,
    /// Where it came from.
    pub provenance: Provenance,
    /// When the first version was written (stored to the millisecond).
    #[serde(with = "millis")]
    pub first_persisted_at: DateTime<Utc>,
    /// When the current version was written (stored to the millisecond).
    #[serde(with = "millis")]
    pub last_persisted_at: DateTime<Utc>,
}

/// RFC 3339 timestamps to the millisecond: nanosecond digits cost item size on every record.
mod millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// The condition under which a record write may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCondition {
    /// No record with this `event_id` exists.
    Absent,
    /// The stored record has exactly this version (a replacement by a higher version).
    VersionIs(u32),
}

/// A conditional record write.
#[derive(Debug, Clone, PartialEq)]
pub struct EventWrite {
    /// The record to write.
    pub record: EventRecord,
    /// When it may be written.
    pub condition: WriteCondition,
}

/// What happened to one conditional write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteResult {
    /// The condition held and the record is written.
    Written,
    /// The condition did not hold; `current` is what the store holds now.
    ConditionFailed {
        /// The stored record, if any.
        current: Option<Box<EventRecord>>,
    },
}

/// One entity's share of a batch, written all or nothing by [`EntityStore::commit_entity`]: its new
/// state and the records of the new events folded into it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityCommit {
    /// The state after absorbing `inserts`; written if the stored version is
    /// `state.version − 1` (absent counts as 0).
    pub state: EntityState,
    /// Records written if no record with their `event_id` exists.
    pub inserts: Vec<EventRecord>,
}

/// How much one [`EntityCommit`] may carry (DynamoDB: 100 items and 4 MB per transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitLimits {
    /// Most records in one commit.
    pub max_records: usize,
    /// Most bytes of records (as JSON) in one commit.
    pub max_bytes: usize,
}

impl CommitLimits {
    /// No limit (one SQLite transaction can hold anything).
    pub const UNBOUNDED: CommitLimits = CommitLimits {
        max_records: usize::MAX,
        max_bytes: usize::MAX,
    };
}

/// What happened to an entity commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityWrite {
    /// Everything was written.
    Written,
    /// Nothing was written: the entity's version moved, or one of the records exists.
    Conflict,
}

/// A quarantined event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    /// Stable id (see [`Quarantined::quarantine_id`]): quarantining twice overwrites the same item.
    pub quarantine_id: String,
    /// The batch it was found in.
    pub batch_id: String,
    /// When it was quarantined.
    pub quarantined_at: DateTime<Utc>,
    /// When the entry may be deleted (epoch seconds; the DynamoDB table's TTL attribute), from
    /// [`crate::persist::PersistConfig::quarantine_retention`]. `None`: kept until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The last replay of the entry (`pipeline replay`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<Replay>,
    /// The entry itself: stage, reasons, original payload, provenance.
    pub item: Quarantined,
}

/// Sorts quarantine entries oldest first, then by id: the order
/// [`QuarantineStore::list_quarantine`] and [`QuarantineStore::quarantine_of`] answer in.
pub fn oldest_first(entries: &mut [QuarantineRecord]) {
    entries.sort_by(|a, b| {
        (a.quarantined_at, &a.quarantine_id).cmp(&(b.quarantined_at, &b.quarantine_id))
    });
}

/// What the last replay of a quarantine entry did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Its outcome: `persisted`, `duplicate`, `updated` or `stale` (the event is stored now),
    /// or `quarantined` (it failed again; the entry holds the new reasons).
    pub status: crate::outcome::Status,
    /// The batch id it ran under (`replay-<quarantine_id>`).
    pub batch_id: String,
}

/// Everything a store holds, in key order: for tests and for `pipeline` inspection.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StoreDump {
    /// Records by `event_id`.
    pub events: Vec<EventRecord>,
    /// Entity states by `entity_id`.
    pub entities: Vec<EntityState>,
    /// Quarantine records by id.
    pub quarantine: Vec<QuarantineRecord>,
    /// Documents that did not decode, as `table: error` (the error names the key): skipped, so that one bad document
    /// never hides the others, and reported here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

impl StoreDump {
    /// Sorts each table by its key: the one order every store's [`Inspect::dump`] gives.
    pub fn in_key_order(mut self) -> Self {
        self.events.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        self.entities.sort_by(|a, b| a.entity_id.cmp(&b.entity_id));
        self.quarantine
            .sort_by(|a, b| a.quarantine_id.cmp(&b.quarantine_id));
        self
    }
}

/// Records an inspection read returned, and the documents it skipped because they did not
/// decode (`table: error`), so that one bad document never hides the others.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listing {
    /// The records that decoded.
    pub records: Vec<EventRecord>,
    /// The documents that did not.
    pub unreadable: Vec<String>,
}

/// Splits decoded documents of `table` into the values and descriptions (`table: error`, the
/// error naming the key) of those that did not decode.
pub fn readable<T, E: std::fmt::Display>(
    table: &str,
    decoded: impl IntoIterator<Item = Result<T, E>>,
    unreadable: &mut Vec<String>,
) -> Vec<T> {
    let mut out = Vec::new();
    for r in decoded {
        match r {
            Ok(v) => out.push(v),
            Err(e) => unreadable.push(format!("{table}: {e}")),
        }
    }
    out
}

/// Event records by `event_id`: what persist reads and conditionally writes.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Reads the stored records of these ids (missing ids are absent from the map).
    async fn get_events(&self, ids: &[String]) -> Result<HashMap<String, EventRecord>, Error>;

    /// Performs each write if its condition holds; one result per write, in order. Writes are
    /// independent: one failing its condition does not stop the others.
    async fn write_events(&self, writes: Vec<EventWrite>) -> Result<Vec<WriteResult>, Error>;
}

/// Entity state by `entity_id`: what detect reads, and what persist commits together
/// with the records that change it.
#[async_trait]
pub trait EntityStore: Send + Sync {
    /// Reads the stored state of these entities (missing ones are absent from the map).
    async fn get_entities(&self, ids: &[String]) -> Result<HashMap<String, EntityState>, Error>;

    /// Writes the commit's state and records atomically, if the stored state's version is
    /// `state.version − 1` (absent counts as 0) and none of the records exists; otherwise
    /// writes nothing and answers [`EntityWrite::Conflict`].
    async fn commit_entity(&self, commit: &EntityCommit) -> Result<EntityWrite, Error>;

    /// Several [`EntityStore::commit_entity`]s of different entities, in order, one answer per
    /// commit. Each is all-or-nothing on its own; one answering [`EntityWrite::Conflict`] does
    /// not stop the others. A store may write them together (SQLite: one transaction, each
    /// commit's conditions checked before it writes), which is what makes a local batch cost
    /// one transaction instead of one per entity, or run them concurrently (DynamoDB). On an
    /// error, any of the commits may have been written: the caller re-reads and decides again,
    /// as after any failed commit.
    async fn commit_entities(&self, commits: &[EntityCommit]) -> Result<Vec<EntityWrite>, Error> {
        let mut out = Vec::with_capacity(commits.len());
        for c in commits {
            out.push(self.commit_entity(c).await?);
        }
        Ok(out)
    }

    /// How much one [`EntityStore::commit_entity`] may carry.
    fn commit_limits(&self) -> CommitLimits {
        CommitLimits::UNBOUNDED
    }
}

/// Quarantine entries by `quarantine_id`. Stores implement the unordered scans; the listings'
/// order ([`oldest_first`]) is the trait's, the same for every store.
#[async_trait]
pub trait QuarantineStore: Send + Sync {
    /// Stores quarantine records (idempotent by `quarantine_id`).
    async fn put_quarantine(&self, items: &[QuarantineRecord]) -> Result<(), Error>;

    /// Overwrites the quarantine entry of `record.quarantine_id` (or writes it): how a replay
    /// marks an entry with its outcome. Unlike [`QuarantineStore::put_quarantine`], the new
    /// content wins.
    async fn replace_quarantine(&self, record: &QuarantineRecord) -> Result<(), Error>;

    /// Every quarantine entry, in whatever order the store reads them.
    async fn scan_quarantine(&self) -> Result<Vec<QuarantineRecord>, Error>;

    /// The quarantine entries carrying this `event_id`, in any order.
    async fn scan_quarantine_of(&self, event_id: &str) -> Result<Vec<QuarantineRecord>, Error>;

    /// Every quarantine entry, oldest first (then by id): what `pipeline replay` chooses from.
    async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>, Error> {
        let mut all = self.scan_quarantine().await?;
        oldest_first(&mut all);
        Ok(all)
    }

    /// The quarantine entries carrying this `event_id`, oldest first (then by id).
    async fn quarantine_of(&self, event_id: &str) -> Result<Vec<QuarantineRecord>, Error> {
        let mut records = self.scan_quarantine_of(event_id).await?;
        oldest_first(&mut records);
        Ok(records)
    }
}

/// When writes become durable: stores that write through (DynamoDB) have nothing to do.
#[async_trait]
pub trait Batching: Send + Sync {
    /// Makes everything earlier calls wrote durable. The embedded store with group commit
    /// commits its open transaction. A process that ends without it may lose the unflushed
    /// writes, whole.
    async fn flush(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Called by the persist stage when every write of one batch has been made. A store that
    /// lets writes share a transaction (the embedded store with group commit) ends one only
    /// here or in [`Batching::flush`], never between two writes of a batch: a crash then keeps
    /// whole batches or nothing of them, so a rerun enriches and scores every event it redoes
    /// against the same entity states a clean run did.
    async fn end_batch(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// Reads for people and tests: anomaly listings and whole-store dumps.
#[async_trait]
pub trait Inspect: Send + Sync {
    /// Anomalous records, newest event time first, optionally of one entity; a record that
    /// does not decode is skipped and named in [`Listing::unreadable`]. (The order is each
    /// store's to apply: the embedded store answers it with `ORDER BY … LIMIT` in SQL.)
    async fn list_anomalies(&self, entity_id: Option<&str>, limit: usize)
    -> Result<Listing, Error>;

    /// Everything, in whatever order the store reads it; documents that do not decode are
    /// skipped and named in [`StoreDump::unreadable`].
    async fn scan_all(&self) -> Result<StoreDump, Error>;

    /// Everything, in key order ([`StoreDump::in_key_order`], the same for every store).
    async fn dump(&self) -> Result<StoreDump, Error> {
        Ok(self.scan_all().await?.in_key_order())
    }
}

/// A whole store: records, entities, quarantine, batching and inspection. A stage or function
/// that needs only part of it names that part instead ([`EntityStore`] for enrich and detect);
/// every type implementing the five parts is a `Store`.
pub trait Store: EventStore + EntityStore + QuarantineStore + Batching + Inspect {}

impl<T: EventStore + EntityStore + QuarantineStore + Batching + Inspect + ?Sized> Store for T {}

// Shared stores: several pipelines (or concurrent tasks) can use one store through an `Arc`.
#[async_trait]
impl<T: EventStore + ?Sized> EventStore for std::sync::Arc<T> {
    async fn get_events(&self, ids: &[String]) -> Result<HashMap<String, EventRecord>, Error> {
        (**self).get_events(ids).await
    }
    async fn write_events(&self, writes: Vec<EventWrite>) -> Result<Vec<WriteResult>, Error> {
        (**self).write_events(writes).await
    }
}

#[async_trait]
impl<T: EntityStore + ?Sized> EntityStore for std::sync::Arc<T> {
    async fn get_entities(&self, ids: &[String]) -> Result<HashMap<String, EntityState>, Error> {
        (**self).get_entities(ids).await
    }
    async fn commit_entity(&self, commit: &EntityCommit) -> Result<EntityWrite, Error> {
        (**self).commit_entity(commit).await
    }
    async fn commit_entities(&self, commits: &[EntityCommit]) -> Result<Vec<EntityWrite>, Error> {
        (**self).commit_entities(commits).await
    }
    fn commit_limits(&self) -> CommitLimits {
        (**self).commit_limits()
    }
}

#[async_trait]
impl<T: QuarantineStore + ?Sized> QuarantineStore for std::sync::Arc<T> {
    async fn put_quarantine(&self, items: &[QuarantineRecord]) -> Result<(), Error> {
        (**self).put_quarantine(items).await
    }
    async fn replace_quarantine(&self, record: &QuarantineRecord) -> Result<(), Error> {
        (**self).replace_quarantine(record).await
    }
    async fn scan_quarantine(&self) -> Result<Vec<QuarantineRecord>, Error> {
        (**self).scan_quarantine().await
    }
    async fn scan_quarantine_of(&self, event_id: &str) -> Result<Vec<QuarantineRecord>, Error> {
        (**self).scan_quarantine_of(event_id).await
    }
}

#[async_trait]
impl<T: Batching + ?Sized> Batching for std::sync::Arc<T> {
    async fn flush(&self) -> Result<(), Error> {
        (**self).flush().await
    }
    async fn end_batch(&self) -> Result<(), Error> {
        (**self).end_batch().await
    }
}

#[async_trait]
impl<T: Inspect + ?Sized> Inspect for std::sync::Arc<T> {
    async fn list_anomalies(
        &self,
        entity_id: Option<&str>,
        limit: usize,
    ) -> Result<Listing, Error> {
        (**self).list_anomalies(entity_id, limit).await
    }
    async fn scan_all(&self) -> Result<StoreDump, Error> {
        (**self).scan_all().await
    }
}
