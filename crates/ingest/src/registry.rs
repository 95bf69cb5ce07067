//! Schema-registry Kafka values: the wire formats producers write, the schemas that decode
//! them, and the mapping from a decoded record to a v1 contract event.
//!
//! A record's value bytes are read as:
//! - **Confluent** (first byte `0`, then the schema id as a big-endian u32, then the body);
//! - **AWS Glue** (first byte `3`, a compression byte, `0` none or `5` zlib, the 16-byte schema
//!   version UUID, then the body);
//! - **plain** body bytes, when the record's topic is registered with a schema;
//! - otherwise JSON, as before. JSON text never starts with byte `0` or `3`, so the headers
//!   cannot be mistaken for it.
//!
//! Bodies are Avro (decoded with `apache-avro` against the registered writer schema), Protobuf
//! (decoded with `prost-reflect` from the registered descriptor set; a Confluent value's
//! message-index list picks the message) or JSON (a JSON Schema–registered value).
//!
//! Schemas come from a registry file (see [`Registry::from_json`] and `schemas/README.md`),
//! read once per process: no network call on the hot path. Glue schema versions can also be
//! fetched when a record first names them ([`GlueRegistry`], module `glue`), before the batch
//! is decoded. A record whose value cannot be
//! read (unknown schema id, bytes that do not match the schema, a mapped field missing) is
//! quarantined with a precise reason and its original bytes; nothing else in the batch is
//! affected.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use base64::Engine;
use chrono::{DateTime, SecondsFormat};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde::Deserialize;
use serde_json::{Map, Value};

use pipeline_core::Error;
use pipeline_core::batch::Reason;

mod glue;
mod mapping;

use glue::GlueTemplate;
pub use glue::{
    FetchError, Fetched, GlueRegistry, GlueSchemaVersion, GlueSchemas, StaticGlueSchemas,
    glue_version_ids,
};
use mapping::Mapping;

/// Where a record's value bytes say their schema is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireFormat {
    /// Confluent: magic byte 0 and a schema id.
    Confluent(u32),
    /// AWS Glue: header version 3, compression, schema version UUID.
    Glue {
        /// The schema version id, lowercase hyphenated.
        version_id: String,
        /// The body is zlib-compressed.
        zlib: bool,
    },
    /// No header.
    Plain,
}

/// The body format of a registered schema.
#[derive(Debug)]
enum Body {
    Avro(Box<Schema>),
    Json,
    Protobuf(MessageDescriptor),
}

/// One registered schema.
#[derive(Debug)]
struct Entry {
    name: String,
    body: Body,
    mapping: Option<Mapping>,
}

/// The registered schemas, by Confluent id, Glue schema version id and (for plain values)
/// topic.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    confluent: HashMap<u32, Arc<Entry>>,
    glue: HashMap<String, Arc<Entry>>,
    topics: HashMap<String, Arc<Entry>>,
    /// How versions of a Glue schema fetched at run time map, by schema name.
    glue_names: HashMap<String, GlueTemplate>,
    /// Glue version ids fetched and not usable, with why (see [`GlueRegistry`]).
    glue_missing: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    #[serde(default)]
    schemas: Vec<FileEntry>,
    /// How versions of Glue schemas fetched at run time map, by schema name.
    #[serde(default)]
    glue_schemas: Vec<GlueFileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlueFileEntry {
    schema_name: String,
    #[serde(default)]
    mapping: Option<Map<String, Value>>,
    #[serde(default)]
    descriptor_set: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    format: String,
    #[serde(default)]
    schema: Option<Value>,
    #[serde(default)]
    confluent_id: Option<u32>,
    #[serde(default)]
    glue_version_id: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    mapping: Option<Map<String, Value>>,
    /// Protobuf: a serialized `FileDescriptorSet`, base64.
    #[serde(default)]
    descriptor_set: Option<String>,
    /// Protobuf: the message's full name.
    #[serde(default)]
    message: Option<String>,
}

impl Registry {
    /// No schemas: every value is read as JSON (the behaviour without a registry).
    pub fn empty() -> Self {
        Registry::default()
    }

    /// Whether no schema is registered.
    pub fn is_empty(&self) -> bool {
        self.confluent.is_empty()
            && self.glue.is_empty()
            && self.topics.is_empty()
            && self.glue_names.is_empty()
    }

