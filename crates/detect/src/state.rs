//! What detection remembers per entity: [`EntityState`], its packed storage helpers, and the
//! profile of it that enrichment carries ([`EntityProfile`]).

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::ValueModel;

/// What is known about an entity before an event: the `entity` part of an event's enrichment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EntityProfile {
    /// Whether the entity was seen before.
    pub known: bool,
    /// Event time of its first event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<DateTime<Utc>>,
    /// Events seen.
    pub event_count: u64,
    /// Its up to three most frequent countries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usual_countries: Vec<String>,
}

/// Everything the pipeline remembers about one entity. Serialises to ≤ 4 KB.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityState {
    /// The entity.
    pub entity_id: String,
    /// Optimistic-concurrency version: 0 means never stored; each write adds one.
    pub version: u64,
    /// Event time (ms) of the earliest event absorbed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<i64>,
    /// Watermark: the latest event time (ms) absorbed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
    /// Events absorbed.
    pub count: u64,
    /// Failures absorbed.
    pub failures_total: u64,
    /// The value model (v2). States stored by v1 (with `stats`) start it afresh.
    #[serde(default)]
    pub value: ValueModel,
    /// Events per minute of event time, `[minute, count]`, inside the window.
    #[serde(default)]
    pub minutes: Vec<(i64, u32)>,
    /// Event times (ms) of recent failures inside the window, sorted.
    #[serde(default)]
    pub failures: Vec<i64>,
    /// Countries seen, with counts (the most frequent are kept).
    #[serde(default)]
    pub countries: Vec<(String, u32)>,
    /// Hashes of merchants seen (oldest evicted first); stored packed (see [`packed`]).
    #[serde(default, with = "packed::u32s")]
    pub merchants: Vec<u32>,
    /// Hashes of the ids of the most recently absorbed events; stored packed.
    #[serde(default, with = "packed::u64s")]
    pub recent: Vec<u64>,
    /// The open incident, if any (see [`super::incident`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<super::Incident>,
}

impl EntityState {
    /// A fresh state for an entity never seen.
    pub fn new(entity_id: &str) -> Self {
        EntityState {
            entity_id: entity_id.to_owned(),
            ..Default::default()
        }
    }

    /// Whether the event with this id hash was already absorbed.
    pub fn has_absorbed(&self, id_hash: u64) -> bool {
        self.recent.contains(&id_hash)
    }

    /// What enrich reports about the entity.
    pub fn profile(&self) -> EntityProfile {
        EntityProfile {
            known: self.count > 0,
            first_seen: self
                .first_seen
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
            event_count: self.count,
            usual_countries: self.usual_countries(),
        }
    }

    /// The up to three most frequent countries.
    pub fn usual_countries(&self) -> Vec<String> {
        let mut c: Vec<_> = self.countries.iter().collect();
        c.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        c.into_iter().take(3).map(|(k, _)| k.clone()).collect()
    }
}

/// Hash lists stored as base64 of their little-endian bytes: 48 ids take 64 characters of
/// JSON as decimal numbers would take about 1 KB, and entity state is written on every batch
/// (DynamoDB bills each started KB).
pub mod packed {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    fn decode<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<Vec<[u8; N]>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(serde::de::Error::custom)?;
        if bytes.len() % N != 0 {
            return Err(serde::de::Error::custom(format!(
                "packed list length {} is not a multiple of {N}",
                bytes.len()
            )));
        }
        Ok(bytes
            .chunks_exact(N)
            .map(|c| c.try_into().unwrap_or([0; N]))
            .collect())
    }

    /// One `with` module per element type: the same packing, little-endian, `$n` bytes each.
    macro_rules! packed_list {
        ($name:ident, $t:ty, $n:literal, $doc:literal) => {
            #[doc = $doc]
            pub mod $name {
                use super::*;
                /// Serialises.
                pub fn serialize<S: Serializer>(v: &[$t], s: S) -> Result<S::Ok, S::Error> {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    s.serialize_str(&STANDARD_NO_PAD.encode(bytes))
                }
                /// Deserialises.
                pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<$t>, D::Error> {
                    Ok(decode::<D, $n>(d)?
                        .into_iter()
                        .map(<$t>::from_le_bytes)
                        .collect())
                }
            }
        };
    }

    packed_list!(u64s, u64, 8, "`Vec<u64>` as packed base64.");
    packed_list!(u32s, u32, 4, "`Vec<u32>` as packed base64.");
    packed_list!(
        f32s,
        f32,
        4,
        "`Vec<f32>` as packed base64 (exact: the bits are kept)."
    );
}
