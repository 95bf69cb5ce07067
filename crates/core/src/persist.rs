//! Stage 4, persist: decide what to write, write it conditionally, and fold new events into
//! entity state exactly once.
//!
//! # What is written
//! [`decide`] compares an incoming event with the stored record of the same `event_id`:
//!
//! | stored                         | outcome      | write                         |
//! |--------------------------------|--------------|-------------------------------|
//! | none                           | `persisted`  | insert, if still absent        |
//! | same version, same content     | `duplicate`  | none                           |
//! | lower version                  | `updated`    | replace, if version unchanged  |
//! | higher version                 | `stale`      | none                           |
//! | same version, other content    | `conflict`   | none; the event is quarantined |
//!
//! Writes are conditional, so a concurrent writer can make a condition fail; the store then
//! returns the current record and the decision is taken again against it.
//!
//! # Entity state, exactly once
//! Only events decided `persisted` touch entity state (a correction replaces the record but is
//! not counted again). For each entity the state is read, the new events are folded in with the
//! same [`crate::detect::observe`] the detect stage uses, and it is written once, conditional on
//! its version (optimistic concurrency, re-read and retry on conflict, bounded). The state
//! remembers the ids of the last events it absorbed, so an event is never absorbed twice even
//! when a concurrent writer or a crashed earlier attempt already absorbed it.
//!
//! The state is written *before* the records: if the process dies between the two, the
//! redelivered batch finds the records absent, writes them, and finds the events already in
//! the state's recent ids (the guarantee holds while fewer than
//! [`crate::detect::RECENT_IDS`] newer events of that entity arrive in between). Writing the
//! records first would instead lose the events from the statistics for good.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::batch::{Batch, Quarantined, Reason, Stage};
use crate::detect::{DetectConfig, Observation, ScoredEvent, observe};
use crate::store::{
    EntityWrite, EventRecord, EventWrite, QuarantineRecord, RecordStatus, Store, WriteCondition,
    WriteResult,
};

/// The outcome of one event, as reported per event and counted in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A new record was written.
    Persisted,
    /// The same event was already stored: nothing written.
    Duplicate,
    /// A higher version replaced the stored record.
    Updated,
    /// A higher version is already stored: nothing written.
    Stale,
    /// Same version, different content: quarantined, nothing overwritten.
    Conflict,
    /// Failed a stage: quarantined.
    Quarantined,
}

impl Status {
    /// All statuses, in report order.
    pub const ALL: [Status; 6] = [
        Status::Persisted,
        Status::Duplicate,
        Status::Updated,
        Status::Stale,
        Status::Conflict,
        Status::Quarantined,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Persisted => "persisted",
            Status::Duplicate => "duplicate",
            Status::Updated => "updated",
            Status::Stale => "stale",
            Status::Conflict => "conflict",
            Status::Quarantined => "quarantined",
        }
    }
}

/// The decision for one event against what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write it new.
    Insert,
    /// Replace the stored version.
    Replace {
        /// The stored version the write is conditional on.
        stored_version: u32,
    },
    /// Nothing to write.
    Skip(Status),
}

/// Decides what to do with an event of `version` and `content_hash` given the stored record.
pub fn decide(stored: Option<&EventRecord>, version: u32, content_hash: &str) -> Decision {
    match stored {
        None => Decision::Insert,
        Some(s) if s.version < version => Decision::Replace {
            stored_version: s.version,
        },
        Some(s) if s.version > version => Decision::Skip(Status::Stale),
        Some(s) if s.content_hash == content_hash => Decision::Skip(Status::Duplicate),
        Some(_) => Decision::Skip(Status::Conflict),
    }
}

/// Persistence settings.
#[derive(Debug, Clone)]
pub struct PersistConfig {
    /// Detection settings, to fold events into entity state as detect does.
    pub detect: DetectConfig,
    /// Attempts at an entity's conditional state write before giving up (retryable).
    pub max_entity_attempts: u32,
}

