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
//!
//! # Layout
//! - [`decide`](mod@decide): the decision table.
//! - `write` (private): the conditional write loop ([`MAX_WRITE_ROUNDS`]).
//! - `entities` (private): folding new events into entity state.
//! - [`report`]: [`Status`], [`Outcome`], [`Counts`], [`PersistReport`].
//! - [`announce`]: [`Announcement`] and the [`Announcer`] boundary.
//! - [`failed`]: the quarantine path for a batch that failed a stage ([`FailedBatch`]).

pub mod announce;
pub mod decide;
mod entities;
pub mod failed;
pub mod report;
mod write;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

pub use announce::{Announcement, Announcer, NoAnnouncer};
pub use decide::{Decision, Skip, decide};
pub use failed::{FailedBatch, StateError, quarantine_failed_batch};
pub use report::{Counts, Outcome, PersistReport, Status};
pub use write::MAX_WRITE_ROUNDS;

use crate::Error;
use crate::batch::Batch;
use crate::detect::{DetectConfig, ScoredEvent};
use crate::store::{RecordStatus, Store};
use announce::announcement;
use entities::absorb_new_events;
use report::Tally;
use write::{Fate, Pending, record_of, write_records};

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
    let mut stored = if ids.is_empty() {
        HashMap::new()
    } else {
        store.get_events(&ids).await?
    };
    let mut pending: Vec<Pending<'_>> = batch
        .events
        .iter()
        .map(|e| Pending::new(e, stored.remove(&e.event.event_id)))
        .collect();

    let announcements: Vec<Announcement> = pending
        .iter()
        .filter(|p| p.event.detection.is_anomaly)
        .filter_map(|p| match p.decision {
            Decision::Insert => Some(announcement(p.event, Status::Persisted)),
            Decision::Replace { .. } => Some(announcement(p.event, Status::Updated)),
            Decision::Skip(_) => None,
        })
        .collect();
    if !announcements.is_empty() {
        announcer.announce(&announcements).await?;
    }

    let new_events = pending
        .iter()
        .filter(|p| p.decision == Decision::Insert)
        .map(|p| p.event);
    absorb_new_events(store, new_events, cfg).await?;
    write_records(store, &mut pending, now).await?;

    let mut tally = Tally::new(&batch.batch_id, batch.input_count, now);
    for p in &pending {
        match p.fate {
            Some(Fate::Written { updated }) => tally.written(p.event, updated),
            Some(Fate::Skipped(Skip::Conflict)) => {
                tally.conflict(p.event, &p.hash, p.stored.as_ref())
            }
            Some(Fate::Skipped(skip)) => match &p.stored {
                Some(rec) => tally.kept(skip.into(), rec),
                None => tally.kept(
                    skip.into(),
                    &record_of(p.event, RecordStatus::Persisted, now, None),
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
    Ok(report)
}