    /// Reads a registry file:
    ///
    /// ```json
    /// {"schemas": [{
    ///    "name": "payment-authorized-v1", "format": "avro", "schema": { …Avro schema… },
    ///    "confluent_id": 101, "glue_version_id": "0f8c…", "topics": ["payments-plain"],
    ///    "mapping": {"event_id": "/payment_id", "occurred_at": {"pointer": "/authorized_at",
    ///                "time": "epoch_millis"}, "event_type": {"const": "payment.authorized"}}}]}
    /// ```
    ///
    /// `format` is `avro`, `json` or `protobuf`; `schema` is required for `avro`, and
    /// `descriptor_set` (base64) with `message` for `protobuf`. A schema is
    /// found by any of its keys. `mapping` (optional: without it the decoded record must
    /// already be a contract event) names, per contract field, a JSON Pointer into the
    /// decoded record, `{"const": v}`, or `{"pointer": p, "time": "epoch_millis" |
    /// "epoch_seconds"}`; the record's other top-level fields become `attributes`.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let doc: FileDoc = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("schema registry file: {e}")))?;
        let mut reg = Registry::default();
        for f in doc.schemas {
            let body = match f.format.as_str() {
                "avro" => {
                    let schema = f.schema.as_ref().ok_or_else(|| {
                        Error::Config(format!(
                            "schema {}: an avro schema needs \"schema\"",
                            f.name
                        ))
                    })?;
                    Body::Avro(Box::new(Schema::parse(schema).map_err(|e| {
                        Error::Config(format!("schema {}: not a valid Avro schema: {e}", f.name))
                    })?))
                }
                "json" => Body::Json,
                "protobuf" => Body::Protobuf(protobuf_message(
                    &f.name,
                    f.descriptor_set.as_deref(),
                    f.message.as_deref(),
                )?),
                other => {
                    return Err(Error::Config(format!(
                        "schema {}: format {other:?} is not avro, json or protobuf",
                        f.name
                    )));
                }
            };
            let mapping = f.mapping.map(|m| Mapping::parse(&f.name, m)).transpose()?;
            let entry = Arc::new(Entry {
                name: f.name,
                body,
                mapping,
            });
            if let Some(id) = f.confluent_id {
                reg.confluent.insert(id, entry.clone());
            }
            if let Some(v) = f.glue_version_id {
                reg.glue.insert(v.to_ascii_lowercase(), entry.clone());
            }
            for t in f.topics {
                reg.topics.insert(t, entry.clone());
            }
        }
        for g in doc.glue_schemas {
            let protobuf = match (&g.descriptor_set, &g.message) {
                (None, None) => None,
                (set, message) => Some(protobuf_message(
                    &g.schema_name,
                    set.as_deref(),
                    message.as_deref(),
                )?),
            };
            let mapping = g
                .mapping
                .map(|m| Mapping::parse(&g.schema_name, m))
                .transpose()?;
            reg.glue_names
                .insert(g.schema_name, GlueTemplate { mapping, protobuf });
        }
        Ok(reg)
    }

    /// The wire format of `bytes`, and where its body starts.
    pub fn wire_format(bytes: &[u8]) -> (WireFormat, usize) {
        match bytes {
            [0, a, b, c, d, ..] => (
                WireFormat::Confluent(u32::from_be_bytes([*a, *b, *c, *d])),
                5,
            ),
            [3, compression @ (0 | 5), rest @ ..] if rest.len() >= 16 => {
                let u = &rest[..16];
                let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
                let version_id = format!(
                    "{}-{}-{}-{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..32]
                );
                (
                    WireFormat::Glue {
                        version_id,
                        zlib: *compression == 5,
                    },
                    18,
                )
            }
            _ => (WireFormat::Plain, 0),
        }
    }

    /// Decodes a record value: `Ok(None)` when no schema applies (the caller reads it as JSON,
    /// as without a registry); `Ok(Some(event))` with the mapped contract event; `Err` with
    /// the reason to quarantine it with. `schema_id` is the event source mapping's
    /// `valueSchemaMetadata.schemaId`, when it decoded the value to JSON itself; `key` the
    /// record's key bytes, read only when the mapping uses the key.
    pub fn decode(
        &self,
        topic: &str,
        bytes: &[u8],
        schema_id: Option<&str>,
        key: Option<&[u8]>,
    ) -> Result<Option<Value>, Reason> {
        let (wire, start) = Self::wire_format(bytes);
        let entry = match &wire {
            WireFormat::Plain => match schema_id {
                // Decoded to JSON by the event source mapping: only the mapping is ours.
                Some(id) => id
                    .parse::<u32>()
                    .ok()
                    .and_then(|n| self.confluent.get(&n))
                    .or_else(|| self.glue.get(&id.to_ascii_lowercase())),
                None => self.topics.get(topic),
            },
            headed => Some(self.entry_of(headed, "value")?),
        };
        let Some(entry) = entry else {
            return Ok(None);
        };
        let record = match (&wire, schema_id) {
            (WireFormat::Plain, Some(_)) => {
                pipeline_core::json::parse(&bytes[start..]).map_err(|e| {
                    Reason::new(
                        "undecodable_value",
                        format!("value of schema {} is not JSON: {e}", entry.name),
                    )
                })?
            }
            _ => body_of(entry, &wire, &bytes[start..], "value")?,
        };
        match &entry.mapping {
            Some(m) => {
                let key = if m.uses_key() {
                    Some(self.key_document(key)?)
                } else {
                    None
                };
                m.apply(&entry.name, &record, key.as_ref()).map(Some)
            }
            None => Ok(Some(record)),
        }
    }

    /// The registered schema a Confluent or Glue header names.
    fn entry_of(&self, wire: &WireFormat, what: &str) -> Result<&Arc<Entry>, Reason> {
        let unknown = |which: String| {
            Reason::new(
                "unknown_schema",
                format!("the {what}'s {which} is not in the schema registry file"),
            )
        };
        match wire {
            WireFormat::Confluent(id) => self
                .confluent
                .get(id)
                .ok_or_else(|| unknown(format!("Confluent schema id {id}"))),
            WireFormat::Glue { version_id, .. } => {
                self.glue
                    .get(version_id)
                    .ok_or_else(|| match self.glue_missing.get(version_id) {
                        Some(why) => Reason::new(
                            "unknown_schema",
                            format!("the {what}'s Glue schema version {version_id}: {why}"),
                        ),
                        None => unknown(format!("Glue schema version {version_id}")),
                    })
            }
            WireFormat::Plain => Err(unknown("schema (no header)".into())),
        }
    }

    /// A record key as a mapping sees it: decoded with its schema when it carries a Confluent
    /// or Glue header; otherwise its text, or the JSON object that text holds.
    fn key_document(&self, key: Option<&[u8]>) -> Result<Value, Reason> {
        let Some(bytes) = key else {
            return Err(Reason::new(
                "unmapped_field",
                "the mapping reads the record key, and the record has none",
            ));
        };
        let (wire, start) = Self::wire_format(bytes);
        match wire {
            WireFormat::Plain => match std::str::from_utf8(bytes) {
                Ok(text) => Ok(match pipeline_core::json::parse(bytes) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => Value::String(text.to_owned()),
                }),
                Err(_) => Err(Reason::new(
                    "undecodable_value",
                    "the record key is neither text nor in a registry wire format",
                )),
            },
            headed => body_of(
                self.entry_of(&headed, "key")?,
                &headed,
                &bytes[start..],
                "key",
            ),
        }
    }
}