impl Default for PersistConfig {
    fn default() -> Self {
        PersistConfig {
            detect: DetectConfig::default(),
            max_entity_attempts: 8,
        }
    }
}

/// One event's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The event id (absent for payloads too broken to carry one).
    pub event_id: Option<String>,
    /// The entity, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// What happened.
    pub status: Status,
    /// The stored (or, for conflicts, computed) score.
    pub score: Option<f64>,
    /// Whether the stored record is an anomaly.
    pub is_anomaly: bool,
    /// Detection reasons, or quarantine reasons for `quarantined` and `conflict`.
    pub reasons: Vec<Value>,
}

/// Counts that reconcile: `input = persisted + duplicate + updated + stale + conflict + quarantined`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Events that entered at ingest.
    pub input: usize,
    /// New records.
    pub persisted: usize,
    /// Already stored, unchanged.
    pub duplicate: usize,
    /// Replaced by a higher version.
    pub updated: usize,
    /// Older than what is stored.
    pub stale: usize,
    /// Same version, other content.
    pub conflict: usize,
    /// Failed a stage.
    pub quarantined: usize,
    /// Anomalies among persisted and updated events.
    pub anomalies: usize,
}

impl Counts {
    /// Adds one outcome.
    pub fn add(&mut self, status: Status) {
        match status {
            Status::Persisted => self.persisted += 1,
            Status::Duplicate => self.duplicate += 1,
            Status::Updated => self.updated += 1,
            Status::Stale => self.stale += 1,
            Status::Conflict => self.conflict += 1,
            Status::Quarantined => self.quarantined += 1,
        }
    }

    /// The sum of all outcomes.
    pub fn accounted(&self) -> usize {
        self.persisted
            + self.duplicate
            + self.updated
            + self.stale
            + self.conflict
            + self.quarantined
    }

    /// Adds another batch's counts.
    pub fn merge(&mut self, o: &Counts) {
        self.input += o.input;
        self.persisted += o.persisted;
        self.duplicate += o.duplicate;
        self.updated += o.updated;
        self.stale += o.stale;
        self.conflict += o.conflict;
        self.quarantined += o.quarantined;
        self.anomalies += o.anomalies;
    }
}

/// What persist did with a batch: the state machine's final output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistReport {
    /// The batch.
    pub batch_id: String,
    /// Totals.
    pub counts: Counts,
    /// Quarantined (and conflicting) events per reason code.
    pub quarantined_by_reason: BTreeMap<String, usize>,
    /// One outcome per input event: scored events first (input order), then quarantined ones.
    pub outcomes: Vec<Outcome>,
}

impl PersistReport {
    /// Outcomes to announce: anomalies whose record was newly written or updated.
    pub fn new_anomalies(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes
            .iter()
            .filter(|o| o.is_anomaly && matches!(o.status, Status::Persisted | Status::Updated))
    }
}

fn hex(h: u64) -> String {
    format!("{h:016x}")
}

fn reasons_json<T: Serialize>(reasons: &[T]) -> Vec<Value> {
    reasons
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect()
}

