//! Preparing a backfill (`pipeline backfill`, docs/backfill.md): items are sharded by entity with
//! a stable hash, so that all of one entity's events go to one shard (and so to one child
//! execution of the backfill's Distributed Map, which runs its shard's batches one after
//! another), and ordered by event time within a shard, so that detection sees each entity's
//! events in the order they happened. Then the shard is cut into the batch documents ingest
//! cuts ([`split`](crate::split())).

use chrono::{DateTime, Utc};
use pipeline_core::batch::{Batch, RawEvent};
use serde_json::Value;

use super::{Item, SplitLimits};

/// The shard of `item` among `shards` (at least 1): a hash of its `entity_id`, stable across
/// runs, machines and versions (xxh3-64, seed 0), so reruns of a backfill shard the same way.
/// An item without an entity (one that will be quarantined) is spread by its provenance.
pub fn shard_of(item: &Item, shards: u32) -> u32 {
    let shards = u64::from(shards.max(1));
    let hash = match entity_of(item) {
        Some(entity) => xxhash_rust::xxh3::xxh3_64(entity.as_bytes()),
        None => {
            let provenance = match item {
                Item::Event(r) => serde_json::to_vec(&r.provenance),
                Item::Quarantined(q) => serde_json::to_vec(&q.provenance),
            };
            xxhash_rust::xxh3::xxh3_64(&provenance.unwrap_or_default())
        }
    };
    // The remainder is below `shards`, which came from a u32.
    u32::try_from(hash % shards).unwrap_or(0)
}

/// The item's `entity_id`, when its payload has one as a string.
pub fn entity_of(item: &Item) -> Option<&str> {
    let payload = match item {
        Item::Event(r) => &r.payload,
        Item::Quarantined(q) => &q.payload,
    };
    payload.get("entity_id").and_then(Value::as_str)
}

/// The item's event time in milliseconds since the epoch (`occurred_at` as RFC 3339), or
/// `i64::MIN` when it has none that parses: such items sort first, and validation will
/// quarantine them anyway.
pub fn event_time_ms(item: &Item) -> i64 {
    let payload = match item {
        Item::Event(r) => &r.payload,
        Item::Quarantined(q) => &q.payload,
    };
    payload
        .get("occurred_at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(i64::MIN, |t| t.timestamp_millis())
}

/// Orders one shard's items by event time; a stable sort, so items with the same time keep
/// their input order (and an input already in time order is left as it is).
pub fn order(items: &mut [Item]) {
    items.sort_by_cached_key(event_time_ms);
}

/// One shard's items, ordered by event time and cut into batch documents as ingest cuts them
/// (the same ids for the same items; every batch carries `received_at`).
pub fn shard_batches(
    mut items: Vec<Item>,
    received_at: DateTime<Utc>,
    limits: SplitLimits,
) -> Vec<Batch<RawEvent>> {
    order(&mut items);
    super::split(items, received_at, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_line;

    fn line(n: usize, text: &str) -> Item {
        decode_line("in.jsonl", n, text)
    }

    fn event(entity: &str, at: &str, id: &str) -> Item {
        line(
            1,
            &format!(r#"{{"event_id":"{id}","entity_id":"{entity}","occurred_at":"{at}"}}"#),
        )
    }

    #[test]
    fn shards_are_a_stable_hash_of_the_entity() {
        let a = event("acct-1", "2026-01-01T00:00:00Z", "e1");
        let b = event("acct-1", "2026-06-01T00:00:00Z", "e2");
        assert_eq!(shard_of(&a, 16), shard_of(&b, 16));
        // Pinned: a rerun on another machine or version must shard the same way.
        assert_eq!(
            xxhash_rust::xxh3::xxh3_64(b"acct-1") % 16,
            u64::from(shard_of(&a, 16))
        );
        let spread: std::collections::BTreeSet<u32> = (0..200)
            .map(|i| shard_of(&event(&format!("acct-{i}"), "2026-01-01T00:00:00Z", "e"), 8))
            .collect();
        assert_eq!(spread.len(), 8, "200 entities should reach all 8 shards");
        assert_eq!(shard_of(&a, 0), 0, "0 shards is read as 1");
    }

    #[test]
    fn a_shard_is_ordered_by_event_time_stably_with_unparseable_times_first() {
        let mut items = vec![
            event("a", "2026-01-01T00:00:02Z", "late"),
            event("a", "2026-01-01T01:00:01+01:00", "same-1"),
            event("a", "2026-01-01T00:00:01Z", "same-2"),
            event("a", "yesterday", "bad"),
        ];
        order(&mut items);
        let ids: Vec<&str> = items
            .iter()
            .map(|i| match i {
                Item::Event(r) => r.payload["event_id"].as_str().unwrap_or(""),
                Item::Quarantined(_) => "",
            })
            .collect();
        // 01:00:01+01:00 is 00:00:01Z: equal times keep their input order.
        assert_eq!(ids, ["bad", "same-1", "same-2", "late"]);
    }

    #[test]
    fn shard_batches_are_ingest_batches_of_the_ordered_items() {
        let items: Vec<Item> = (0..250)
            .rev()
            .map(|i| {
                event(
                    "a",
                    &format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60),
                    &format!("e{i}"),
                )
            })
            .collect();
        let at = DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let batches = shard_batches(items.clone(), at, SplitLimits::default());
        assert_eq!(
            batches.iter().map(|b| b.events.len()).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        assert_eq!(batches[0].events[0].payload["event_id"], "e0");
        let mut ordered = items;
        order(&mut ordered);
        assert_eq!(batches, crate::split(ordered, at, SplitLimits::default()));
    }
}
