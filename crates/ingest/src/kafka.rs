//! MSK `KafkaEvent` decoding: every record, in topic-partition then offset order, and every part
//! of the envelope that is not a record quarantined, never dropped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::registry::Registry;
use super::{Item, ingest_quarantine, json_reason};
use pipeline_core::batch::{RawEvent, Reason};
use pipeline_core::event::Provenance;

/// Decodes an MSK `KafkaEvent`. Records are returned in topic-partition, then offset order.
///
/// Nothing in the envelope vanishes: `records` should map each `topic-partition` to an array
/// of records, and whatever else is found is recovered where it can be (an array of records in
/// place of the map, a single record in place of an array) or quarantined as `bad_envelope`
/// with the part that could not be read (a partition that is `null`, a number, a map of
/// something else; a record that is not an object; a `records` that is missing or not a
/// collection at all, which quarantines the envelope as a whole).
pub fn decode_kafka(input: &Value) -> Vec<Item> {
    decode_kafka_with(input, &Registry::empty())
}

/// [`decode_kafka`], reading schema-registry values with `registry` (see [`super::registry`]).
pub fn decode_kafka_with(input: &Value, registry: &Registry) -> Vec<Item> {
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
            int_field(r, "partition").unwrap_or(-1),
            int_field(r, "offset").unwrap_or(-1),
        )
    });
    for r in records {
        items.push(decode_kafka_record(r, registry));
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

/// A record's partition or offset as sent: an integer, or a string of one (some producers
/// and replays write them as text); -1 when absent. Anything else (7.5, a word, an object) is
/// an error describing it: storing it as offset 0 would name another record's origin.
fn int_field(r: &Value, key: &str) -> Result<i64, String> {
    match r.get(key) {
        None | Some(Value::Null) => Ok(-1),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("record {key} {n} is not an integer")),
        Some(Value::String(t)) => t
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("record {key} {t:?} is not an integer")),
        Some(other) => Err(format!(
            "record {key} is {} instead of an integer",
            kind_name(other)
        )),
    }
}

fn decode_kafka_record(r: &Value, registry: &Registry) -> Item {
    let topic = r
        .get("topic")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let key = r.get("key").and_then(Value::as_str).map(decode_key);
    let refuse = |pointer: &str, what: String, key: Option<String>| {
        Item::Quarantined(ingest_quarantine(
            r.clone(),
            Provenance::Kafka {
                topic: topic.clone(),
                partition: -1,
                offset: -1,
                key,
            },
            Reason::at("bad_envelope", pointer, what),
        ))
    };
    let (partition, offset) = match (int_field(r, "partition"), int_field(r, "offset")) {
        (Ok(p), Ok(o)) => (p, o),
        (Err(what), _) => return refuse("/partition", what, key),
        (_, Err(what)) => return refuse("/offset", what, key),
    };
    let provenance = Provenance::Kafka {
        topic,
        partition,
        offset,
        key,
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
        Ok(bytes) if !registry.is_empty() => {
            let topic = match &provenance {
                Provenance::Kafka { topic, .. } => topic.as_str(),
                _ => "",
            };
            let schema_id = r
                .pointer("/valueSchemaMetadata/schemaId")
                .and_then(Value::as_str);
            let key = r
                .get("key")
                .and_then(Value::as_str)
                .and_then(|k| STANDARD.decode(k).ok());
            match registry.decode(topic, &bytes, schema_id, key.as_deref()) {
                Ok(Some(payload)) => Item::Event(RawEvent {
                    payload,
                    provenance,
                }),
                Ok(None) => json_item(&bytes, provenance),
                // The original bytes, base64 as the record carried them.
                Err(reason) => Item::Quarantined(ingest_quarantine(
                    Value::String(raw.to_owned()),
                    provenance,
                    reason,
                )),
            }
        }
        Ok(bytes) => json_item(&bytes, provenance),
    }
}

fn json_item(bytes: &[u8], provenance: Provenance) -> Item {
    match pipeline_core::json::parse(bytes) {
        Ok(payload) => Item::Event(RawEvent {
            payload,
            provenance,
        }),
        Err(e) => Item::Quarantined(super::unparsed(
            bytes,
            Value::String(String::from_utf8_lossy(bytes).into_owned()),
            provenance,
            json_reason("record value", &e),
        )),
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
