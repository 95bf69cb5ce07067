//! Item mapping: the pipeline's records to DynamoDB items and back, and item sizes.
//!
//! Every item keeps the whole document as JSON (`record` or `state`), and reads decode only
//! that, so a stored item round-trips exactly (the same documents the SQLite store keeps).
//! Records and quarantine records are JSON strings; the entity state is raw-deflated JSON in a
//! binary attribute (see [`entity_item`]); a state stored as a string (before 2026-12-07)
//! still reads. The other attributes are copies of the fields people filter on in the
//! console or with PartiQL, plus the keys of the anomaly index:
//!
//! | table      | key             | other attributes |
//! |------------|-----------------|------------------|
//! | events     | `event_id`      | `entity_id`, `version` (N), `content_hash`, `status`, `occurred_at`, `anomaly_entity` (only on anomalies), `record` (the rest of the record as JSON: event, enrichment, score and reasons, provenance, first/last persisted times), `write_token` |
//! | entities   | `entity_id`     | `version` (N), `state` (B: deflated JSON), `write_token` |
//! | quarantine | `quarantine_id` | `batch_id`, `event_id`, `stage`, `reasons` (JSON), `quarantined_at`, `record` |
//!
//! Record and state items also carry `write_token`, unique per logical write (see
//! [`write_token`]).
//!
//! `anomaly_entity` is the partition key of the `anomalies-by-entity` index; it is written only
//! on anomalous records, which keeps the index sparse (it holds anomalies and nothing else).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use pipeline_core::detect::EntityState;
use pipeline_core::store::{EventRecord, QuarantineRecord, RecordStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Key attribute of the events table.
pub(crate) const EVENT_KEY: &str = "event_id";
/// Key attribute of the entities table.
pub(crate) const ENTITY_KEY: &str = "entity_id";
/// Key attribute of the quarantine table.
pub(crate) const QUARANTINE_KEY: &str = "quarantine_id";
/// Partition key of the sparse anomaly index.
pub(crate) const ANOMALY_ENTITY: &str = "anomaly_entity";
/// Sort key of the anomaly index.
pub(crate) const OCCURRED_AT: &str = "occurred_at";
/// Name of the anomaly index.
pub(crate) const ANOMALY_INDEX: &str = "anomalies-by-entity";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn time(t: &DateTime<Utc>) -> AttributeValue {
    s(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn json<T: Serialize>(what: &'static str, v: &T) -> Result<AttributeValue, Error> {
    serde_json::to_string(v)
        .map(AttributeValue::S)
        .map_err(|source| Error::Encode { what, source })
}

/// Attribute holding the [`write_token`] of the write that stored the item.
pub(crate) const WRITE_TOKEN: &str = "write_token";

/// A token unique to one logical conditional write, stored in the item it writes.
///
/// When a write lands but its response is lost (a timeout, a 5xx after the fact), the SDK
/// retries it, and the retry fails its own condition against the item the first attempt
/// wrote. The failed condition returns that item; finding this write's token in it tells the
/// store the write did happen, so it reports `Written` instead of a conflict with itself.
/// Unique across processes: process id and start time, then a counter.
pub(crate) fn write_token() -> String {
    static PROCESS: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = PROCESS.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        // Folded to 48 bits of base 36: the token is on every item, and item bytes are billed.
        let seed = (u128::from(std::process::id()) << 64) ^ nanos;
        let folded = ((seed >> 64) as u64 ^ seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16;
        base36(folded)
    });
    format!("{process}.{}", base36(NEXT.fetch_add(1, Ordering::Relaxed)))
}

fn base36(mut v: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Whether `item` was stored by the write that carried `token`.
pub(crate) fn written_by(item: &Item, token: &str) -> bool {
    string(item, WRITE_TOKEN) == Some(token)
}

/// A single-attribute key item.
pub(crate) fn key(name: &str, value: &str) -> Item {
    HashMap::from([(name.to_owned(), s(value))])
}

/// The string value of `name`, if the item has one.
pub(crate) fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// Decodes the JSON document in attribute `attr` of an item of `table` keyed by `key_attr`.
pub(crate) fn decode<T: DeserializeOwned>(
    table: &str,
    key_attr: &str,
    attr: &'static str,
    item: &Item,
) -> Result<T, Error> {
    let key = string(item, key_attr).unwrap_or("<no key>").to_owned();
    let Some(text) = string(item, attr) else {
        return Err(Error::MissingAttribute {
            table: table.to_owned(),
            key,
            attribute: attr,
        });
    };
    serde_json::from_str(text).map_err(|source| Error::Decode {
        table: table.to_owned(),
        key,
        source,
    })
}

/// Fields of [`EventRecord`] that are stored as their own attributes and therefore left out of
/// the `record` JSON (they are put back on read). Item size is what DynamoDB bills: one write
/// unit per started KB, so a ~300-byte event must fit its record in one KB.
const RECORD_ATTRIBUTES: [&str; 6] = [
    "event_id",
    "entity_id",
    "version",
    "content_hash",
    "status",
    OCCURRED_AT,
];

/// The item of a stored event record, written by the write carrying `token`.
pub(crate) fn event_item(r: &EventRecord, token: &str) -> Result<Item, Error> {
    let mut item = Item::with_capacity(9);
    item.insert(WRITE_TOKEN.into(), s(token));
    item.insert(EVENT_KEY.into(), s(&r.event_id));
    item.insert("entity_id".into(), s(&r.entity_id));
    item.insert("version".into(), n(r.version));
    item.insert("content_hash".into(), s(&r.content_hash));
    let status = match r.status {
        RecordStatus::Persisted => "persisted",
        RecordStatus::Updated => "updated",
    };
    item.insert("status".into(), s(status));
    item.insert(OCCURRED_AT.into(), s(&r.occurred_at));
    if r.detection.is_anomaly {
        item.insert(ANOMALY_ENTITY.into(), s(&r.entity_id));
    }
    let mut doc = serde_json::to_value(r).map_err(|source| Error::Encode {
        what: "event record",
        source,
    })?;
    if let Some(map) = doc.as_object_mut() {
        for k in RECORD_ATTRIBUTES {
            map.remove(k);
        }
        // Most records are written once: then the last write time is the first one.
        if map.get("last_persisted_at") == map.get("first_persisted_at") {
            map.remove("last_persisted_at");
        }
    }
    item.insert("record".into(), json("event record", &doc)?);
    Ok(item)
}

/// The item of an entity's state, written by the write carrying `token`.
pub(crate) fn entity_item(state: &EntityState, token: &str) -> Result<Item, Error> {
    Ok(HashMap::from([
        (ENTITY_KEY.to_owned(), s(&state.entity_id)),
        ("version".to_owned(), n(state.version)),
        ("state".to_owned(), deflated_json("entity state", state)?),
        (WRITE_TOKEN.to_owned(), s(token)),
    ]))
}

/// `v` as JSON, raw-deflated, in a binary attribute. The state is written on every batch that
/// touches its entity, inside a transaction that bills 2 WRU per started KB; detector v3's
/// state averages 1,180 bytes of JSON on the sample stream (most of it base64 of hashes and of
/// the packed value model) and deflates to about 850, so it goes from two billed KB to one.
/// Raw deflate (no zlib header) via `flate2`, already in the tree for Glue records.
fn deflated_json<T: Serialize>(what: &'static str, v: &T) -> Result<AttributeValue, Error> {
    use std::io::Write;
    let text = serde_json::to_vec(v).map_err(|source| Error::Encode { what, source })?;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&text)
        .and_then(|()| z.finish())
        .map(|bytes| AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bytes)))
        .map_err(|e| Error::Encode {
            what,
            source: serde_json::Error::io(e),
        })
}