fn record_of(
    ev: &ScoredEvent,
    status: RecordStatus,
    now: DateTime<Utc>,
    first: Option<DateTime<Utc>>,
) -> EventRecord {
    EventRecord {
        event_id: ev.event.event_id.clone(),
        entity_id: ev.event.entity_id.clone(),
        version: ev.event.version,
        content_hash: hex(ev.event.content_hash()),
        status,
        // UTC with fixed-width milliseconds: sorts as text in SQLite and in a DynamoDB sort key.
        occurred_at: ev
            .event
            .occurred_at
            .with_timezone(&Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        event: ev.event.clone(),
        enrichment: ev.enrichment.clone(),
        detection: ev.detection.clone(),
        provenance: ev.provenance.clone(),
        first_persisted_at: first.unwrap_or(now),
        last_persisted_at: now,
    }
}

fn stored_outcome(status: Status, rec: &EventRecord) -> Outcome {
    Outcome {
        event_id: Some(rec.event_id.clone()),
        entity_id: Some(rec.entity_id.clone()),
        status,
        score: Some(rec.detection.score),
        is_anomaly: rec.detection.is_anomaly,
        reasons: reasons_json(&rec.detection.reasons),
    }
}

/// An anomaly to announce to consumers (the Lambda publishes it on EventBridge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    /// Consumers de-duplicate on this.
    pub event_id: String,
    /// The entity.
    pub entity_id: String,
    /// The event's type.
    pub event_type: String,
    /// Event time, UTC.
    pub occurred_at: String,
    /// The event's version.
    pub version: u32,
    /// `persisted` or `updated`.
    pub status: Status,
    /// The score.
    pub score: f64,
    /// What fired.
    pub reasons: Vec<crate::detect::DetectReason>,
    /// The value as sent.
    pub value: f64,
    /// Its currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The value in the base currency.
    pub base_value: f64,
}

/// Where new anomalies are announced.
#[async_trait::async_trait]
pub trait Announcer: Send + Sync {
    /// Publishes the anomalies; an error fails the batch before any record is written, so a
    /// retry announces again (consumers de-duplicate on `event_id`).
    async fn announce(&self, anomalies: &[Announcement]) -> Result<(), Error>;
}

/// Announces nothing (the CLI, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAnnouncer;

#[async_trait::async_trait]
impl Announcer for NoAnnouncer {
    async fn announce(&self, _: &[Announcement]) -> Result<(), Error> {
        Ok(())
    }
}

/// Runs the persist stage against `store` at time `now`, announcing nothing.
pub async fn persist<S: Store + ?Sized>(
    store: &S,
    batch: Batch<ScoredEvent>,
    cfg: &PersistConfig,
    now: DateTime<Utc>,
) -> Result<PersistReport, Error> {
    persist_and_announce(store, batch, cfg, now, &NoAnnouncer).await
}

