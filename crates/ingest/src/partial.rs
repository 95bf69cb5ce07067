//! Kafka partial batch responses: which records of an invocation to hand back to the event
//! source mapping when some of its batches failed, so that only they are redelivered.
//!
//! Kafka delivers a partition in offset order and its consumer group commits one offset per
//! partition, so a failed record holds back everything after it in its partition: the answer
//! names, per topic-partition, every record from the first failed offset on, including those
//! that went through in a batch that succeeded. Those come back, find their records stored,
//! and end `duplicate`: nothing is counted twice, and per-partition order is kept.
//!
//! A failure that cannot be named record by record (an item with no Kafka position, such as
//! an envelope part quarantined at ingest, or an input that is not Kafka at all) gives no
//! answer: the caller then fails the whole invocation, as it does without partial responses.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use pipeline_core::batch::{Batch, RawEvent};
use pipeline_core::event::Provenance;

/// One record named in a partial batch response (`batchItemFailures[].itemIdentifier`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KafkaItem {
    /// `topic-partition`, as the MSK event's `records` map names it.
    pub partition: String,
    /// The record's offset.
    pub offset: i64,
}

/// The records to report failed, given which batches failed (`failed[i]` for `batches[i]`),
/// in topic-partition then offset order; `None` when a failed batch holds an item without a
/// Kafka position (see the module docs) or holds no item at all. An empty list means nothing
/// failed.
pub fn records_to_retry(batches: &[Batch<RawEvent>], failed: &[bool]) -> Option<Vec<KafkaItem>> {
    let mut first_failed: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    for (batch, _) in batches
        .iter()
        .zip(failed.iter().chain(std::iter::repeat(&false)))
        .filter(|(_, f)| **f)
    {
        if batch.events.is_empty() && batch.quarantine.is_empty() {
            return None;
        }
        for p in positions(batch) {
            let (topic, partition, offset) = p?;
            let first = first_failed.entry((topic, partition)).or_insert(offset);
            *first = (*first).min(offset);
        }
    }
    let mut out = BTreeSet::new();
    for batch in batches {
        for (topic, partition, offset) in positions(batch).flatten() {
            if first_failed
                .get(&(topic, partition))
                .is_some_and(|&first| offset >= first)
            {
                out.insert(KafkaItem {
                    partition: format!("{topic}-{partition}"),
                    offset,
                });
            }
        }
    }
    Some(out.into_iter().collect())
}

/// Every item's Kafka position: `None` for an item that has none.
fn positions(batch: &Batch<RawEvent>) -> impl Iterator<Item = Option<(&str, i64, i64)>> {
    batch
        .events
        .iter()
        .map(|e| &e.provenance)
        .chain(batch.quarantine.iter().map(|q| &q.provenance))
        .map(position)
}

fn position(p: &Provenance) -> Option<(&str, i64, i64)> {
    match p {
        Provenance::Kafka {
            topic,
            partition,
            offset,
            ..
        } if !topic.is_empty() && *partition >= 0 && *offset >= 0 => {
            Some((topic.as_str(), *partition, *offset))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use pipeline_core::batch::{Quarantined, Reason, Stage};

    fn kafka(partition: i64, offset: i64) -> RawEvent {
        RawEvent {
            payload: json!({}),
            provenance: Provenance::Kafka {
                topic: "payments".into(),
                partition,
                offset,
                key: None,
            },
        }
    }

    fn batch(events: Vec<RawEvent>) -> Batch<RawEvent> {
        Batch {
            batch_id: "b".into(),
            received_at: Utc::now(),
            input_count: events.len(),
            events,
            quarantine: Vec::new(),
        }
    }

    fn items(list: &[(i64, i64)]) -> Vec<KafkaItem> {
        list.iter()
            .map(|&(p, o)| KafkaItem {
                partition: format!("payments-{p}"),
                offset: o,
            })
            .collect()
    }

    /// p0: 10..=14, p1: 20..=24, cut four to a batch.
    fn batches() -> Vec<Batch<RawEvent>> {
        vec![
            batch((10..14).map(|o| kafka(0, o)).collect()),
            batch(vec![kafka(0, 14), kafka(1, 20), kafka(1, 21), kafka(1, 22)]),
            batch(vec![kafka(1, 23), kafka(1, 24)]),
        ]
    }

    #[test]
    fn nothing_failed_reports_nothing() {
        assert_eq!(
            records_to_retry(&batches(), &[false, false, false]),
            Some(vec![])
        );
    }

    #[test]
    fn a_failed_batch_holds_back_the_rest_of_each_of_its_partitions() {
        // The middle batch fails: p0 from 14 on, and all of p1, although p1's 23 and 24 went
        // through in the last batch.
        assert_eq!(
            records_to_retry(&batches(), &[false, true, false]),
            Some(items(&[
                (0, 14),
                (1, 20),
                (1, 21),
                (1, 22),
                (1, 23),
                (1, 24)
            ]))
        );
        // The last batch fails: p0 is untouched.
        assert_eq!(
            records_to_retry(&batches(), &[false, false, true]),
            Some(items(&[(1, 23), (1, 24)]))
        );
    }

    #[test]
    fn a_quarantined_record_counts_as_a_record() {
        let mut b = batches();
        b[2].quarantine.push(Quarantined {
            event_id: None,
            stage: Stage::Ingest,
            reasons: vec![Reason::new("bad_json", "not json")],
            payload: json!("{"),
            provenance: Provenance::Kafka {
                topic: "payments".into(),
                partition: 2,
                offset: 7,
                key: None,
            },
        });
        assert_eq!(
            records_to_retry(&b, &[false, false, true]),
            Some(items(&[(1, 23), (1, 24), (2, 7)]))
        );
    }

    #[test]
    fn a_failure_without_a_kafka_position_cannot_be_reported_by_record() {
        let mut b = batches();
        b[2].events.push(RawEvent {
            payload: json!({}),
            provenance: Provenance::Direct,
        });
        assert_eq!(records_to_retry(&b, &[false, false, true]), None);
        // The same item in a batch that succeeded does not matter.
        assert!(records_to_retry(&b, &[true, false, false]).is_some());
        assert_eq!(records_to_retry(&[batch(vec![])], &[true]), None);
    }
}
