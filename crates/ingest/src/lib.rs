//! pipeline-ingest: turn what a trigger delivers into batch documents.
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
//!
//! Layout: this module dispatches and decodes EventBridge events and JSON Lines; `kafka`
//! decodes MSK events; `split` bounds oversized items and cuts batches; `partial` names the
//! Kafka records to redeliver when some batches failed ([`records_to_retry`]); `shard` shards
//! and orders a backfill's items by entity and event time ([`shard::shard_batches`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use pipeline_core::Error;
use pipeline_core::batch::{Batch, Quarantined, RawEvent, Reason, Stage};
use pipeline_core::event::Provenance;
use pipeline_core::json::JsonError;

mod kafka;
mod partial;
pub mod registry;
pub mod shard;
mod split;

pub use kafka::{decode_kafka, decode_kafka_with};
pub use partial::{KafkaItem, records_to_retry};
pub use registry::{
    FetchError, Fetched, GlueRegistry, GlueSchemaVersion, GlueSchemas, Registry, StaticGlueSchemas,
    glue_version_ids,
};
pub use split::{KEPT_HEAD_BYTES, MAX_ITEM_BYTES, SplitLimits, Splitter, split};

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
    decode_with(input, &Registry::empty())
}

/// [`decode`], reading schema-registry Kafka values with `registry`.
pub fn decode_with(input: &Value, registry: &Registry) -> Result<Vec<Item>, Error> {
    match kind_of(input) {
        Some(InputKind::Kafka) => Ok(decode_kafka_with(input, registry)),
        Some(InputKind::EventBridge) => decode_eventbridge(input),
        None => Err(Error::UnrecognisedInput(
            "expected an MSK event (eventSource \"aws:kafka\") or an EventBridge event (with \"detail-type\")".into(),
        )),
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
    // A byte-order mark is an editor's signature, not part of the event (files written on
    // Windows start with one; concatenated files can carry one on any line).
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    let provenance = Provenance::File {
        path: path.to_owned(),
        line: line_no,
    };
    match pipeline_core::json::parse(line.as_bytes()) {
        Ok(payload) => Item::Event(RawEvent {
            payload,
            provenance,
        }),
        Err(e) => Item::Quarantined(unparsed(
            line.as_bytes(),
            Value::String(line.to_owned()),
            provenance,
            json_reason(&format!("line {line_no}"), &e),
        )),
    }
}

/// The quarantine entry of text that did not parse, named by the event id it plainly carries
/// (so that `pipeline show ID` finds it).
pub(crate) fn unparsed(
    text: &[u8],
    payload: Value,
    provenance: Provenance,
    reason: Reason,
) -> Box<Quarantined> {
    let mut q = ingest_quarantine(payload, provenance, reason);
    q.event_id = recover_event_id(text);
    q
}

/// The `event_id` of text that is not (acceptable) JSON, when it holds exactly one
/// `"event_id": "…"` whose value is a valid id (1-128 of `A-Z a-z 0-9 . _ : -`, so no
/// escapes to interpret); `None` when there is none, or several different ones (a line with a
/// repeated key is refused precisely because which one counts would be a guess).
pub fn recover_event_id(text: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"event_id\"";
    let mut found: Option<&[u8]> = None;
    let mut at = 0;
    while let Some(i) = text[at..].windows(KEY.len()).position(|w| w == KEY) {
        let mut j = at + i + KEY.len();
        at = j;
        let skip_ws = |j: &mut usize| {
            while text.get(*j).is_some_and(u8::is_ascii_whitespace) {
                *j += 1;
            }
        };
        skip_ws(&mut j);
        if text.get(j) != Some(&b':') {
            continue;
        }
        j += 1;
        skip_ws(&mut j);
        if text.get(j) != Some(&b'"') {
            continue;
        }
        let start = j + 1;
        let len = text[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
            .count();
        if len == 0 || len > 128 || text.get(start + len) != Some(&b'"') {
            continue;
        }
        let id = &text[start..start + len];
        match found {
            Some(f) if f != id => return None,
            _ => found = Some(id),
        }
    }
    found.map(|id| String::from_utf8_lossy(id).into_owned())
}

/// The quarantine reason for text that [`pipeline_core::json::parse`] refused.
pub(crate) fn json_reason(what: &str, e: &JsonError) -> Reason {
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
        .filter_map(|(i, line)| decode_byte_line(path, i + 1, line))
        .collect()
}

/// Decodes one line of JSON Lines given as bytes (`line_no` is 1-based; a trailing `\r` is
/// ignored): `None` for a blank line, a quarantined item for bytes that are not UTF-8 or not
/// JSON. What [`decode_byte_lines`] does per line, for inputs read as a stream.
pub fn decode_byte_line(path: &str, line_no: usize, line: &[u8]) -> Option<Item> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some(match std::str::from_utf8(line) {
        Ok(text) if text.trim().is_empty() => return None,
        Ok(text) => decode_line(path, line_no, text),
        Err(e) => Item::Quarantined(unparsed(
            line,
            Value::String(STANDARD.encode(line)),
            Provenance::File {
                path: path.to_owned(),
                line: line_no,
            },
            Reason::new(
                "invalid_utf8",
                format!(
                    "line {line_no} is not valid UTF-8 (first bad byte at offset {}); its bytes are kept, base64-encoded",
                    e.valid_up_to()
                ),
            ),
        )),
    })
}

pub(crate) fn ingest_quarantine(
    payload: Value,
    provenance: Provenance,
    reason: Reason,
) -> Box<Quarantined> {
    Box::new(Quarantined {
        event_id: None,
        stage: Stage::Ingest,
        reasons: vec![reason],
        payload,
        provenance,
    })
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
    use chrono::Utc;
    use pipeline_core::batch::serialized_len;
    use serde_json::json;

    #[test]
    fn an_unparsed_line_is_named_by_the_event_id_it_plainly_carries() {
        // Issue 25, case 13: lines quarantined at ingest carried no event id, so `show ID`
        // found nothing for an id plainly in the input.
        for (line, id) in [
            (r#"{"event_id":"evt-1","value":1e309}"#, Some("evt-1")),
            (
                r#"{"event_id" : "evt-2","value":1,"value":2}"#,
                Some("evt-2"),
            ),
            (
                r#"{"event_id":"evt-3","event_id":"evt-3","x":"#,
                Some("evt-3"),
            ),
            (r#"{"event_id":"a","event_id":"b"}"#, None),
            (r#"{"event_id":"has space","x":"#, None),
            (r#"{"event_id":"esc\u0041","x":"#, None),
            ("not json at all", None),
        ] {
            let Item::Quarantined(q) = decode_line("f", 1, line) else {
                panic!("{line} parsed")
            };
            assert_eq!(q.event_id.as_deref(), id, "{line}");
        }
        let Some(Item::Quarantined(q)) =
            decode_byte_line("f", 1, b"{\"event_id\":\"evt-4\",\"v\":\"\xff\"}")
        else {
            panic!("not UTF-8 parsed")
        };
        assert_eq!(q.event_id.as_deref(), Some("evt-4"));
    }

    #[test]
    fn kafka_offsets_are_kept_as_sent_or_the_record_is_quarantined() {
        // Issue 25, case 19: offsets given as "6" or 7.5 were stored as offset 0, another
        // record's origin.
        let v = STANDARD.encode(br#"{"event_id":"a"}"#);
        let input = json!({"eventSource":"aws:kafka","records":{"t-0":[
            {"topic":"t","partition":"0","offset":"6","value":v},
            {"topic":"t","partition":0,"offset":7.5,"value":v},
            {"topic":"t","partition":0,"offset":{"n":8},"value":v},
            {"topic":"t","partition":0,"value":v}]}});
        let items = decode(&input).expect("kafka");
        assert_eq!(items.len(), 4);
        let origins: Vec<(i64, i64)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Event(RawEvent {
                    provenance:
                        Provenance::Kafka {
                            partition, offset, ..
                        },
                    ..
                }) => Some((*partition, *offset)),
                _ => None,
            })
            .collect();
        assert_eq!(origins, [(0, -1), (0, 6)], "absent is -1, text is read");
        let refused: Vec<&str> = items
            .iter()
            .filter_map(|i| match i {
                Item::Quarantined(q) => Some(q.reasons[0].message.as_str()),
                Item::Event(_) => None,
            })
            .collect();
        assert_eq!(refused.len(), 2);
        assert!(refused.iter().any(|m| m.contains("7.5")), "{refused:?}");
    }

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
                    .all(|r| r.message.len() <= pipeline_core::batch::MAX_REASON_BYTES)
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