/// Runs the persist stage and announces the anomalies it is about to write.
///
/// Anomalies are announced *before* their records are written: a crash in between leads to
/// the batch being redelivered and announced again (at least once, de-duplicated by consumers
/// on `event_id`), whereas announcing after the writes could lose an announcement for good,
/// since a redelivered batch finds its records already stored and announces nothing.
pub async fn persist_and_announce<S: Store + ?Sized>(
    store: &S,
    batch: Batch<ScoredEvent>,
    cfg: &PersistConfig,
    now: DateTime<Utc>,
    announcer: &dyn Announcer,
) -> Result<PersistReport, Error> {
    let ids: Vec<String> = batch
        .events
        .iter()
        .map(|e| e.event.event_id.clone())
        .collect();
    let hashes: Vec<String> = batch
        .events
        .iter()
        .map(|e| hex(e.event.content_hash()))
        .collect();
    let stored = if ids.is_empty() {
        HashMap::new()
    } else {
        store.get_events(&ids).await?
    };

    let mut decisions: Vec<Decision> = batch
        .events
        .iter()
        .zip(&hashes)
        .map(|(e, h)| decide(stored.get(&e.event.event_id), e.event.version, h))
        .collect();

    let announcements: Vec<Announcement> = batch
        .events
        .iter()
        .zip(&decisions)
        .filter(|(e, _)| e.detection.is_anomaly)
        .filter_map(|(e, d)| match d {
            Decision::Insert => Some(announcement(e, Status::Persisted)),
            Decision::Replace { .. } => Some(announcement(e, Status::Updated)),
            Decision::Skip(_) => None,
        })
        .collect();
    if !announcements.is_empty() {
        announcer.announce(&announcements).await?;
    }

    absorb_new_events(store, &batch.events, &decisions, cfg).await?;

    // Conditional record writes; a failed condition is decided again against what it returned.
    let mut final_status: Vec<Option<Status>> = vec![None; batch.events.len()];
    let mut current: Vec<Option<EventRecord>> = batch
        .events
        .iter()
        .map(|e| stored.get(&e.event.event_id).cloned())
        .collect();
    for _round in 0..3 {
        let mut idx = Vec::new();
        let mut writes = Vec::new();
        for (i, d) in decisions.iter().enumerate() {
            if final_status[i].is_some() {
                continue;
            }
            match *d {
                Decision::Skip(s) => final_status[i] = Some(s),
                Decision::Insert => {
                    idx.push(i);
                    writes.push(EventWrite {
                        record: record_of(&batch.events[i], RecordStatus::Persisted, now, None),
                        condition: WriteCondition::Absent,
                    });
                }
                Decision::Replace { stored_version } => {
                    idx.push(i);
                    let first = current[i].as_ref().map(|r| r.first_persisted_at);
                    writes.push(EventWrite {
                        record: record_of(&batch.events[i], RecordStatus::Updated, now, first),
                        condition: WriteCondition::VersionIs(stored_version),
                    });
                }
            }
        }
        if writes.is_empty() {
            break;
        }
        let results = store.write_events(writes).await?;
        for (i, r) in idx.into_iter().zip(results) {
            match r {
                WriteResult::Written => {
                    final_status[i] = Some(match decisions[i] {
                        Decision::Replace { .. } => Status::Updated,
                        _ => Status::Persisted,
                    })
                }
                WriteResult::ConditionFailed {
                    current: now_stored,
                } => {
                    let e = &batch.events[i].event;
                    decisions[i] = decide(now_stored.as_deref(), e.version, &hashes[i]);
                    current[i] = now_stored.map(|b| *b);
                }
            }
        }
    }

    let mut counts = Counts {
        input: batch.input_count,
        ..Counts::default()
    };
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(batch.input_count);
    let mut quarantine: Vec<QuarantineRecord> = Vec::new();
    for (i, ev) in batch.events.iter().enumerate() {
        let Some(status) = final_status[i] else {
            return Err(Error::EntityContended {
                entity_id: ev.event.entity_id.clone(),
                attempts: 3,
            });
        };
        counts.add(status);
        let outcome = match status {
            Status::Persisted | Status::Updated => {
                if ev.detection.is_anomaly {
                    counts.anomalies += 1;
                }
                Outcome {
                    event_id: Some(ev.event.event_id.clone()),
                    entity_id: Some(ev.event.entity_id.clone()),
                    status,
                    score: Some(ev.detection.score),
                    is_anomaly: ev.detection.is_anomaly,
                    reasons: reasons_json(&ev.detection.reasons),
                }
            }
            Status::Duplicate | Status::Stale => match &current[i] {
                Some(rec) => stored_outcome(status, rec),
                None => stored_outcome(status, &record_of(ev, RecordStatus::Persisted, now, None)),
            },
            Status::Conflict | Status::Quarantined => {
                let stored_hash = current[i]
                    .as_ref()
                    .map(|r| r.content_hash.clone())
                    .unwrap_or_default();
                let reason = Reason::at(
                    "conflict",
                    "/event_id",
                    format!(
                        "event_id {:?} version {} is already stored with different content (stored {stored_hash}, received {}); not overwritten",
                        ev.event.event_id, ev.event.version, hashes[i]
                    ),
                );
                *by_reason.entry("conflict".into()).or_default() += 1;
                let q = Quarantined::typed(
                    &ev.event,
                    ev.provenance.clone(),
                    Stage::Persist,
                    vec![reason.clone()],
                );
                quarantine.push(QuarantineRecord {
                    quarantine_id: q.quarantine_id(),
                    batch_id: batch.batch_id.clone(),
                    quarantined_at: now,
                    item: q,
                });
                Outcome {
                    event_id: Some(ev.event.event_id.clone()),
                    entity_id: Some(ev.event.entity_id.clone()),
                    status: Status::Conflict,
                    score: Some(ev.detection.score),
                    is_anomaly: false,
                    reasons: reasons_json(&[reason]),
                }
            }
        };
        outcomes.push(outcome);
    }
    for q in &batch.quarantine {
        counts.add(Status::Quarantined);
        let mut codes: Vec<&str> = q.reasons.iter().map(|r| r.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        for c in codes {
            *by_reason.entry(c.to_owned()).or_default() += 1;
        }
        outcomes.push(Outcome {
            event_id: q.event_id.clone(),
            entity_id: q
                .payload
                .get("entity_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            status: Status::Quarantined,
            score: None,
            is_anomaly: false,
            reasons: reasons_json(&q.reasons),
        });
        quarantine.push(QuarantineRecord {
            quarantine_id: q.quarantine_id(),
            batch_id: batch.batch_id.clone(),
            quarantined_at: now,
            item: q.clone(),
        });
    }
    if !quarantine.is_empty() {
        store.put_quarantine(&quarantine).await?;
    }
    Ok(PersistReport {
        batch_id: batch.batch_id,
        counts,
        quarantined_by_reason: by_reason,
        outcomes,
    })
}

fn announcement(e: &ScoredEvent, status: Status) -> Announcement {
    Announcement {
        event_id: e.event.event_id.clone(),
        entity_id: e.event.entity_id.clone(),
        event_type: e.event.event_type.clone(),
        occurred_at: e
            .event
            .occurred_at
            .with_timezone(&Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        version: e.event.version,
        status,
        score: e.detection.score,
        reasons: e.detection.reasons.clone(),
        value: e.event.value,
        currency: e.event.currency.clone(),
        base_value: e.enrichment.base_value,
    }
}

/// The error a state reported, as Step Functions' `Catch` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateError {
    /// The error name (e.g. `Pipeline.Fatal.BadBatch`, `States.Timeout`).
    #[serde(rename = "Error")]
    pub error: String,
    /// The cause (often the function's error JSON).
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

/// A batch that failed a stage for good, as the state machine hands it to the quarantine path:
/// the failing state's input document plus `error` and `failed_stage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedBatch {
    /// The batch.
    pub batch_id: String,
    /// When ingest received it.
    pub received_at: DateTime<Utc>,
    /// Events that entered at ingest.
    pub input_count: usize,
    /// The in-flight events, in whatever stage shape they had.
    #[serde(default)]
    pub events: Vec<Value>,
    /// Earlier quarantine entries.
    #[serde(default)]
    pub quarantine: Vec<Quarantined>,
    /// Why the stage failed.
    pub error: StateError,
    /// Which stage failed.
    #[serde(default)]
    pub failed_stage: Option<Stage>,
}

impl FailedBatch {
    /// Whether a JSON document is a failed batch (rather than a scored batch).
    pub fn is_failed_batch(doc: &Value) -> bool {
        doc.get("error").is_some_and(|e| e.get("Error").is_some())
    }
}

/// The quarantine path: every in-flight event of a failed batch is quarantined with the error,
/// together with the batch's earlier quarantine entries. Nothing is lost.
pub async fn quarantine_failed_batch<S: Store + ?Sized>(
    store: &S,
    failed: FailedBatch,
    now: DateTime<Utc>,
) -> Result<PersistReport, Error> {
    let stage = failed.failed_stage.unwrap_or(Stage::Persist);
    let mut cause: String = failed.error.cause.chars().take(2000).collect();
    if cause.len() < failed.error.cause.len() {
        cause.push('…');
    }
    let reason = Reason::new(
        "stage_failed",
        format!(
            "stage {} failed for the whole batch: {}: {cause}",
            stage.as_str(),
            failed.error.error
        ),
    );
    let mut quarantine = failed.quarantine;
    for v in failed.events {
        let (payload, provenance) = match (v.get("payload"), v.get("event")) {
            (Some(p), _) => (p.clone(), v.get("provenance").cloned()),
            (None, Some(e)) => (e.clone(), v.get("provenance").cloned()),
            _ => (v.clone(), None),
        };
        quarantine.push(Quarantined {
            event_id: payload
                .get("event_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            stage,
            reasons: vec![reason.clone()],
            payload,
            provenance: provenance
                .and_then(|p| serde_json::from_value(p).ok())
                .unwrap_or_default(),
        });
    }
    let batch: Batch<ScoredEvent> = Batch {
        batch_id: failed.batch_id,
        received_at: failed.received_at,
        input_count: failed.input_count,
        events: Vec::new(),
        quarantine,
    };
    persist(store, batch, &PersistConfig::default(), now).await
}

/// Folds the events decided `Insert` into their entities' state, one conditional write per
/// entity, re-reading and retrying when another writer got there first.
async fn absorb_new_events<S: Store + ?Sized>(
    store: &S,
    events: &[ScoredEvent],
    decisions: &[Decision],
    cfg: &PersistConfig,
) -> Result<(), Error> {
    let mut by_entity: BTreeMap<&str, Vec<&ScoredEvent>> = BTreeMap::new();
    for (e, d) in events.iter().zip(decisions) {
        if *d == Decision::Insert {
            by_entity
                .entry(e.event.entity_id.as_str())
                .or_default()
                .push(e);
        }
    }
    if by_entity.is_empty() {
        return Ok(());
    }
    for list in by_entity.values_mut() {
        list.sort_by_key(|e| e.event.occurred_ms());
    }
    let ids: Vec<String> = by_entity.keys().map(|k| (*k).to_owned()).collect();
    let mut states = store.get_entities(&ids).await?;
    for (entity, list) in by_entity {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut state = states
                .remove(entity)
                .unwrap_or_else(|| crate::detect::EntityState::new(entity));
            let before = state.recent.clone();
            for ev in &list {
                let obs = Observation::of(&ev.event, ev.enrichment.base_value, &cfg.detect);
                observe(&mut state, &obs, &cfg.detect, true);
            }
            if state.recent == before {
                break; // every event was already absorbed: nothing to write
            }
            state.version += 1;
            match store.put_entity(&state).await? {
                EntityWrite::Written => break,
                EntityWrite::VersionConflict if attempt < cfg.max_entity_attempts => {
                    states = store.get_entities(&[entity.to_owned()]).await?;
                }
                EntityWrite::VersionConflict => {
                    return Err(Error::EntityContended {
                        entity_id: entity.to_owned(),
                        attempts: attempt,
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        let e: crate::event::Event = serde_json::from_str(
            r#"{"event_id":"e","event_type":"a.b","source":"s","entity_id":"x","occurred_at":"2026-11-01T00:00:00Z","value":1,"version":2}"#,
        )
        .expect("event");
        let rec = EventRecord {
            event_id: "e".into(),
            entity_id: "x".into(),
            version: 2,
            content_hash: "aa".into(),
            status: RecordStatus::Persisted,
            occurred_at: String::new(),
            event: e,
            enrichment: crate::enrich::Enrichment {
                enrichment_version: 1,
                base_value: 1.0,
                base_currency: "USD".into(),
                fx_rate: None,
                day_of_week: 0,
                hour_of_day: 0,
                hour_of_week: 0,
                ingestion_lag_ms: 0,
                entity: Default::default(),
            },
            detection: Default::default(),
            provenance: Default::default(),
            first_persisted_at: Utc::now(),
            last_persisted_at: Utc::now(),
        };
        assert_eq!(decide(None, 1, "aa"), Decision::Insert);
        assert_eq!(
            decide(Some(&rec), 2, "aa"),
            Decision::Skip(Status::Duplicate)
        );
        assert_eq!(
            decide(Some(&rec), 2, "bb"),
            Decision::Skip(Status::Conflict)
        );
        assert_eq!(decide(Some(&rec), 1, "bb"), Decision::Skip(Status::Stale));
        assert_eq!(
            decide(Some(&rec), 3, "bb"),
            Decision::Replace { stored_version: 2 }
        );
    }
}
