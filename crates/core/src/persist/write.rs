//! The record write loop: every event's decision becomes a conditional write; a failed
//! condition returns the record now stored, the decision is taken again against it, and the
//! next round writes what is still to be written.

use chrono::{DateTime, Utc};

use super::decide::{Decision, Skip, decide, hex};
use crate::Error;
use crate::detect::ScoredEvent;
use crate::store::{
    EventRecord, EventStore, EventWrite, RecordStatus, WriteCondition, WriteResult,
};

/// Rounds of conditional writes before a record that keeps changing under us is given up on
/// (retryably: the state machine retries the batch). Each round after the first only happens
/// when another writer changed the same `event_id` between our read and our write.
pub const MAX_WRITE_ROUNDS: u32 = 3;

/// Where one event's record ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Written: new, or replacing a lower version.
    Written {
        /// It replaced a stored record.
        updated: bool,
    },
    /// Not written: see the reason.
    Skipped(Skip),
}

/// One scored event on its way to the store.
#[derive(Debug)]
pub(super) struct Pending<'a> {
    /// The event.
    pub event: &'a ScoredEvent,
    /// Its content hash, hex.
    pub hash: String,
    /// What to do, given `stored`.
    pub decision: Decision,
    /// The record stored under its `event_id`, as last seen.
    pub stored: Option<EventRecord>,
    /// Set once its fate is known.
    pub fate: Option<Fate>,
}

impl<'a> Pending<'a> {
    /// Decides against the stored record of the same `event_id`.
    pub fn new(event: &'a ScoredEvent, stored: Option<EventRecord>) -> Self {
        let hash = hex(event.event.content_hash());
        let decision = decide(
            stored.as_ref(),
            event.event.version,
            &hash,
            &event.event.entity_id,
        );
        Pending {
            event,
            hash,
            decision,
            stored,
            fate: None,
        }
    }

    fn write(&self, now: DateTime<Utc>) -> Option<EventWrite> {
        match self.decision {
            Decision::Skip(_) => None,
            Decision::Insert => Some(EventWrite {
                record: record_of(self.event, &self.hash, RecordStatus::Persisted, now, None),
                condition: WriteCondition::Absent,
            }),
            Decision::Replace { stored_version } => {
                let first = self.stored.as_ref().map(|r| r.first_persisted_at);
                Some(EventWrite {
                    record: record_of(self.event, &self.hash, RecordStatus::Updated, now, first),
                    condition: WriteCondition::VersionIs(stored_version),
                })
            }
        }
    }
}

