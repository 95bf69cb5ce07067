//! Ingest: turn what a trigger delivers into batch documents.
//!
//! Decoders for the three shapes events arrive in:
//! - an Amazon MSK `KafkaEvent` (`eventSource` = `aws:kafka`): each record's `value` is base64
//!   JSON; topic, partition, offset and key are kept as provenance;
//! - an EventBridge event (has `detail-type`): `detail` is one event, or `{"events": [...]}`;
//! - JSON Lines (the CLI): one event per line.
//!
//! Dispatch reads the discriminating fields instead of trying serde shapes one after the other:
//! a Kafka event type whose fields all default would parse from any object. A record or line
//! that cannot be decoded is quarantined at stage `ingest` with its raw text; it never fails
//! the batch. [`split`] then cuts the decoded events into batches that stay under the Step
//! Functions state limit.
//!
//! The envelopes are read as `serde_json::Value`, not through the `aws_lambda_events` types:
//! those require every field of every Kafka record (`partition`, `offset`, `timestamp`,
//! `headers`), so one malformed record would fail the whole invocation, while ingest must
//! quarantine that record alone and pass the others on; and a record's `value` is base64 text
//! there too, which leaves the decoding to do here anyway.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::Error;
use crate::batch::{
    Batch, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, Quarantined, RawEvent, Reason, Stage, serialized_len,
};
use crate::event::Provenance;

/// Where ingest hands each batch document: the state machine in production, a collector in
/// tests. An error fails the ingest invocation so the trigger redelivers (idempotently).
#[async_trait::async_trait]
pub trait BatchSink: Send + Sync {
    /// Hands over one batch and returns once it has been processed.
    async fn submit(&self, batch: &Batch<RawEvent>) -> Result<(), Error>;
}

// A borrowed sink is a sink: a caller can keep the sink and still hand it to ingest.
#[async_trait::async_trait]
impl<T: BatchSink + ?Sized> BatchSink for &T {
    async fn submit(&self, batch: &Batch<RawEvent>) -> Result<(), Error> {
        (**self).submit(batch).await
    }
}

/// One decoded input item: an event to validate, or a quarantine entry. Not a `Result`: an
/// undecodable record is an expected outcome that travels on in the batch, not an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Decoded JSON, to be validated.
    Event(RawEvent),
    /// Could not be decoded; quarantined at stage `ingest`.
    Quarantined(Box<Quarantined>),
}

/// The kind of input recognised by [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// An MSK `KafkaEvent`.
    Kafka,
    /// An EventBridge event.
    EventBridge,
}

/// Recognises a trigger payload.
pub fn kind_of(input: &Value) -> Option<InputKind> {
    if input.get("eventSource").and_then(Value::as_str) == Some("aws:kafka") {
        Some(InputKind::Kafka)
    } else if input.get("detail-type").is_some() {
        Some(InputKind::EventBridge)
    } else {
        None
    }
}

/// Decodes a Kafka or EventBridge trigger payload into items.
pub fn decode(input: &Value) -> Result<Vec<Item>, Error> {
    match kind_of(input) {
        Some(InputKind::Kafka) => Ok(decode_kafka(input)),
        Some(InputKind::EventBridge) => decode_eventbridge(input),
        None => Err(Error::UnrecognisedInput(
            "expected an MSK event (eventSource \"aws:kafka\") or an EventBridge event (with \"detail-type\")".into(),
        )),
    }
}

/// Decodes an MSK `KafkaEvent`. Records are returned in topic-partition, then offset order.
pub fn decode_kafka(input: &Value) -> Vec<Item> {
    let mut items = Vec::new();
    let Some(records) = input.get("records").and_then(Value::as_object) else {
        return items;
    };
    let mut all: Vec<&Value> = records
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .collect();
    all.sort_by_key(|r| {
        (
            r.get("topic")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            r.get("partition")
                .and_then(Value::as_i64)
                .unwrap_or_default(),
            r.get("offset").and_then(Value::as_i64).unwrap_or_default(),
        )
    });
    for r in all {
        let provenance = Provenance::Kafka {
            topic: r
                .get("topic")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            partition: r
                .get("partition")
                .and_then(Value::as_i64)
                .unwrap_or_default(),
            offset: r.get("offset").and_then(Value::as_i64).unwrap_or_default(),
            key: r.get("key").and_then(Value::as_str).map(decode_key),
        };
        let raw = r.get("value").and_then(Value::as_str).unwrap_or_default();
        let item = match STANDARD.decode(raw) {
            Err(e) => Item::Quarantined(ingest_quarantine(
                Value::String(raw.to_owned()),
                provenance,
                Reason::at(
                    "bad_base64",
                    "/value",
                    format!("record value is not base64: {e}"),
                ),
            )),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(payload) => Item::Event(RawEvent {
                    payload,
                    provenance,
                }),
                Err(e) => Item::Quarantined(ingest_quarantine(
                    Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                    provenance,
                    Reason::new("malformed_json", format!("record value is not JSON: {e}")),
                )),
            },
        };
        items.push(item);
    }
    items
}

