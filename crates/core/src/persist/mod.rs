//! Stage 4, persist: decide what to write, write it conditionally, and fold new events into
//! entity state exactly once.
//!
//! # What is written
//! [`decide()`] compares an incoming event with the stored record of the same `event_id`:
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
//! same [`crate::detect::observe`] the detect stage uses, and the new state is committed
//! *together with* the new records, all or nothing ([`EntityStore::commit_entity`](crate::store::EntityStore::commit_entity)): conditional on
//! the state's version and on every record being absent. So an event is counted if and only
//! if its record exists, whatever happened before: a crash at any point, a redelivery any
//! time later, a second writer on the same entity. On a conflict the state and records are
//! read again, the events decided again (some are now `duplicate`), and the rest committed
//! (bounded by [`PersistConfig::max_entity_attempts`], then a retryable error). An entity with
//! more new events than one commit may carry ([`crate::store::CommitLimits`]) is committed in
//! several, each one atomic, in input order (the order the detect stage scored them in).
//!
//! A batch that carries the same `event_id` more than once is persisted in waves (first
//! occurrences, then second ones, …), each decided against what the previous stored, so the
//! outcomes are those of the same events in separate batches.
//!
//! # Layout
//! - [`decide`](mod@decide): the decision table.
//! - `write` (private): the conditional write loop ([`MAX_WRITE_ROUNDS`]).
//! - `entities` (private): committing new events with the entity state that counts them.
//! - [`report`]: [`Status`], [`Outcome`], [`Counts`], [`PersistReport`].
//! - [`announce`]: [`Announcement`] and the [`Announcer`] boundary.
//! - [`failed`]: the quarantine path for a batch that failed a stage ([`FailedBatch`]).

pub mod announce;
pub mod decide;
mod entities;
pub mod failed;
pub mod report;
mod write;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

pub use announce::{Announcement, AnnouncementKind, Announcer, NoAnnouncer};
pub use decide::{Decision, Skip, decide};
pub use failed::{FailedBatch, StateError, quarantine_failed_batch};
pub use report::{Counts, Outcome, PersistReport, Status};
pub use write::MAX_WRITE_ROUNDS;

use crate::Error;
use crate::batch::Batch;
use crate::detect::{DetectConfig, ScoredEvent};
use crate::store::{RecordStatus, Store};
use announce::announcements;
use entities::commit_new_events;
use report::Tally;
use write::{Fate, Pending, record_of, write_records};

/// Persistence settings.
#[derive(Debug, Clone)]
pub struct PersistConfig {
    /// Detection settings, to fold events into entity state as detect does.
    pub detect: DetectConfig,
    /// Attempts at an entity's conditional state write before giving up (retryable).
    pub max_entity_attempts: u32,
    /// How long quarantine entries are kept: each gets `expires_at` = quarantined time plus
    /// this, which the DynamoDB table's TTL acts on. `None`: kept until deleted.
    pub quarantine_retention: Option<chrono::Duration>,
}

/// The default [`PersistConfig::quarantine_retention`]: 30 days, long enough to notice,
/// fix and replay.
pub const DEFAULT_QUARANTINE_RETENTION_DAYS: i64 = 30;