/// The item of a quarantine record.
pub(crate) fn quarantine_item(q: &QuarantineRecord) -> Result<Item, Error> {
    let mut item = Item::with_capacity(7);
    item.insert(QUARANTINE_KEY.into(), s(&q.quarantine_id));
    item.insert("batch_id".into(), s(&q.batch_id));
    if let Some(id) = &q.item.event_id {
        item.insert("event_id".into(), s(id));
    }
    item.insert("stage".into(), s(q.item.stage.as_str()));
    item.insert(
        "reasons".into(),
        json("quarantine reasons", &q.item.reasons)?,
    );
    item.insert("quarantined_at".into(), time(&q.quarantined_at));
    if let Some(at) = q.expires_at {
        // The table's TTL attribute: DynamoDB deletes the item some time after this.
        item.insert("expires_at".into(), AttributeValue::N(at.to_string()));
    }
    item.insert("record".into(), json("quarantine record", q)?);
    Ok(item)
}

/// Decodes an events-table (or anomaly-index) item: the `record` JSON plus the fields kept as
/// attributes.
pub(crate) fn event_of(table: &str, item: &Item) -> Result<EventRecord, Error> {
    let mut doc: serde_json::Value = decode(table, EVENT_KEY, "record", item)?;
    if let Some(map) = doc.as_object_mut() {
        for k in RECORD_ATTRIBUTES {
            let v = match item.get(k) {
                Some(AttributeValue::S(text)) => serde_json::Value::String(text.clone()),
                Some(AttributeValue::N(num)) => num
                    .parse::<u64>()
                    .map(serde_json::Value::from)
                    .unwrap_or_default(),
                _ => continue,
            };
            map.insert(k.to_owned(), v);
        }
        if !map.contains_key("last_persisted_at") {
            if let Some(first) = map.get("first_persisted_at").cloned() {
                map.insert("last_persisted_at".to_owned(), first);
            }
        }
    }
    let key = string(item, EVENT_KEY).unwrap_or("<no key>").to_owned();
    serde_json::from_value(doc).map_err(|source| Error::Decode {
        table: table.to_owned(),
        key,
        source,
    })
}

