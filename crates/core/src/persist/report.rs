//! What persist reports: one [`Outcome`] per input event, [`Counts`] that reconcile with the
//! input, and quarantine counts per reason; `Tally` builds them as the events' fates are
//! known, along with the quarantine records to write.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{Quarantined, Reason, Stage};
use crate::detect::{IncidentRef, ScoredEvent};
use crate::store::{EventRecord, QuarantineRecord};

pub use crate::outcome::Status;

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
    /// The incident an anomalous record belongs to (`docs/detection.md`, "Incidents").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentRef>,
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
    /// The fields, as serialised (persist's summary line, `pipeline run --json`): `input`,
    /// every [`Status`] in [`Status::ALL`] order, then `anomalies`. What readers of those
    /// lines (`pipeline watch`) take their field names from; a test holds it to the struct.
    pub const FIELDS: [&'static str; 8] = [
        "input",
        "persisted",
        "duplicate",
        "updated",
        "stale",
        "conflict",
        "quarantined",
        "anomalies",
    ];

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

fn reasons_json<T: Serialize>(reasons: &[T]) -> Vec<Value> {
    reasons
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect()
}

/// Builds a batch's report and its quarantine records, one event at a time.
pub(super) struct Tally {
    batch_id: String,
    now: DateTime<Utc>,
    /// `expires_at` of the quarantine records (epoch seconds).
    expires_at: Option<i64>,
    counts: Counts,
    by_reason: BTreeMap<String, usize>,
    outcomes: Vec<Outcome>,
    quarantine: Vec<QuarantineRecord>,
}

/// The reason a `conflict` is quarantined with.
pub(super) fn conflict_reason(
    ev: &ScoredEvent,
    hash: &str,
    stored: Option<&EventRecord>,
) -> Reason {
    let stored_hash = stored.map(|r| r.content_hash.as_str()).unwrap_or_default();
    if let Some(s) = stored.filter(|s| s.entity_id != ev.event.entity_id) {
        return Reason::at(
            "conflict",
            "/entity_id",
            format!(
                "event_id {:?} is stored under entity {:?}; version {} moves it to {:?}, which a \
                 correction may not do (it would leave both entities' counts wrong); send the \
                 event under a new event_id",
                ev.event.event_id, s.entity_id, ev.event.version, ev.event.entity_id
            ),
        );
    }
    Reason::at(
        "conflict",
        "/event_id",
        format!(
            "event_id {:?} version {} is already stored with different content (stored {stored_hash}, received {hash}); not overwritten",
            ev.event.event_id, ev.event.version
        ),
    )
}

impl Tally {
    pub(super) fn new(
        batch_id: &str,
        input_count: usize,
        now: DateTime<Utc>,
        expires_at: Option<i64>,
    ) -> Self {
        Tally {
            batch_id: batch_id.to_owned(),
            now,
            expires_at,
            counts: Counts {
                input: input_count,
                ..Counts::default()
            },
            by_reason: BTreeMap::new(),
            outcomes: Vec::with_capacity(input_count),
            quarantine: Vec::new(),
        }
    }

    /// The event's record was written (`persisted` or `updated`).
    pub(super) fn written(&mut self, ev: &ScoredEvent, updated: bool) {
        let status = if updated {
            Status::Updated
        } else {
            Status::Persisted
        };
        self.counts.add(status);
        if ev.detection.is_anomaly {
            self.counts.anomalies += 1;
        }
        self.outcomes.push(Outcome {
            event_id: Some(ev.event.event_id.clone()),
            entity_id: Some(ev.event.entity_id.clone()),
            status,
            score: Some(ev.detection.score),
            is_anomaly: ev.detection.is_anomaly,
            reasons: reasons_json(&ev.detection.reasons),
            incident: ev.detection.incident.clone(),
        });
    }

    /// Nothing was written because the stored record wins (`duplicate` or `stale`); the
    /// outcome reports what is stored.
    pub(super) fn kept(&mut self, status: Status, stored: &EventRecord) {
        self.counts.add(status);
        self.outcomes.push(Outcome {
            event_id: Some(stored.event_id.clone()),
            entity_id: Some(stored.entity_id.clone()),
            status,
            score: Some(stored.detection.score),
            is_anomaly: stored.detection.is_anomaly,
            reasons: reasons_json(&stored.detection.reasons),
            incident: stored.detection.incident.clone(),
        });
    }

    /// The same version is stored with other content: the event is quarantined, the stored
    /// record is left alone.
    pub(super) fn conflict(&mut self, ev: &ScoredEvent, hash: &str, stored: Option<&EventRecord>) {
        let reason = conflict_reason(ev, hash, stored);
        self.counts.add(Status::Conflict);
        *self.by_reason.entry("conflict".into()).or_default() += 1;
        let q = Quarantined::typed(
            &ev.event,
            ev.provenance.clone(),
            Stage::Persist,
            vec![reason.clone()],
        );
        self.push_quarantine(q);
        self.outcomes.push(Outcome {
            event_id: Some(ev.event.event_id.clone()),
            entity_id: Some(ev.event.entity_id.clone()),
            status: Status::Conflict,
            score: Some(ev.detection.score),
            is_anomaly: false,
            reasons: reasons_json(&[reason]),
            incident: None,
        });
    }

    /// An event an earlier stage quarantined.
    pub(super) fn quarantined(&mut self, q: &Quarantined) {
        self.counts.add(Status::Quarantined);
        let mut codes: Vec<&str> = q.reasons.iter().map(|r| r.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        for c in codes {
            *self.by_reason.entry(c.to_owned()).or_default() += 1;
        }
        self.outcomes.push(Outcome {
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
            incident: None,
        });
        self.push_quarantine(q.clone());
    }

    fn push_quarantine(&mut self, item: Quarantined) {
        self.quarantine.push(QuarantineRecord {
            quarantine_id: item.quarantine_id(),
            batch_id: self.batch_id.clone(),
            quarantined_at: self.now,
            expires_at: self.expires_at,
            replayed: None,
            item,
        });
    }

    /// The report, and the quarantine records still to be written.
    pub(super) fn finish(self) -> (PersistReport, Vec<QuarantineRecord>) {
        let report = PersistReport {
            batch_id: self.batch_id,
            counts: self.counts,
            quarantined_by_reason: self.by_reason,
            outcomes: self.outcomes,
        };
        (report, self.quarantine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_fields_are_the_struct_and_the_statuses() {
        let v = serde_json::to_value(Counts::default()).unwrap_or_default();
        let mut keys: Vec<String> = v
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort_unstable();
        let mut fields: Vec<String> = Counts::FIELDS.iter().map(|f| (*f).to_owned()).collect();
        fields.sort_unstable();
        assert_eq!(keys, fields);
        let statuses: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(&Counts::FIELDS[1..7], statuses.as_slice());
    }
}