fn decode_key(b64: &str) -> String {
    match STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    {
        Some(text) => text,
        None => b64.to_owned(),
    }
}

/// Decodes an EventBridge event whose `detail` is one event or `{"events": [...]}`.
pub fn decode_eventbridge(input: &Value) -> Result<Vec<Item>, Error> {
    let text = |k: &str| {
        input
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (id, source, detail_type) = (text("id"), text("source"), text("detail-type"));
    let prov = |index| Provenance::Eventbridge {
        id: id.clone(),
        source: source.clone(),
        detail_type: detail_type.clone(),
        index,
    };
    let detail = input.get("detail").cloned().unwrap_or(Value::Null);
    match detail {
        Value::Object(mut map)
            if map.len() == 1 && map.get("events").is_some_and(Value::is_array) =>
        {
            let events = match map.remove("events") {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            Ok(events
                .into_iter()
                .enumerate()
                .map(|(i, payload)| {
                    Item::Event(RawEvent {
                        payload,
                        provenance: prov(Some(i)),
                    })
                })
                .collect())
        }
        Value::Object(map) => Ok(vec![Item::Event(RawEvent {
            payload: Value::Object(map),
            provenance: prov(None),
        })]),
        other => Ok(vec![Item::Quarantined(ingest_quarantine(
            other,
            prov(None),
            Reason::at(
                "bad_detail",
                "/detail",
                "detail must be an event object or {\"events\": [...]}",
            ),
        ))]),
    }
}

/// Decodes JSON Lines; blank lines are skipped.
pub fn decode_lines<'a>(
    path: &str,
    lines: impl IntoIterator<Item = (usize, &'a str)>,
) -> Vec<Item> {
    lines
        .into_iter()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| decode_line(path, n, line))
        .collect()
}

/// Decodes one line of JSON Lines (`line_no` is 1-based).
pub fn decode_line(path: &str, line_no: usize, line: &str) -> Item {
    let provenance = Provenance::File {
        path: path.to_owned(),
        line: line_no,
    };
    match serde_json::from_str::<Value>(line) {
        Ok(payload) => Item::Event(RawEvent {
            payload,
            provenance,
        }),
        Err(e) => Item::Quarantined(ingest_quarantine(
            Value::String(line.to_owned()),
            provenance,
            Reason::new("malformed_json", format!("line {line_no} is not JSON: {e}")),
        )),
    }
}

fn ingest_quarantine(payload: Value, provenance: Provenance, reason: Reason) -> Box<Quarantined> {
    Box::new(Quarantined {
        event_id: None,
        stage: Stage::Ingest,
        reasons: vec![reason],
        payload,
        provenance,
    })
}

/// Limits for [`split`].
#[derive(Debug, Clone, Copy)]
pub struct SplitLimits {
    /// Most items per batch.
    pub max_events: usize,
    /// Most payload bytes per batch.
    pub max_bytes: usize,
}

impl Default for SplitLimits {
    fn default() -> Self {
        SplitLimits {
            max_events: MAX_BATCH_EVENTS,
            max_bytes: MAX_BATCH_BYTES,
        }
    }
}

/// Cuts items into batches of at most `limits` (an item larger than `max_bytes` travels alone).
/// Batch ids are a hash of the items' provenance and content, so the same input always yields
/// the same batches and ids.
pub fn split(
    items: Vec<Item>,
    received_at: DateTime<Utc>,
    limits: SplitLimits,
) -> Vec<Batch<RawEvent>> {
    let mut batches = Vec::new();
    let mut cur: Vec<Item> = Vec::new();
    let mut bytes = 0usize;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for item in items {
        let size = match &item {
            Item::Event(r) => serialized_len(&r.payload),
            Item::Quarantined(q) => serialized_len(&q.payload),
        };
        if !cur.is_empty() && (cur.len() >= limits.max_events || bytes + size > limits.max_bytes) {
            batches.push(seal(std::mem::take(&mut cur), received_at, &mut hasher));
            bytes = 0;
        }
        match &item {
            Item::Event(r) => {
                hasher.update(&serde_json::to_vec(&r.provenance).unwrap_or_default());
                hasher.update(&serde_json::to_vec(&r.payload).unwrap_or_default());
            }
            Item::Quarantined(q) => {
                hasher.update(&serde_json::to_vec(&q.provenance).unwrap_or_default());
                hasher.update(&serde_json::to_vec(&q.payload).unwrap_or_default());
            }
        }
        bytes += size;
        cur.push(item);
    }
    if !cur.is_empty() {
        batches.push(seal(cur, received_at, &mut hasher));
    }
    batches
}

fn seal(
    items: Vec<Item>,
    received_at: DateTime<Utc>,
    hasher: &mut xxhash_rust::xxh3::Xxh3,
) -> Batch<RawEvent> {
    let id = format!("b-{:016x}", hasher.digest());
    hasher.reset();
    let input_count = items.len();
    let mut events = Vec::with_capacity(items.len());
    let mut quarantine = Vec::new();
    for item in items {
        match item {
            Item::Event(r) => events.push(r),
            Item::Quarantined(q) => quarantine.push(*q),
        }
    }
    Batch {
        batch_id: id,
        received_at,
        input_count,
        events,
        quarantine,
    }
}

/// The state machine's type, which decides how executions are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineType {
    /// Synchronous Express executions.
    Express,
    /// Standard executions, started then polled.
    Standard,
}