/// Decodes an entities-table item.
pub(crate) fn entity_of(table: &str, item: &Item) -> Result<EntityState, Error> {
    let Some(AttributeValue::B(bytes)) = item.get("state") else {
        // Stored before states were deflated, or missing (which `decode` reports).
        return decode(table, ENTITY_KEY, "state", item);
    };
    let json = flate2::read::DeflateDecoder::new(bytes.as_ref());
    serde_json::from_reader(json).map_err(|source| Error::Decode {
        table: table.to_owned(),
        key: string(item, ENTITY_KEY).unwrap_or("<no key>").to_owned(),
        source,
    })
}

/// Decodes a quarantine-table item.
pub(crate) fn quarantine_of(table: &str, item: &Item) -> Result<QuarantineRecord, Error> {
    decode(table, QUARANTINE_KEY, "record", item)
}

/// An item's size as DynamoDB bills it: each attribute's name in UTF-8 bytes plus its value
/// (strings in UTF-8 bytes; numbers about one byte per two significant digits plus one;
/// booleans and nulls one byte), per the "Item sizes" page of the DynamoDB developer guide.
pub(crate) fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, v)| name.len() + value_size(v))
        .sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        _ => 0,
    }
}

fn number_size(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

/// Write capacity units of a standard write of an item of `size` bytes: one per started KB.
pub(crate) fn write_units(size: usize) -> u64 {
    size.div_ceil(1024).max(1) as u64
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_documented_rule() {
        assert_eq!(number_size("1"), 2);
        assert_eq!(number_size("12345"), 4);
        assert_eq!(number_size("0.000123"), 3);
        assert_eq!(number_size("1.5e-130"), 2);
        let item = HashMap::from([("ab".to_owned(), s("xyz")), ("n".to_owned(), n(100))]);
        assert_eq!(item_size(&item), 2 + 3 + 1 + 2);
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
    }

    #[test]
    fn write_tokens_are_unique() {
        let a = write_token();
        let b = write_token();
        assert_ne!(a, b);
        let item = HashMap::from([(WRITE_TOKEN.to_owned(), s(&a))]);
        assert!(written_by(&item, &a));
        assert!(!written_by(&item, &b));
    }

    #[test]
    fn missing_document_is_reported_with_its_key() {
        let item = key(EVENT_KEY, "e1");
        let err = event_of("t", &item).unwrap_err();
        assert!(err.to_string().contains("e1"), "{err}");
    }

    /// The largest state of the sample stream (`events/persist/entity-state-largest.json`).
    fn largest_state() -> EntityState {
        let text = include_str!("../../../events/persist/entity-state-largest.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn entity_states_are_deflated_under_one_kb_and_read_back() {
        let state = largest_state();
        let json_bytes = serde_json::to_vec(&state).unwrap().len();
        let item = entity_item(&state, &write_token()).unwrap();
        assert!(matches!(item.get("state"), Some(AttributeValue::B(_))));
        let size = item_size(&item);
        assert!(
            json_bytes > 1024,
            "the fixture is over a KB as JSON: {json_bytes}"
        );
        println!("largest sample state: {json_bytes} bytes of JSON, a {size}-byte item");
        assert!(size <= 1024, "one billed KB: {size} bytes");
        assert_eq!(entity_of("t", &item).unwrap(), state);
    }

    #[test]
    fn entity_states_stored_as_json_strings_still_read() {
        let state = largest_state();
        let mut item = entity_item(&state, "tok").unwrap();
        item.insert("state".into(), s(serde_json::to_string(&state).unwrap()));
        assert_eq!(entity_of("t", &item).unwrap(), state);
    }

    #[test]
    fn a_corrupt_deflated_state_is_a_decode_error_naming_its_key() {
        let mut item = entity_item(&largest_state(), "tok").unwrap();
        let blob = aws_sdk_dynamodb::primitives::Blob::new(b"not deflate".to_vec());
        item.insert("state".into(), AttributeValue::B(blob));
        let err = entity_of("t", &item).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err}");
        assert!(err.to_string().contains("acct-0027"), "{err}");
    }
}
