//! Deterministic events and paths to the repository's `events/` files.

use std::path::PathBuf;

use chrono::{DateTime, Duration, TimeZone, Utc};
use pipeline_core::batch::{Batch, RawEvent};
use pipeline_core::event::Provenance;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file under `events/`.
pub fn events_dir() -> PathBuf {
    repo_root().join("events")
}

/// A fixed "now" well after every generated event.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 10, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// `n` valid payment events over `entities` entities, one minute apart, with some failures
/// and a few countries, deterministic for `seed`.
pub fn payments(n: usize, entities: usize, seed: u64) -> Vec<Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Utc
        .with_ymd_and_hms(2026, 11, 1, 8, 0, 0)
        .single()
        .unwrap_or_default();
    let countries = ["DE", "FR", "NL"];
    (0..n)
        .map(|i| {
            let entity = format!("acct-{}", rng.random_range(0..entities));
            let failed = rng.random_bool(0.2);
            json!({
                "event_id": format!("evt-{seed}-{i:05}"),
                "event_type": "payment.authorized",
                "source": "psp-test",
                "entity_id": entity,
                "occurred_at": (start + Duration::seconds(i as i64 * 60)).to_rfc3339(),
                "value": (rng.random_range(500..5000) as f64) / 100.0,
                "currency": "EUR",
                "attributes": {
                    "country": countries[rng.random_range(0..countries.len())],
                    "merchant": format!("m-{}", rng.random_range(0..6)),
                    "status": if failed { "declined" } else { "approved" },
                }
            })
        })
        .collect()
}

/// One raw batch holding `payloads`.
pub fn raw_batch(id: &str, payloads: Vec<Value>) -> Batch<RawEvent> {
    let events: Vec<RawEvent> = payloads
        .into_iter()
        .map(|payload| RawEvent {
            payload,
            provenance: Provenance::Direct,
        })
        .collect();
    Batch {
        batch_id: id.to_owned(),
        received_at: now(),
        input_count: events.len(),
        events,
        quarantine: Vec::new(),
    }
}