/// The decoded body of a value or key in `entry`'s format (inflated first when the Glue
/// header says zlib).
fn body_of(entry: &Entry, wire: &WireFormat, body: &[u8], what: &str) -> Result<Value, Reason> {
    let undecodable = |e: String| {
        Reason::new(
            "undecodable_value",
            format!("{what} of schema {}: {e}", entry.name),
        )
    };
    let inflated;
    let body = match wire {
        WireFormat::Glue { zlib: true, .. } => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(body)
                .take(16 * 1024 * 1024)
                .read_to_end(&mut out)
                .map_err(|e| undecodable(format!("marked zlib, does not inflate: {e}")))?;
            inflated = out;
            &inflated[..]
        }
        _ => body,
    };
    match &entry.body {
        Body::Avro(schema) => {
            decode_avro(schema, body).map_err(|e| undecodable(format!("not this Avro record: {e}")))
        }
        Body::Json => {
            pipeline_core::json::parse(body).map_err(|e| undecodable(format!("not JSON: {e}")))
        }
        Body::Protobuf(message) => {
            decode_protobuf(message, body, matches!(wire, WireFormat::Confluent(_)))
                .map_err(|e| undecodable(format!("not this Protobuf message: {e}")))
        }
    }
}

/// The message descriptor a protobuf entry names, from its descriptor set.
fn protobuf_message(
    schema: &str,
    descriptor_set: Option<&str>,
    message: Option<&str>,
) -> Result<MessageDescriptor, Error> {
    let bad = |what: String| Error::Config(format!("schema {schema}: {what}"));
    let set = descriptor_set
        .ok_or_else(|| bad("a protobuf schema needs \"descriptor_set\" (base64)".into()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(set)
        .map_err(|e| bad(format!("descriptor_set is not base64: {e}")))?;
    let pool = DescriptorPool::decode(bytes.as_slice())
        .map_err(|e| bad(format!("descriptor_set is not a FileDescriptorSet: {e}")))?;
    let name =
        message.ok_or_else(|| bad("a protobuf schema needs \"message\" (its full name)".into()))?;
    pool.get_message_by_name(name)
        .ok_or_else(|| bad(format!("the descriptor set has no message {name}")))
}

/// Decodes a Protobuf body; a Confluent body starts with the message-index list (zigzag
/// varints: a count, then that many indexes; a lone 0 means the file's first message), which
/// picks the message within the registered message's file.
fn decode_protobuf(
    registered: &MessageDescriptor,
    body: &[u8],
    confluent: bool,
) -> Result<Value, String> {
    let mut rest = body;
    let message = if confluent {
        let count = zigzag(&mut rest)?;
        if !(0..=MAX_NESTING).contains(&count) {
            return Err(format!("message-index list of {count} entries"));
        }
        let mut path = Vec::new();
        for _ in 0..count {
            path.push(zigzag(&mut rest)?);
        }
        if path.is_empty() {
            path.push(0);
        }
        message_at(registered, &path)?
    } else {
        registered.clone()
    };
    let decoded = DynamicMessage::decode(message, rest).map_err(|e| e.to_string())?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    decoded
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| e.to_string())
}

/// The message at a Confluent index path within `registered`'s file.
fn message_at(registered: &MessageDescriptor, path: &[i64]) -> Result<MessageDescriptor, String> {
    let pick = |mut list: Vec<MessageDescriptor>, i: i64| {
        usize::try_from(i)
            .ok()
            .filter(|&i| i < list.len())
            .map(|i| list.swap_remove(i))
            .ok_or_else(|| format!("message index {i} is not in the schema"))
    };
    let Some((&first, nested)) = path.split_first() else {
        return Err("empty message-index list".into());
    };
    let mut at = pick(registered.parent_file().messages().collect(), first)?;
    for &i in nested {
        at = pick(at.child_messages().collect(), i)?;
    }
    if at.full_name() != registered.full_name() {
        return Err(format!(
            "the value is a {}, the schema entry is for {}",
            at.full_name(),
            registered.full_name()
        ));
    }
    Ok(at)
}

/// Longest message-index path read (message nesting depth): a corrupt count must not make
/// the decoder allocate without bound.
const MAX_NESTING: i64 = 32;

/// One zigzag varint (Confluent's message indexes), advancing `rest`.
fn zigzag(rest: &mut &[u8]) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let Some((&b, tail)) = rest.split_first() else {
            return Err("message-index list cut short".into());
        };
        *rest = tail;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err("message-index varint too long".into())
}

