//! New events, exactly once: the events decided `Insert` are folded into their entity's state
//! with the same [`observe`] the detect stage uses, and the state is committed together with
//! their records, all or nothing (see "Entity state, exactly once" in [`super`]).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::PersistConfig;
use super::decide::{Decision, decide};
use super::write::{Fate, Pending, record_of};
use crate::Error;
use crate::detect::{EntityState, Observation, ObservationOf, observe};
use crate::store::{
    CommitLimits, EntityCommit, EntityStore, EntityWrite, EventRecord, EventStore, RecordStatus,
};

/// Commits every pending event decided `Insert`, each entity's in input order, starting from
/// `states` (read with the records: every entity of the wave, absent if never stored), in as
/// few commits as the store's [`CommitLimits`] allow. On a conflict the entity's state and the
/// records still to insert are read again and decided again; an event whose record appeared
/// meanwhile leaves this path with its new decision (a skip, or a replacement for
/// `write_records`). On return every event still decided `Insert` has been written.
pub(super) async fn commit_new_events<S: EventStore + EntityStore + ?Sized>(
    store: &S,
    pending: &mut [Pending<'_>],
    mut states: HashMap<String, EntityState>,
    cfg: &PersistConfig,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let mut by_entity: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in pending.iter().enumerate() {
        if p.fate.is_none() && p.decision == Decision::Insert {
            by_entity
                .entry(p.event.event.entity_id.clone())
                .or_default()
                .push(i);
        }
    }
    if by_entity.is_empty() {
        return Ok(());
    }
    // Each entity's events are folded in input order, as the detect stage scored them, so
    // that the state does not depend on where the batches were cut.
    let limits = store.commit_limits();
    let mut open: Vec<Open> = by_entity
        .into_iter()
        .map(|(entity, todo)| Open {
            state: states
                .remove(&entity)
                .unwrap_or_else(|| EntityState::new(&entity)),
            entity,
            todo,
            conflicts: 0,
        })
        .collect();
    // Rounds: every entity with events left offers its next commit, and the store takes them
    // all in one call (one SQLite transaction for a whole batch; one round per chunk of ≤ 99
    // records on DynamoDB).
    while !open.is_empty() {
        let mut commits = Vec::with_capacity(open.len());
        for o in &open {
            let inserts = chunk(pending, &o.todo, limits, now);
            let mut next = o.state.clone();
            for &i in &o.todo[..inserts.len()] {
                let ev = pending[i].event;
                let obs = Observation::of(&ev.event, ev.enrichment.base_value, &cfg.detect);
                // An id the state already remembers (a crash of a version before commits
                // were atomic) is written but not counted again.
                observe(&mut next, &obs, &cfg.detect, true);
            }
            next.version += 1;
            commits.push(EntityCommit {
                state: next,
                inserts,
            });
        }
        let answers = store.commit_entities(&commits).await?;
        for ((o, commit), answer) in open.iter_mut().zip(commits).zip(answers) {
            match answer {
                EntityWrite::Written => {
                    for i in o.todo.drain(..commit.inserts.len()) {
                        pending[i].fate = Some(Fate::Written { updated: false });
                    }
                    o.state = commit.state;
                }
                EntityWrite::Conflict => {
                    o.conflicts += 1;
                    if o.conflicts >= cfg.max_entity_attempts {
                        return Err(Error::EntityContended {
                            entity_id: o.entity.clone(),
                            attempts: o.conflicts,
                        });
                    }
                    o.state = store
                        .get_entities(std::slice::from_ref(&o.entity))
                        .await?
                        .remove(&o.entity)
                        .unwrap_or_else(|| EntityState::new(&o.entity));
                    let ids: Vec<String> = o
                        .todo
                        .iter()
                        .map(|&i| pending[i].event.event.event_id.clone())
                        .collect();
                    let mut stored = store.get_events(&ids).await?;
                    for &i in &o.todo {
                        let p = &mut pending[i];
                        p.stored = stored.remove(&p.event.event.event_id);
                        p.decision = decide(
                            p.stored.as_ref(),
                            p.event.event.version,
                            &p.hash,
                            &p.event.event.entity_id,
                        );
                    }
                    o.todo.retain(|&i| pending[i].decision == Decision::Insert);
                }
            }
        }
        open.retain(|o| !o.todo.is_empty());
    }
    Ok(())
}

/// An entity with events still to commit.
struct Open {
    entity: String,
    /// Its state as last read or written.
    state: EntityState,
    /// Its pending events still to commit, in input order.
    todo: Vec<usize>,
    conflicts: u32,
}

/// The records of `todo`'s first events, as many as fit one commit: at least one (a single
/// record too big for the store is the store's to refuse), then as many as the limits allow.
fn chunk(
    pending: &[Pending<'_>],
    todo: &[usize],
    limits: CommitLimits,
    now: DateTime<Utc>,
) -> Vec<EventRecord> {
    let mut records = Vec::new();
    let mut bytes = 0usize;
    for &i in todo {
        let record = record_of(
            pending[i].event,
            &pending[i].hash,
            RecordStatus::Persisted,
            now,
            None,
        );
        // Sizes only matter to a bounded store; an unbounded one takes everything.
        if limits != CommitLimits::UNBOUNDED {
            let size = serde_json::to_vec(&record).map_or(usize::MAX / 2, |v| v.len());
            let full = records.len() >= limits.max_records
                || bytes.saturating_add(size) > limits.max_bytes;
            if full && !records.is_empty() {
                break;
            }
            bytes = bytes.saturating_add(size);
        }
        records.push(record);
    }
    records
}