impl Default for PersistConfig {
    fn default() -> Self {
        PersistConfig {
            detect: DetectConfig::default(),
            max_entity_attempts: 8,
            quarantine_retention: Some(chrono::Duration::days(DEFAULT_QUARANTINE_RETENTION_DAYS)),
        }
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
/// on the announcement's `id`), whereas announcing after the writes could lose an
/// announcement for good, since a redelivered batch finds its records already stored and
/// announces nothing.
pub async fn persist_and_announce<S: Store + ?Sized>(
    store: &S,
    batch: Batch<ScoredEvent>,
    cfg: &PersistConfig,
    now: DateTime<Utc>,
    announcer: &dyn Announcer,
) -> Result<PersistReport, Error> {
    let mut settled: Vec<Option<Pending<'_>>> = batch.events.iter().map(|_| None).collect();
    for wave in waves(&batch.events) {
        let ids: Vec<String> = wave
            .iter()
            .map(|&i| batch.events[i].event.event_id.clone())
            .collect();
        // The entities' states are read with the records, not after them: the critical path of
        // a batch is then one read round trip, not two (docs/capacity.md). A state read for an
        // entity whose events all turn out to be stored already is the price, one cheap read.
        let entities: Vec<String> = wave
            .iter()
            .map(|&i| batch.events[i].event.entity_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (mut stored, states) = futures::future::try_join(
            async {
                if ids.is_empty() {
                    Ok(HashMap::new())
                } else {
                    store.get_events(&ids).await
                }
            },
            async {
                if entities.is_empty() {
                    Ok(HashMap::new())
                } else {
                    store.get_entities(&entities).await
                }
            },
        )
        .await?;
        let mut pending: Vec<Pending<'_>> = wave
            .iter()
            .map(|&i| {
                let e = &batch.events[i];
                Pending::new(e, stored.remove(&e.event.event_id))
            })
            .collect();

        let announcements: Vec<Announcement> = pending
            .iter()
            .flat_map(|p| match p.decision {
                Decision::Insert => announcements(p.event, Status::Persisted),
                Decision::Replace { .. } => announcements(p.event, Status::Updated),
                Decision::Skip(_) => Vec::new(),
            })
            .collect();
        if !announcements.is_empty() {
            announcer.announce(&announcements).await?;
        }

        commit_new_events(store, &mut pending, states, cfg, now).await?;
        write_records(store, &mut pending, now).await?;
        for (i, p) in wave.into_iter().zip(pending) {
            if let Some(slot) = settled.get_mut(i) {
                *slot = Some(p);
            }
        }
    }

    let expires_at = cfg.quarantine_retention.map(|r| (now + r).timestamp());
    let mut tally = Tally::new(&batch.batch_id, batch.input_count, now, expires_at);
    for p in settled.iter().flatten() {
        match p.fate {
            Some(Fate::Written { updated }) => tally.written(p.event, updated),
            Some(Fate::Skipped(Skip::Conflict)) => {
                tally.conflict(p.event, &p.hash, p.stored.as_ref())
            }
            Some(Fate::Skipped(skip)) => match &p.stored {
                Some(rec) => tally.kept(skip.into(), rec),
                None => tally.kept(
                    skip.into(),
                    &record_of(p.event, &p.hash, RecordStatus::Persisted, now, None),
                ),
            },
            // write_records gives every event a fate or fails.
            None => {
                return Err(Error::RecordContended {
                    event_id: p.event.event.event_id.clone(),
                    rounds: MAX_WRITE_ROUNDS,
                });
            }
        }
    }
    for q in &batch.quarantine {
        tally.quarantined(q);
    }
    let (report, quarantine) = tally.finish();
    if !quarantine.is_empty() {
        store.put_quarantine(&quarantine).await?;
    }
    store.end_batch().await?;
    Ok(report)
}

/// The outcome persist would give `event` in a batch of its own, from what is stored now,
/// reading only: `persisted`, `updated`, `duplicate`, `stale`, or `conflict` with the reason
/// persist would quarantine it with. What `pipeline replay --dry-run` reports, and how a
/// replay tells a conflict before writing anything.
pub async fn predict<S: Store + ?Sized>(
    store: &S,
    event: &ScoredEvent,
) -> Result<(Status, Option<crate::batch::Reason>), Error> {
    let id = &event.event.event_id;
    let stored = store.get_events(std::slice::from_ref(id)).await?.remove(id);
    let hash = decide::hex(event.event.content_hash());
    Ok(
        match decide(
            stored.as_ref(),
            event.event.version,
            &hash,
            &event.event.entity_id,
        ) {
            Decision::Insert => (Status::Persisted, None),
            Decision::Replace { .. } => (Status::Updated, None),
            Decision::Skip(Skip::Conflict) => (
                Status::Conflict,
                Some(report::conflict_reason(event, &hash, stored.as_ref())),
            ),
            Decision::Skip(skip) => (skip.into(), None),
        },
    )
}

/// The batch's events in waves: the first occurrence of every `event_id`, then the second
/// occurrences, and so on. Each wave is decided against what the waves before it stored, so a
/// repeat inside a batch ends exactly as it would in a later batch (`duplicate`, `updated`,
/// `stale` or `conflict`): outcomes do not depend on where batches were cut.
fn waves(events: &[ScoredEvent]) -> Vec<Vec<usize>> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(events.len());
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let n = seen.entry(e.event.event_id.as_str()).or_insert(0);
        if waves.len() <= *n {
            waves.push(Vec::new());
        }
        if let Some(w) = waves.get_mut(*n) {
            w.push(i);
        }
        *n += 1;
    }
    waves
}