fn decode_avro(schema: &Schema, body: &[u8]) -> Result<Value, String> {
    let reader = GenericDatumReader::builder(schema)
        .build()
        .map_err(|e| e.to_string())?;
    let mut rest = body;
    let value = reader.read_value(&mut rest).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes left after the record", rest.len()));
    }
    Value::try_from(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use apache_avro::types::Record;
    use apache_avro::writer::datum::GenericDatumWriter;
    use serde_json::json;

    use super::*;

    const SCHEMA: &str = r#"{"type": "record", "name": "PaymentAuthorized", "fields": [
        {"name": "payment_id", "type": "string"},
        {"name": "account_id", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "currency", "type": "string"},
        {"name": "authorized_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "merchant", "type": ["null", "string"], "default": null}]}"#;

    /// `plant.SensorReading {reading_id, sensor, celsius, at_seconds (int64), line}`, and one
    /// message encoded by Python's protobuf package.
    const SENSOR_SET: &str = "CosBChJwbGFudC9zZW5zb3IucHJvdG8SBXBsYW50ImYKDVNlbnNvclJlYWRpbmcSEgoKcmVhZGluZ19pZBgBIAEoCRIOCgZzZW5zb3IYAiABKAkSDwoHY2Vsc2l1cxgDIAEoARISCgphdF9zZWNvbmRzGAQgASgDEgwKBGxpbmUYBSABKAliBnByb3RvMw==";
    const SENSOR_BODY: &str = "0a027231120273371900000000008035402080fc96c8062a0141";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn confluent_protobuf_with_its_message_index() {
        let reg = registry();
        let expected = json!({"event_id": "r1", "entity_id": "s7", "value": 21.5,
            "occurred_at": "2025-11-01T08:00:00.000Z", "event_type": "sensor.reading",
            "source": "plant", "attributes": {"line": "A"}});
        // A lone 0: the file's first message.
        let mut short = vec![0, 0, 0, 0, 8, 0];
        short.extend(hex(SENSOR_BODY));
        assert_eq!(
            reg.decode("t", &short, None, None),
            Ok(Some(expected.clone()))
        );
        // The long form: one index, 0 (zigzag 1 then 0).
        let mut long = vec![0, 0, 0, 0, 8, 2, 0];
        long.extend(hex(SENSOR_BODY));
        assert_eq!(reg.decode("t", &long, None, None), Ok(Some(expected)));
        // An index past the file's messages, a huge count, and bytes that are not the message.
        for bad in [
            vec![0, 0, 0, 0, 8, 2, 2],
            vec![0, 0, 0, 0, 8, 0xfe, 0xff, 0x7f],
            vec![0, 0, 0, 0, 8, 0, 0xff],
        ] {
            assert_eq!(
                reg.decode("t", &bad, None, None).unwrap_err().code,
                "undecodable_value"
            );
        }
    }

    fn registry() -> Registry {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        Registry::from_json(
            &json!({"schemas": [{
                "name": "payment-v1", "format": "avro", "schema": schema,
                "confluent_id": 7, "glue_version_id": "00112233-4455-6677-8899-aabbccddeeff",
                "topics": ["payments-plain"],
                "mapping": {
                    "event_id": "/payment_id", "entity_id": "/account_id", "value": "/amount",
                    "currency": "/currency",
                    "occurred_at": {"pointer": "/authorized_at", "time": "epoch_millis"},
                    "event_type": {"const": "payment.authorized"}, "source": {"const": "psp"}}
            }, {"name": "proto-v1", "format": "protobuf", "confluent_id": 8,
                 "descriptor_set": SENSOR_SET, "message": "plant.SensorReading",
                 "mapping": {"event_id": "/reading_id", "entity_id": "/sensor",
                             "value": "/celsius",
                             "occurred_at": {"pointer": "/at_seconds", "time": "epoch_seconds"},
                             "event_type": {"const": "sensor.reading"},
                             "source": {"const": "plant"}}}]})
            .to_string(),
        )
        .unwrap()
    }

    fn body() -> Vec<u8> {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let mut r = Record::new(&schema).unwrap();
        r.put("payment_id", "pay-1");
        r.put("account_id", "acct-9");
        r.put("amount", 12.5);
        r.put("currency", "EUR");
        r.put(
            "authorized_at",
            apache_avro::types::Value::TimestampMillis(1_761_984_000_000),
        );
        r.put(
            "merchant",
            apache_avro::types::Value::Union(1, Box::new("grocer".into())),
        );
        GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(r)
            .unwrap()
    }

    fn expected() -> Value {
        json!({"event_id": "pay-1", "entity_id": "acct-9", "value": 12.5, "currency": "EUR",
               "occurred_at": "2025-11-01T08:00:00.000Z", "event_type": "payment.authorized",
               "source": "psp", "attributes": {"merchant": "grocer"}})
    }

    #[test]
    fn confluent_glue_and_plain_avro_map_to_the_same_event() {
        let reg = registry();
        let mut confluent = vec![0, 0, 0, 0, 7];
        confluent.extend(body());
        assert_eq!(
            reg.decode("t", &confluent, None, None),
            Ok(Some(expected()))
        );

        let uuid = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let mut glue = vec![3, 0];
        glue.extend(uuid);
        glue.extend(body());
        assert_eq!(reg.decode("t", &glue, None, None), Ok(Some(expected())));

        let mut zlib = vec![3, 5];
        zlib.extend(uuid);
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &body()).unwrap();
        zlib.extend(enc.finish().unwrap());
        assert_eq!(reg.decode("t", &zlib, None, None), Ok(Some(expected())));

        assert_eq!(
            reg.decode("payments-plain", &body(), None, None),
            Ok(Some(expected()))
        );
        // Another topic without a header: JSON, as without a registry.
        assert_eq!(reg.decode("other", b"{}", None, None), Ok(None));
    }

    #[test]
    fn every_failure_has_its_reason() {
        let reg = registry();
        let code = |r: Result<Option<Value>, Reason>| r.unwrap_err().code;
        assert_eq!(
            code(reg.decode("t", &[0, 0, 0, 0, 99, 1], None, None)),
            "unknown_schema"
        );
        let mut truncated = vec![0, 0, 0, 0, 7];
        truncated.extend(&body()[..6]);
        assert_eq!(
            code(reg.decode("t", &truncated, None, None)),
            "undecodable_value"
        );
        let mut trailing = vec![0, 0, 0, 0, 7];
        trailing.extend(body());
        trailing.push(1);
        assert_eq!(
            code(reg.decode("t", &trailing, None, None)),
            "undecodable_value"
        );
        let mut bad_zlib = vec![3, 5];
        bad_zlib.extend([0u8; 16]);
        assert_eq!(
            code(reg.decode("t", &bad_zlib, None, None)),
            "unknown_schema"
        );
        // Mapped field missing: an event source mapping decoded the value to JSON itself.
        let r = reg.decode("t", br#"{"payment_id": "p"}"#, Some("7"), None);
        let reason = r.unwrap_err();
        assert_eq!(reason.code, "unmapped_field");
        for field in ["entity_id", "value", "currency", "occurred_at"] {
            assert!(reason.message.contains(field), "{}", reason.message);
        }
        assert!(!reason.message.contains("event_id"), "{}", reason.message);
    }

    #[test]
    fn a_mapping_can_take_fields_from_the_record_key() {
        let mapping = |entity: Value| {
            json!({"event_id": "/id", "entity_id": entity, "value": "/v", "occurred_at": "/at",
                   "event_type": {"const": "x.y"}, "source": {"const": "s"}})
        };
        let reg = Registry::from_json(
            &json!({"schemas": [
                {"name": "keyed-json", "format": "json", "confluent_id": 9,
                 "mapping": mapping(json!({"key": "/account"}))},
                {"name": "keyed-text", "format": "json", "confluent_id": 10,
                 "mapping": mapping(json!({"key": ""}))}]})
            .to_string(),
        )
        .unwrap();
        let value = |id: u8| {
            let mut v = vec![0, 0, 0, 0, id];
            v.extend(br#"{"id": "k1", "v": 1, "at": "2026-11-01T00:00:00Z"}"#);
            v
        };
        let entity = |r: Result<Option<Value>, Reason>| r.unwrap().unwrap()["entity_id"].clone();
        // A JSON object key, plain; the same key in the Confluent wire format; a text key.
        let plain = br#"{"account": "acct-1"}"#;
        assert_eq!(
            entity(reg.decode("t", &value(9), None, Some(plain))),
            "acct-1"
        );
        let mut headed = vec![0, 0, 0, 0, 9];
        headed.extend(br#"{"account": "acct-2"}"#);
        assert_eq!(
            entity(reg.decode("t", &value(9), None, Some(&headed))),
            "acct-2"
        );
        assert_eq!(
            entity(reg.decode("t", &value(10), None, Some(b"acct-3"))),
            "acct-3"
        );
        // No key, or a key without the field: the field is unmapped, and said so.
        let no_key = reg.decode("t", &value(9), None, None).unwrap_err();
        assert_eq!(no_key.code, "unmapped_field");
        let r = reg.decode("t", &value(9), None, Some(br#"{"other": 1}"#));
        assert!(r.unwrap_err().message.contains("entity_id (from the key"));
        // A key in an unknown schema.
        let r = reg.decode("t", &value(9), None, Some(&[0, 0, 0, 0, 77, 1]));
        assert_eq!(r.unwrap_err().code, "unknown_schema");
    }

    #[test]
    fn bad_registry_files_are_refused_with_the_schema_named() {
        let err = Registry::from_json(r#"{"schemas": [{"name": "x", "format": "avro"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema x"), "{err}");
        assert!(Registry::from_json(r#"{"schemas": [{"name": "y", "format": "xml"}]}"#).is_err());
    }
}