/// Writes every pending record, conditionally, in at most [`MAX_WRITE_ROUNDS`] rounds; on
/// return every event has a fate.
pub(super) async fn write_records<S: EventStore + ?Sized>(
    store: &S,
    pending: &mut [Pending<'_>],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let initial_insert: Vec<bool> = pending
        .iter()
        .map(|p| p.decision == Decision::Insert)
        .collect();
    for _ in 0..MAX_WRITE_ROUNDS {
        settle_skips(pending);
        let (idx, writes): (Vec<usize>, Vec<EventWrite>) = pending
            .iter()
            .enumerate()
            .filter(|(_, p)| p.fate.is_none())
            .filter_map(|(i, p)| p.write(now).map(|w| (i, w)))
            .unzip();
        if writes.is_empty() {
            return Ok(());
        }
        let results = store.write_events(writes).await?;
        if results.len() != idx.len() {
            return Err(Error::StoreUnavailable {
                message: format!(
                    "the store answered {} results for {} writes",
                    results.len(),
                    idx.len()
                ),
                source: None,
            });
        }
        for (i, result) in idx.into_iter().zip(results) {
            let p = &mut pending[i];
            match result {
                WriteResult::Written => {
                    let updated = matches!(p.decision, Decision::Replace { .. });
                    p.fate = Some(Fate::Written { updated });
                }
                WriteResult::ConditionFailed { current } => {
                    p.stored = current.map(|b| *b);
                    p.decision = decide(
                        p.stored.as_ref(),
                        p.event.event.version,
                        &p.hash,
                        &p.event.event.entity_id,
                    );
                    if p.decision == Decision::Insert && initial_insert.get(i) == Some(&false) {
                        // The record we meant to replace is gone (records are never deleted,
                        // so only by hand). A new event must be counted as it is written, which
                        // only the commit path does: retry the batch, which takes it.
                        return Err(Error::RecordContended {
                            event_id: p.event.event.event_id.clone(),
                            rounds: MAX_WRITE_ROUNDS,
                        });
                    }
                }
            }
        }
    }
    // A decision taken again after the last round may be a skip: that needs no more writing.
    settle_skips(pending);
    match pending.iter().find(|p| p.fate.is_none()) {
        None => Ok(()),
        Some(p) => Err(Error::RecordContended {
            event_id: p.event.event.event_id.clone(),
            rounds: MAX_WRITE_ROUNDS,
        }),
    }
}

fn settle_skips(pending: &mut [Pending<'_>]) {
    for p in pending.iter_mut().filter(|p| p.fate.is_none()) {
        if let Decision::Skip(skip) = p.decision {
            p.fate = Some(Fate::Skipped(skip));
        }
    }
}

/// The record written for an event whose content hash (as stored) is `content_hash`.
pub(super) fn record_of(
    ev: &ScoredEvent,
    content_hash: &str,
    status: RecordStatus,
    now: DateTime<Utc>,
    first: Option<DateTime<Utc>>,
) -> EventRecord {
    EventRecord {
        event_id: ev.event.event_id.clone(),
        entity_id: ev.event.entity_id.clone(),
        version: ev.event.version,
        content_hash: content_hash.to_owned(),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::enrich::Enrichment;

    /// A store whose record writes answer from a script, one answer list per call, and which
    /// remembers the conditions it was asked to write under.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Vec<WriteResult>>>,
        conditions: Mutex<Vec<Vec<WriteCondition>>>,
    }

    impl Scripted {
        fn new(answers: Vec<Vec<WriteResult>>) -> Self {
            Scripted {
                answers: Mutex::new(answers.into()),
                conditions: Mutex::default(),
            }
        }
        fn calls(&self) -> Vec<Vec<WriteCondition>> {
            self.conditions.lock().unwrap().clone()
        }
    }

    // The write loop needs records alone, so the script is an event store and nothing more.
    #[async_trait]
    impl EventStore for Scripted {
        async fn get_events(&self, _: &[String]) -> Result<HashMap<String, EventRecord>, Error> {
            Ok(HashMap::new())
        }
        async fn write_events(&self, writes: Vec<EventWrite>) -> Result<Vec<WriteResult>, Error> {
            let conditions = writes.iter().map(|w| w.condition).collect();
            self.conditions.lock().unwrap().push(conditions);
            Ok(self.answers.lock().unwrap().pop_front().unwrap_or_default())
        }
    }

    fn scored(id: &str, version: u32, value: f64) -> ScoredEvent {
        let event = serde_json::from_value(serde_json::json!({
            "event_id": id, "event_type": "a.b", "source": "s", "entity_id": "x",
            "occurred_at": "2026-11-01T00:00:00Z", "value": value, "version": version
        }))
        .expect("event");
        ScoredEvent {
            event,
            provenance: Default::default(),
            enrichment: Enrichment {
                enrichment_version: 1,
                base_value: value,
                base_currency: "USD".into(),
                fx_rate: None,
                hour_of_week: 0,
                ingestion_lag_ms: 0,
                entity: Default::default(),
            },
            detection: Default::default(),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    /// What another writer stored under the same id.
    fn stored(ev: &ScoredEvent) -> Option<Box<EventRecord>> {
        Some(Box::new(record_of(
            ev,
            &hex(ev.event.content_hash()),
            RecordStatus::Persisted,
            now(),
            None,
        )))
    }

    async fn run(
        store: &Scripted,
        events: &[ScoredEvent],
        stored: Vec<Option<EventRecord>>,
    ) -> Result<Vec<Option<Fate>>, Error> {
        let mut pending: Vec<Pending<'_>> = events
            .iter()
            .zip(stored)
            .map(|(e, s)| Pending::new(e, s))
            .collect();
        write_records(store, &mut pending, now()).await?;
        Ok(pending.iter().map(|p| p.fate).collect())
    }

    #[tokio::test]
    async fn new_events_are_inserted_if_absent_in_one_round() {
        let events = [scored("a", 1, 1.0), scored("b", 1, 2.0)];
        let store = Scripted::new(vec![vec![WriteResult::Written, WriteResult::Written]]);
        let fates = run(&store, &events, vec![None, None]).await.unwrap();
        assert_eq!(fates, [Some(Fate::Written { updated: false }); 2]);
        assert_eq!(store.calls(), [vec![WriteCondition::Absent; 2]]);
    }

    #[tokio::test]
    async fn a_higher_version_replaces_conditionally_on_the_stored_version() {
        let old = scored("a", 1, 1.0);
        let events = [scored("a", 2, 5.0)];
        let store = Scripted::new(vec![vec![WriteResult::Written]]);
        let before = Some(*stored(&old).unwrap());
        let fates = run(&store, &events, vec![before]).await.unwrap();
        assert_eq!(fates, [Some(Fate::Written { updated: true })]);
        assert_eq!(store.calls(), [vec![WriteCondition::VersionIs(1)]]);
    }

    #[tokio::test]
    async fn skipped_events_are_never_written() {
        let same = scored("a", 1, 1.0);
        let newer = scored("b", 3, 1.0);
        let events = [same.clone(), scored("b", 2, 1.0)];
        let store = Scripted::new(vec![]);
        let before = vec![
            Some(*stored(&same).unwrap()),
            Some(*stored(&newer).unwrap()),
        ];
        let fates = run(&store, &events, before).await.unwrap();
        assert_eq!(
            fates,
            [
                Some(Fate::Skipped(Skip::Duplicate)),
                Some(Fate::Skipped(Skip::Stale))
            ]
        );
        assert!(store.calls().is_empty(), "no write request at all");
    }

    #[tokio::test]
    async fn a_lost_insert_race_is_decided_again_against_the_winner() {
        let mine = scored("a", 1, 1.0);
        let theirs_same = mine.clone();
        let theirs_other = scored("b", 1, 9.0);
        let events = [mine, scored("b", 1, 2.0), scored("c", 1, 3.0)];
        let store = Scripted::new(vec![vec![
            WriteResult::ConditionFailed {
                current: stored(&theirs_same),
            },
            WriteResult::ConditionFailed {
                current: stored(&theirs_other),
            },
            WriteResult::Written,
        ]]);
        let fates = run(&store, &events, vec![None, None, None]).await.unwrap();
        assert_eq!(
            fates,
            [
                Some(Fate::Skipped(Skip::Duplicate)),
                Some(Fate::Skipped(Skip::Conflict)),
                Some(Fate::Written { updated: false }),
            ]
        );
        assert_eq!(
            store.calls().len(),
            1,
            "nothing left to write after round one"
        );
    }

    #[tokio::test]
    async fn a_record_deleted_under_a_replace_sends_the_batch_back_to_be_counted() {
        // Inserting here would store a new event without counting it in its entity's state;
        // only the commit path may insert, so the batch is retried and takes it.
        let old = scored("a", 1, 1.0);
        let events = [scored("a", 2, 5.0)];
        let store = Scripted::new(vec![vec![WriteResult::ConditionFailed { current: None }]]);
        let err = run(&store, &events, vec![Some(*stored(&old).unwrap())])
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Pipeline.Retryable.RecordContended");
        assert_eq!(store.calls(), [vec![WriteCondition::VersionIs(1)]]);
    }

    #[tokio::test]
    async fn a_record_that_keeps_changing_is_a_distinct_retryable_error() {
        let events = [scored("a", 5, 1.0)];
        // Every round, another writer has stored a new lower version just before us.
        let answers = (1..=MAX_WRITE_ROUNDS)
            .map(|v| {
                vec![WriteResult::ConditionFailed {
                    current: stored(&scored("a", v, 1.0)),
                }]
            })
            .collect();
        let store = Scripted::new(answers);
        let err = run(&store, &events, vec![None]).await.unwrap_err();
        assert_eq!(err.error_type(), "Pipeline.Retryable.RecordContended");
        assert!(err.to_string().contains("record a"), "{err}");
        assert_eq!(store.calls().len(), MAX_WRITE_ROUNDS as usize);
    }

    #[tokio::test]
    async fn a_skip_decided_after_the_last_round_is_not_an_error() {
        let mine = scored("a", 5, 1.0);
        let mut answers: Vec<Vec<WriteResult>> = (1..MAX_WRITE_ROUNDS)
            .map(|v| {
                vec![WriteResult::ConditionFailed {
                    current: stored(&scored("a", v, 1.0)),
                }]
            })
            .collect();
        // In the last round the other writer stored exactly our event.
        answers.push(vec![WriteResult::ConditionFailed {
            current: stored(&mine),
        }]);
        let store = Scripted::new(answers);
        let fates = run(&store, std::slice::from_ref(&mine), vec![None])
            .await
            .unwrap();
        assert_eq!(fates, [Some(Fate::Skipped(Skip::Duplicate))]);
    }

    #[tokio::test]
    async fn a_store_answering_the_wrong_number_of_results_fails_the_batch() {
        let events = [scored("a", 1, 1.0), scored("b", 1, 1.0)];
        let store = Scripted::new(vec![vec![WriteResult::Written]]);
        let err = run(&store, &events, vec![None, None]).await.unwrap_err();
        assert_eq!(err.error_type(), "Pipeline.Retryable.StoreUnavailable");
    }
}
