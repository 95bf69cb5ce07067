//! Cutting decoded items into batch documents that stay under the Step Functions state limit,
//! with a content-derived batch id, and bounding an oversized item first.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::Digest;

use super::Item;
use pipeline_core::batch::{
    Batch, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, Quarantined, RawEvent, Reason, Stage, serialized_len,
};

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
    let mut splitter = Splitter::new(received_at, limits);
    let mut batches: Vec<Batch<RawEvent>> = items
        .into_iter()
        .filter_map(|item| splitter.push(item))
        .collect();
    batches.extend(splitter.finish());
    batches
}

/// [`split`] one item at a time, for inputs read as a stream: the same batches and ids, with
/// only the batch being filled in memory.
pub struct Splitter {
    received_at: DateTime<Utc>,
    limits: SplitLimits,
    cur: Vec<Item>,
    bytes: usize,
    hasher: xxhash_rust::xxh3::Xxh3,
}

impl std::fmt::Debug for Splitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Splitter")
            .field("received_at", &self.received_at)
            .field("limits", &self.limits)
            .field("items", &self.cur.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl Splitter {
    /// An empty splitter; batches carry `received_at`.
    pub fn new(received_at: DateTime<Utc>, limits: SplitLimits) -> Self {
        Splitter {
            received_at,
            limits,
            cur: Vec::new(),
            bytes: 0,
            hasher: xxhash_rust::xxh3::Xxh3::new(),
        }
    }

    /// Adds the next item; answers the batch it completed, if it completed one (the item then
    /// starts the next batch).
    pub fn push(&mut self, item: Item) -> Option<Batch<RawEvent>> {
        let item = bound_item(item);
        let size = match &item {
            Item::Event(r) => serialized_len(&r.payload),
            Item::Quarantined(q) => serialized_len(&q.payload),
        };
        let limits = self.limits;
        let sealed = if !self.cur.is_empty()
            && (self.cur.len() >= limits.max_events || self.bytes + size > limits.max_bytes)
        {
            self.bytes = 0;
            Some(seal(
                std::mem::take(&mut self.cur),
                self.received_at,
                &mut self.hasher,
            ))
        } else {
            None
        };
        match &item {
            Item::Event(r) => {
                self.hasher
                    .update(&serde_json::to_vec(&r.provenance).unwrap_or_default());
                self.hasher
                    .update(&serde_json::to_vec(&r.payload).unwrap_or_default());
            }
            Item::Quarantined(q) => {
                self.hasher
                    .update(&serde_json::to_vec(&q.provenance).unwrap_or_default());
                self.hasher
                    .update(&serde_json::to_vec(&q.payload).unwrap_or_default());
            }
        }
        self.bytes += size;
        self.cur.push(item);
        sealed
    }

    /// The last, partly filled batch, if any item is left.
    pub fn finish(mut self) -> Option<Batch<RawEvent>> {
        if self.cur.is_empty() {
            None
        } else {
            Some(seal(
                std::mem::take(&mut self.cur),
                self.received_at,
                &mut self.hasher,
            ))
        }
    }
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
