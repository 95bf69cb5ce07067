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
use sha2::Digest;

use crate::Error;
use crate::batch::{
    Batch, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, Quarantined, RawEvent, Reason, Stage, serialized_len,
};
use crate::event::Provenance;
use crate::json::JsonError;

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
///
/// Nothing in the envelope vanishes: `records` should map each `topic-partition` to an array
/// of records, and whatever else is found is recovered where it can be (an array of records in
/// place of the map, a single record in place of an array) or quarantined as `bad_envelope`
/// with the part that could not be read (a partition that is `null`, a number, a map of
/// something else; a record that is not an object; a `records` that is missing or not a
/// collection at all, which quarantines the envelope as a whole).
pub fn decode_kafka(input: &Value) -> Vec<Item> {
    let mut items = Vec::new();
    let mut records: Vec<&Value> = Vec::new();
    let envelope_provenance = |part: &str| Provenance::Kafka {
        topic: part.to_owned(),
        partition: -1,
        offset: -1,
        key: None,
    };
    let mut bad = |part: &str, pointer: String, value: &Value, what: String| {
        items.push(Item::Quarantined(ingest_quarantine(
            value.clone(),
            envelope_provenance(part),
            Reason::at("bad_envelope", pointer, what),
        )));
    };
    match input.get("records") {
        Some(Value::Object(partitions)) => {
            for (name, partition) in partitions {
                let pointer = format!("/records/{}", pointer_escape(name));
                match partition {
                    Value::Array(list) => {
                        for (i, r) in list.iter().enumerate() {
                            if r.is_object() {
                                records.push(r);
                            } else {
                                bad(
                                    name,
                                    format!("{pointer}/{i}"),
                                    r,
                                    format!("record {i} of {name} is not an object"),
                                );
                            }
                        }
                    }
                    // One record where a list of them was expected: still a record.
                    Value::Object(o) if o.contains_key("value") => records.push(partition),
                    other => bad(
                        name,
                        pointer,
                        other,
                        format!(
                            "partition {name} holds {} instead of an array of records",
                            kind_name(other)
                        ),
                    ),
                }
            }
        }
        // A list of records in place of the map of partitions: the records are all there.
        Some(Value::Array(list)) => {
            for (i, r) in list.iter().enumerate() {
                if r.is_object() {
                    records.push(r);
                } else {
                    bad(
                        "",
                        format!("/records/{i}"),
                        r,
                        format!("record {i} is not an object"),
                    );
                }
            }
        }
        other => {
            let what = match other {
                None => "the MSK event has no \"records\"".to_owned(),
                Some(v) => format!(
                    "\"records\" is {} instead of a map of partitions",
                    kind_name(v)
                ),
            };
            bad("", "/records".into(), input, what);
        }
    }
    records.sort_by_key(|r| {
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
    for r in records {
        items.push(decode_kafka_record(r));
    }
    items
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `name` as one JSON Pointer segment (RFC 6901).
fn pointer_escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn decode_kafka_record(r: &Value) -> Item {
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
    match STANDARD.decode(raw) {
        Err(e) => Item::Quarantined(ingest_quarantine(
            Value::String(raw.to_owned()),
            provenance,
            Reason::at(
                "bad_base64",
                "/value",
                format!("record value is not base64: {e}"),
            ),
        )),
        Ok(bytes) => match crate::json::parse(&bytes) {
            Ok(payload) => Item::Event(RawEvent {
                payload,
                provenance,
            }),
            Err(e) => Item::Quarantined(ingest_quarantine(
                Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                provenance,
                json_reason("record value", &e),
            )),
        },
    }
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
    match crate::json::parse(line.as_bytes()) {
        Ok(payload) => Item::Event(RawEvent {
            payload,
            provenance,
        }),
        Err(e) => Item::Quarantined(ingest_quarantine(
            Value::String(line.to_owned()),
            provenance,
            json_reason(&format!("line {line_no}"), &e),
        )),
    }
}

/// The quarantine reason for text that [`crate::json::parse`] refused.
fn json_reason(what: &str, e: &JsonError) -> Reason {
    match e {
        JsonError::Malformed(e) => {
            Reason::new("malformed_json", format!("{what} is not JSON: {e}"))
        }
        JsonError::DuplicateKey(e) => Reason::new(
            "duplicate_key",
            format!(
                "{what} repeats a key inside one object (which value counts would be a guess): {e}"
            ),
        ),
    }
}

/// Decodes JSON Lines given as bytes: like [`decode_lines`], except that a line that is not
/// valid UTF-8 is quarantined (`invalid_utf8`, its bytes kept as base64, with its line number)
/// instead of failing the whole input.
pub fn decode_byte_lines(path: &str, bytes: &[u8]) -> Vec<Item> {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(n, line)| match std::str::from_utf8(line) {
            Ok(text) => decode_line(path, n, text),
            Err(e) => Item::Quarantined(ingest_quarantine(
                Value::String(STANDARD.encode(line)),
                Provenance::File {
                    path: path.to_owned(),
                    line: n,
                },
                Reason::new(
                    "invalid_utf8",
                    format!(
                        "line {n} is not valid UTF-8 (first bad byte at offset {}); its bytes are kept, base64-encoded",
                        e.valid_up_to()
                    ),
                ),
            )),
        })
        .collect()
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
        let item = bound_item(item);
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

/// The largest payload a batch document carries whole: [`MAX_BATCH_BYTES`], so that one item
/// alone still fits a Step Functions document (256 KB) and a DynamoDB item (400 KB).
pub const MAX_ITEM_BYTES: usize = MAX_BATCH_BYTES;
/// How much of an oversized payload is kept (its serialised JSON text, cut at a character).
pub const KEPT_HEAD_BYTES: usize = 8 * 1024;

/// An item whose payload is larger than [`MAX_ITEM_BYTES`] becomes a `too_large` quarantine
/// entry whose payload stands in for the original: its size, SHA-256 and first bytes. Without
/// this, one 1 MB Kafka message would make a batch no Step Functions execution accepts, retried
/// forever; with it, the rest of the batch goes on and the message is identifiable.
fn bound_item(item: Item) -> Item {
    let (payload, provenance, mut reasons) = match item {
        Item::Event(r) => {
            if serialized_len(&r.payload) <= MAX_ITEM_BYTES {
                return Item::Event(r);
            }
            (r.payload, r.provenance, Vec::new())
        }
        Item::Quarantined(q) => {
            if serialized_len(&q.payload) <= MAX_ITEM_BYTES {
                return Item::Quarantined(q);
            }
            let q = *q;
            (q.payload, q.provenance, q.reasons)
        }
    };
    let text = serde_json::to_string(&payload).unwrap_or_default();
    let mut end = KEPT_HEAD_BYTES.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let digest = sha2::Sha256::digest(text.as_bytes());
    let sha256: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let event_id = payload
        .get("event_id")
        .and_then(Value::as_str)
        .filter(|id| id.len() <= 256)
        .map(str::to_owned);
    reasons.push(Reason::new(
        "too_large",
        format!(
            "the payload is {} bytes, more than the {MAX_ITEM_BYTES} a batch document carries; kept: its size, SHA-256 and first {end} bytes",
            text.len()
        ),
    ));
    Item::Quarantined(Box::new(Quarantined {
        event_id,
        stage: Stage::Ingest,
        reasons,
        payload: serde_json::json!({
            "truncated": true,
            "bytes": text.len(),
            "sha256": sha256,
            "head": &text[..end],
        }),
        provenance,
    }))
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

    /// Case 3 of issue 9: no envelope shape makes records vanish.
    #[test]
    fn kafka_envelopes_of_unexpected_shape_lose_nothing() {
        let rec = |offset: i64| {
            json!({"topic":"t","partition":0,"offset":offset,
                   "value": STANDARD.encode(format!(r#"{{"event_id":"e{offset}"}}"#))})
        };
        let codes = |items: &[Item]| -> Vec<String> {
            items
                .iter()
                .map(|i| match i {
                    Item::Event(r) => r.payload["event_id"].as_str().unwrap_or("?").to_owned(),
                    Item::Quarantined(q) => q.reasons[0].code.clone(),
                })
                .collect()
        };
        // records as an array: every record recovered.
        let array = json!({"eventSource":"aws:kafka","records":[rec(1), rec(2), 7]});
        assert_eq!(codes(&decode_kafka(&array)), ["bad_envelope", "e1", "e2"]);
        // partition values that are an object, a map of something else, null, a number.
        let odd = json!({"eventSource":"aws:kafka","records":{
            "t-0": rec(3),
            "t-1": {"x": 1},
            "t-2": null,
            "t-3": 5,
            "t-4": [rec(4), "junk"]}});
        let items = decode_kafka(&odd);
        let mut got = codes(&items);
        got.sort();
        assert_eq!(
            got,
            [
                "bad_envelope",
                "bad_envelope",
                "bad_envelope",
                "bad_envelope",
                "e3",
                "e4"
            ]
        );
        let pointers: Vec<&str> = items
            .iter()
            .filter_map(|i| match i {
                Item::Quarantined(q) => q.reasons[0].path.as_deref(),
                Item::Event(_) => None,
            })
            .collect();
        assert!(pointers.contains(&"/records/t-2"), "{pointers:?}");
        assert!(pointers.contains(&"/records/t-4/1"), "{pointers:?}");
        // No records at all, or records of the wrong type: the envelope itself is quarantined.
        for envelope in [
            json!({"eventSource":"aws:kafka"}),
            json!({"eventSource":"aws:kafka","records":null}),
            json!({"eventSource":"aws:kafka","records":"t-0"}),
        ] {
            let items = decode_kafka(&envelope);
            assert_eq!(codes(&items), ["bad_envelope"], "{envelope}");
            let Item::Quarantined(q) = &items[0] else {
                unreachable!()
            };
            assert_eq!(q.payload, envelope, "the envelope is kept whole");
        }
        // An empty map of partitions is an empty delivery, not a malformed one.
        assert!(decode_kafka(&json!({"eventSource":"aws:kafka","records":{}})).is_empty());
    }

    /// Case 2 of issue 9: one line of invalid UTF-8 is quarantined, the rest processed.
    #[test]
    fn invalid_utf8_lines_are_quarantined_with_their_bytes() {
        let mut input = b"{\"event_id\":\"a\"}\n".to_vec();
        input.extend_from_slice(b"\xff\xfe{\"event_id\":\"b\"}\r\n\n");
        input.extend_from_slice(b"{\"event_id\":\"c\"}");
        let items = decode_byte_lines("f.jsonl", &input);
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[0], Item::Event(r) if r.payload["event_id"] == "a"));
        assert!(matches!(&items[2], Item::Event(r) if r.payload["event_id"] == "c"));
        let Item::Quarantined(q) = &items[1] else {
            panic!("line 2 should be quarantined")
        };
        assert_eq!(q.reasons[0].code, "invalid_utf8");
        assert!(q.reasons[0].message.contains("line 2"), "{:?}", q.reasons);
        assert!(matches!(&q.provenance, Provenance::File { line: 2, .. }));
        let kept = STANDARD
            .decode(q.payload.as_str().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(kept, b"\xff\xfe{\"event_id\":\"b\"}");
    }

    /// Case 10 of issue 9: a repeated key is refused, in a line and in a Kafka record.
    #[test]
    fn duplicate_keys_are_quarantined_not_last_one_wins() {
        let line = r#"{"event_id":"a","entity_id":"x","entity_id":"y"}"#;
        let Item::Quarantined(q) = decode_line("f", 1, line) else {
            panic!("a duplicate key must be quarantined")
        };
        assert_eq!(q.reasons[0].code, "duplicate_key");
        assert_eq!(
            q.payload,
            Value::String(line.to_owned()),
            "the raw line is kept"
        );
        let kafka = json!({"eventSource":"aws:kafka","records":{"t-0":[
            {"topic":"t","partition":0,"offset":1,"value":STANDARD.encode(line)}]}});
        let items = decode_kafka(&kafka);
        assert!(matches!(&items[0], Item::Quarantined(q) if q.reasons[0].code == "duplicate_key"));
    }

    /// Case 9 of issue 9: an oversized payload cannot wedge its batch.
    #[test]
    fn oversized_payloads_are_quarantined_as_a_bounded_stand_in() {
        let huge = "x".repeat(1024 * 1024);
        let line = format!(r#"{{"event_id":"big","note":"{huge}"}}"#);
        let items = vec![
            decode_line("f", 1, &line),
            decode_line("f", 2, r#"{"event_id":"small"}"#),
            decode_line("f", 3, &format!("{{not json {huge}")),
        ];
        let batches = split(items, Utc::now(), SplitLimits::default());
        let total: usize = batches.iter().map(|b| b.input_count).sum();
        assert_eq!(total, 3, "nothing lost");
        let quarantine: Vec<&Quarantined> = batches.iter().flat_map(|b| &b.quarantine).collect();
        assert_eq!(quarantine.len(), 2);
        for q in &quarantine {
            assert!(
                serialized_len(&q.payload) < 10 * 1024,
                "{}",
                serialized_len(&q.payload)
            );
            assert_eq!(q.payload["truncated"], true);
            assert_eq!(q.payload["sha256"].as_str().map(str::len), Some(64));
            assert!(q.reasons.iter().any(|r| r.code == "too_large"));
            assert!(
                q.reasons
                    .iter()
                    .all(|r| r.message.len() <= crate::batch::MAX_REASON_BYTES)
            );
        }
        let big = quarantine
            .iter()
            .find(|q| q.event_id.as_deref() == Some("big"));
        assert!(big.is_some(), "the event id is kept when there is one");
        // A malformed line keeps its first reason and gains the size one.
        assert!(
            quarantine
                .iter()
                .any(|q| q.reasons[0].code == "malformed_json" && q.reasons.len() == 2)
        );
        let events: usize = batches.iter().map(|b| b.events.len()).sum();
        assert_eq!(events, 1);
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
