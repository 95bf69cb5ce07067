//! The v1 event contract as Rust types.
//!
//! [`Event`] mirrors `contract/event.v1.schema.json` field for field. Events are only built
//! from payloads that passed the schema (see [`crate::validate`]), so the types can be strict.
//! The contract is closed at the top level, which means serialising an [`Event`] gives back
//! everything the producer sent: later stages use that as the "original payload" when they
//! quarantine an event.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One business event (contract v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Present only when the producer sent it; always 1 for this contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
    /// The idempotency key: one record per `event_id`.
    pub event_id: String,
    /// Dotted lowercase type, e.g. `payment.authorized`.
    pub event_type: String,
    /// The producing system.
    pub source: String,
    /// What behaviour is tracked by: an account, a card, a host.
    pub entity_id: String,
    /// Event time.
    pub occurred_at: DateTime<FixedOffset>,
    /// Amount for payments, reading for metrics.
    pub value: f64,
    /// ISO 4217 code of `value`, when it is money.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// A correction of an event carries a higher version.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Flat string → string | number | bool map, e.g. `country`, `merchant`, `status`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, AttrValue>,
}

fn default_version() -> u32 {
    1
}

impl Event {
    /// A string attribute, if present and a string.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(AttrValue::String(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// Event time in milliseconds since the Unix epoch.
    pub fn occurred_ms(&self) -> i64 {
        self.occurred_at.timestamp_millis()
    }

    /// Hash of the event's content: equal for byte-identical re-sends and for re-serialisations
    /// of the same event, different as soon as any field differs. A field sent with its
    /// default is the same content as the field left out (`version` already reads as 1 when
    /// absent; `schema_version: 1` is hashed as absent), so a default never changes an
    /// event's identity.
    pub fn content_hash(&self) -> u64 {
        if self.schema_version == Some(1) {
            let mut e = self.clone();
            e.schema_version = None;
            return e.content_hash();
        }
        // Serialising a derived struct with a BTreeMap is deterministic.
        match serde_json::to_vec(self) {
            Ok(bytes) => crate::hash64(&bytes),
            // Serialising these types cannot fail; hash the id so the function stays total.
            Err(_) => crate::hash64(self.event_id.as_bytes()),
        }
    }
}

/// An attribute value: the contract allows strings, numbers and booleans only.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string.
    String(String),
    /// A number (always finite once validated).
    Number(f64),
    /// A boolean.
    Bool(bool),
}

impl Serialize for AttrValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AttrValue::String(v) => s.serialize_str(v),
            AttrValue::Number(v) => {
                // Keep integers integral so a round trip does not turn `3` into `3.0`.
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    s.serialize_i64(*v as i64)
                } else {
                    s.serialize_f64(*v)
                }
            }
            AttrValue::Bool(v) => s.serialize_bool(*v),
        }
    }
}

impl<'de> Deserialize<'de> for AttrValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A hand-written visitor instead of `#[serde(untagged)]`: untagged enums buffer the
        // input and cost several times more on the hot path.
        struct V;
        impl Visitor<'_> for V {
            type Value = AttrValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AttrValue, E> {
                Ok(AttrValue::String(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<AttrValue, E> {
                Ok(AttrValue::String(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<AttrValue, E> {
                Ok(AttrValue::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AttrValue, E> {
                Ok(AttrValue::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AttrValue, E> {
                Ok(AttrValue::Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<AttrValue, E> {
                Ok(AttrValue::Number(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Where an event came from: kept on every event and on every stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provenance {
    /// A record of an Amazon MSK (Kafka) topic.
    Kafka {
        /// Topic name.
        topic: String,
        /// Partition number.
        partition: i64,
        /// Offset in the partition.
        offset: i64,
        /// Record key, decoded as UTF-8 when it is text, else base64.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// An EventBridge event (possibly one of several events in its `detail`).
    Eventbridge {
        /// The EventBridge event id.
        id: String,
        /// The EventBridge `source`.
        source: String,
        /// The `detail-type`.
        detail_type: String,
        /// Position inside `detail.events`, when the detail carried a list.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<usize>,
    },
    /// A line of a JSON Lines file or stream read by the CLI.
    File {
        /// The file name (`-` for stdin).
        path: String,
        /// 1-based line number.
        line: usize,
    },
    /// Handed over directly, e.g. in a stage batch built by a test.
    #[default]
    Direct,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_defaults_version() {
        let raw = r#"{"event_id":"e1","event_type":"payment.authorized","source":"psp","entity_id":"acct-1","occurred_at":"2026-11-01T10:00:00+01:00","value":12.5,"attributes":{"country":"DE","n":3,"ok":true}}"#;
        let e: Event = serde_json::from_str(raw).expect("parses");
        assert_eq!(e.version, 1);
        assert_eq!(e.attr_str("country"), Some("DE"));
        assert_eq!(e.attributes.get("n"), Some(&AttrValue::Number(3.0)));
        let back = serde_json::to_string(&e).expect("serialises");
        assert!(back.contains(r#""n":3"#), "{back}");
        let again: Event = serde_json::from_str(&back).expect("parses again");
        assert_eq!(again, e);
        assert_eq!(again.content_hash(), e.content_hash());
    }

    #[test]
    fn a_field_sent_with_its_default_is_the_same_content_as_one_left_out() {
        // Issue 25, case 17: `schema_version: 1` against the field absent was a conflict, while
        // `version: 1` against absent was a duplicate.
        let bare = r#"{"event_id":"e1","event_type":"a.b","source":"s","entity_id":"x","occurred_at":"2026-11-01T10:00:00Z","value":1}"#;
        let with = |field: &str| bare.replacen('{', &format!("{{{field},"), 1);
        let e: Event = serde_json::from_str(bare).expect("parses");
        for text in [with(r#""schema_version":1"#), with(r#""version":1"#)] {
            let f: Event = serde_json::from_str(&text).expect("parses");
            assert_eq!(e.content_hash(), f.content_hash(), "{text}");
        }
        let other: Event = serde_json::from_str(&with(r#""version":2"#)).expect("parses");
        assert_ne!(e.content_hash(), other.content_hash());
    }

    #[test]
    fn content_hash_changes_with_any_field() {
        let raw = r#"{"event_id":"e1","event_type":"a.b","source":"s","entity_id":"x","occurred_at":"2026-11-01T10:00:00Z","value":1}"#;
        let e: Event = serde_json::from_str(raw).expect("parses");
        let mut f = e.clone();
        f.value = 1.5;
        assert_ne!(e.content_hash(), f.content_hash());
    }
}