impl std::str::FromStr for MachineType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_uppercase().as_str() {
            "EXPRESS" => Ok(MachineType::Express),
            "STANDARD" => Ok(MachineType::Standard),
            other => Err(Error::Config(format!(
                "STATE_MACHINE_TYPE must be EXPRESS or STANDARD, not {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kafka_records_decode_and_bad_ones_are_quarantined() {
        let good = STANDARD.encode(br#"{"event_id":"a"}"#);
        let input = json!({"eventSource":"aws:kafka","records":{"t-0":[
            {"topic":"t","partition":0,"offset":2,"key":STANDARD.encode("k1"),"value":"!!notbase64"},
            {"topic":"t","partition":0,"offset":1,"value":good},
            {"topic":"t","partition":0,"offset":3,"value":STANDARD.encode("{oops")}]}});
        let items = decode(&input).expect("kafka");
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[0], Item::Event(r) if r.payload["event_id"] == "a"));
        let Item::Quarantined(q) = &items[1] else {
            panic!("offset 2 should be quarantined")
        };
        assert_eq!(q.reasons[0].code, "bad_base64");
        assert!(
            matches!(&q.provenance, Provenance::Kafka { offset: 2, key: Some(k), .. } if k == "k1")
        );
        assert!(matches!(&items[2], Item::Quarantined(q) if q.reasons[0].code == "malformed_json"));
    }

    #[test]
    fn eventbridge_single_and_list() {
        let one = json!({"id":"1","source":"s","detail-type":"t","detail":{"event_id":"a"}});
        assert_eq!(decode(&one).expect("one").len(), 1);
        let many = json!({"id":"1","source":"s","detail-type":"t","detail":{"events":[{"event_id":"a"},{"event_id":"b"}]}});
        assert_eq!(decode(&many).expect("many").len(), 2);
        assert!(decode(&json!({"hello":1})).is_err());
    }

    #[test]
    fn split_respects_limits_and_is_deterministic() {
        let items: Vec<Item> = (0..250)
            .map(|i| decode_line("f", i + 1, &format!(r#"{{"event_id":"e{i}"}}"#)))
            .collect();
        let now = Utc::now();
        let a = split(items.clone(), now, SplitLimits::default());
        let b = split(items, now, SplitLimits::default());
        assert_eq!(
            a.iter().map(|b| b.events.len()).collect::<Vec<_>>(),
            vec![100, 100, 50]
        );
        assert_eq!(
            a.iter().map(|b| &b.batch_id).collect::<Vec<_>>(),
            b.iter().map(|b| &b.batch_id).collect::<Vec<_>>()
        );
        assert_ne!(a[0].batch_id, a[1].batch_id);
        let big: Vec<Item> = (0..3)
            .map(|i| decode_line("f", i + 1, &format!(r#"{{"p":"{}"}}"#, "x".repeat(70_000))))
            .collect();
        assert_eq!(split(big, now, SplitLimits::default()).len(), 3);
    }

    #[test]
    fn machine_types_parse() {
        assert_eq!(
            "standard".parse::<MachineType>().ok(),
            Some(MachineType::Standard)
        );
        assert_eq!(
            "EXPRESS".parse::<MachineType>().ok(),
            Some(MachineType::Express)
        );
        assert!("sync".parse::<MachineType>().is_err());
    }
}
