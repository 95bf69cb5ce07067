//! The decision table: what to do with an incoming event given the stored record of the same
//! `event_id` (see the table in [`super`]).

use super::Status;
use crate::store::EventRecord;

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
    Skip(Skip),
}

/// Why nothing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The same version with the same content is stored.
    Duplicate,
    /// A higher version is stored.
    Stale,
    /// The same version with other content is stored: the event is quarantined.
    Conflict,
}

impl From<Skip> for Status {
    fn from(s: Skip) -> Status {
        match s {
            Skip::Duplicate => Status::Duplicate,
            Skip::Stale => Status::Stale,
            Skip::Conflict => Status::Conflict,
        }
    }
}

/// An event's content hash as stored: 16 hex digits.
pub(super) fn hex(h: u64) -> String {
    format!("{h:016x}")
}

/// Decides what to do with an event of `version`, `content_hash` and `entity_id` given the
/// stored record. A correction may change anything but the entity: an event moved to another
/// entity would leave the old one counting a record it no longer has and the new one holding
/// a record its state never counted, so it is a conflict (send it under a new `event_id`).
pub fn decide(
    stored: Option<&EventRecord>,
    version: u32,
    content_hash: &str,
    entity_id: &str,
) -> Decision {
    match stored {
        None => Decision::Insert,
        Some(s) if s.version < version && s.entity_id != entity_id => {
            Decision::Skip(Skip::Conflict)
        }
        Some(s) if s.version < version => Decision::Replace {
            stored_version: s.version,
        },
        Some(s) if s.version > version => Decision::Skip(Skip::Stale),
        // The stored hash, or the stored event's hash as this build computes it: a record
        // written before a hashing rule changed (`schema_version: 1` now hashes as absent)
        // still recognises its own re-delivery.
        Some(s)
            if s.content_hash == content_hash || hex(s.event.content_hash()) == content_hash =>
        {
            Decision::Skip(Skip::Duplicate)
        }
        Some(_) => Decision::Skip(Skip::Conflict),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RecordStatus;
    use chrono::Utc;

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
                hour_of_week: 0,
                ingestion_lag_ms: 0,
                entity: Default::default(),
            },
            detection: Default::default(),
            provenance: Default::default(),
            first_persisted_at: Utc::now(),
            last_persisted_at: Utc::now(),
        };
        assert_eq!(decide(None, 1, "aa", "x"), Decision::Insert);
        assert_eq!(
            decide(Some(&rec), 2, "aa", "x"),
            Decision::Skip(Skip::Duplicate)
        );
        assert_eq!(
            decide(Some(&rec), 2, "bb", "x"),
            Decision::Skip(Skip::Conflict)
        );
        assert_eq!(
            decide(Some(&rec), 1, "bb", "x"),
            Decision::Skip(Skip::Stale)
        );
        assert_eq!(
            decide(Some(&rec), 3, "bb", "y"),
            Decision::Skip(Skip::Conflict),
            "a correction may not move the event to another entity"
        );
        assert_eq!(
            decide(Some(&rec), 3, "bb", "x"),
            Decision::Replace { stored_version: 2 }
        );
    }

    #[test]
    fn every_combination_of_version_and_content_follows_the_table() {
        let base: EventRecord = {
            let mut r = sample_record();
            r.content_hash = "same".into();
            r
        };
        for stored_version in 1..=3u32 {
            for version in 1..=3u32 {
                for hash in ["same", "other"] {
                    let mut rec = base.clone();
                    rec.version = stored_version;
                    let want = if version > stored_version {
                        Decision::Replace { stored_version }
                    } else if version < stored_version {
                        Decision::Skip(Skip::Stale)
                    } else if hash == "same" {
                        Decision::Skip(Skip::Duplicate)
                    } else {
                        Decision::Skip(Skip::Conflict)
                    };
                    assert_eq!(
                        decide(Some(&rec), version, hash, "x"),
                        want,
                        "stored v{stored_version}, got v{version} {hash}"
                    );
                }
            }
            assert_eq!(decide(None, stored_version, "same", "x"), Decision::Insert);
        }
        let statuses: Vec<Status> = [Skip::Duplicate, Skip::Stale, Skip::Conflict]
            .map(Status::from)
            .to_vec();
        assert_eq!(
            statuses,
            [Status::Duplicate, Status::Stale, Status::Conflict]
        );
    }

    fn sample_record() -> EventRecord {
        let e: crate::event::Event = serde_json::from_str(
            r#"{"event_id":"e","event_type":"a.b","source":"s","entity_id":"x","occurred_at":"2026-11-01T00:00:00Z","value":1,"version":1}"#,
        )
        .expect("event");
        EventRecord {
            event_id: "e".into(),
            entity_id: "x".into(),
            version: 1,
            content_hash: String::new(),
            status: RecordStatus::Persisted,
            occurred_at: String::new(),
            event: e,
            enrichment: crate::enrich::Enrichment {
                enrichment_version: 1,
                base_value: 1.0,
                base_currency: "USD".into(),
                fx_rate: None,
                hour_of_week: 0,
                ingestion_lag_ms: 0,
                entity: Default::default(),
            },
            detection: Default::default(),
            provenance: Default::default(),
            first_persisted_at: Utc::now(),
            last_persisted_at: Utc::now(),
        }
    }
}
