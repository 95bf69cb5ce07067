//! Stage 1, validate: the contract plus the checks a schema cannot express.
//!
//! Every check runs on every event and every failure is reported, so a producer fixing a
//! quarantined event sees all of its problems at once. Checks:
//! - the JSON Schema (`schema`, one reason per violation, with the field's path);
//! - `unsupported_schema_version` when `schema_version` is above what this build knows
//!   (reported alone: a newer contract's payload is not judged by the old rules);
//! - `too_large`: the serialised payload exceeds the per-event cap (64 KiB by default);
//! - `non_finite_value`: `value` is not a finite number;
//! - `unknown_currency`: `currency` is not an ISO 4217 code;
//! - `bad_timestamp`: `occurred_at` is not RFC 3339 with an offset;
//! - `future_timestamp`: `occurred_at` is later than `received_at` plus the allowed skew;
//! - `duplicate_in_batch`: the `event_id` already occurred earlier in the same batch.

use std::collections::HashSet;

use chrono::{DateTime, Duration};
use serde::Deserialize;
use serde_json::Value;

use crate::batch::{Batch, Quarantined, RawEvent, Reason, Stage, ValidEvent};
use crate::contract::{Contract, SCHEMA_VERSION};
use crate::currency;
use crate::event::Event;

/// Validation settings.
#[derive(Debug, Clone)]
pub struct ValidateConfig {
    /// How far in the future of `received_at` an `occurred_at` may be (clock skew).
    pub max_future_skew: Duration,
    /// The largest serialised event accepted.
    pub max_event_bytes: usize,
}

impl Default for ValidateConfig {
    fn default() -> Self {
        ValidateConfig {
            max_future_skew: Duration::minutes(5),
            max_event_bytes: 64 * 1024,
        }
    }
}

/// Runs the validate stage over a batch.
pub fn validate(
    mut batch: Batch<RawEvent>,
    contract: &Contract,
    cfg: &ValidateConfig,
) -> Batch<ValidEvent> {
    let raws = std::mem::take(&mut batch.events);
    let mut seen: HashSet<String> = HashSet::with_capacity(raws.len());
    let mut valid = Vec::with_capacity(raws.len());
    let mut quarantine = Vec::new();
    for raw in raws {
        let reasons = check(&raw.payload, contract, cfg, batch.received_at, &mut seen);
        if !reasons.is_empty() {
            quarantine.push(reject(raw, reasons));
            continue;
        }
        // Deserialising from a borrowed Value keeps the payload for the quarantine path.
        match Event::deserialize(&raw.payload) {
            Ok(event) => valid.push(ValidEvent {
                event,
                provenance: raw.provenance,
            }),
            Err(e) => quarantine.push(reject(raw, vec![Reason::new("schema", e.to_string())])),
        }
    }
    batch.map_events(valid, quarantine)
}

fn reject(raw: RawEvent, reasons: Vec<Reason>) -> Quarantined {
    let event_id = raw
        .payload
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Quarantined {
        event_id,
        stage: Stage::Validate,
        reasons,
        payload: raw.payload,
        provenance: raw.provenance,
    }
}

/// Every reason `payload` is not a valid v1 event (empty when it is).
pub fn check(
    payload: &Value,
    contract: &Contract,
    cfg: &ValidateConfig,
    received_at: DateTime<chrono::Utc>,
    seen: &mut HashSet<String>,
) -> Vec<Reason> {
    if let Some(v) = payload.get("schema_version").and_then(Value::as_u64) {
        if v > SCHEMA_VERSION {
            return vec![Reason::at(
                "unsupported_schema_version",
                "/schema_version",
                format!(
                    "schema_version {v} is newer than this pipeline understands ({SCHEMA_VERSION}); replay after upgrading"
                ),
            )];
        }
    }
    let mut reasons = contract.check(payload);

    let size = crate::batch::serialized_len(payload);
    if size > cfg.max_event_bytes {
        reasons.push(Reason::new(
            "too_large",
            format!(
                "event is {size} bytes, more than the {} byte limit",
                cfg.max_event_bytes
            ),
        ));
    }
    if let Some(v) = payload.get("value").and_then(Value::as_f64) {
        if !v.is_finite() {
            reasons.push(Reason::at(
                "non_finite_value",
                "/value",
                "value must be a finite number",
            ));
        }
    }
    if let Some(c) = payload.get("currency").and_then(Value::as_str) {
        if !currency::is_known(c) {
            reasons.push(Reason::at(
                "unknown_currency",
                "/currency",
                format!("{c:?} is not an ISO 4217 currency code"),
            ));
        }
    }
    if let Some(ts) = payload.get("occurred_at").and_then(Value::as_str) {
        match DateTime::parse_from_rfc3339(ts) {
            Ok(t) => {
                let latest = received_at + cfg.max_future_skew;
                if t > latest {
                    reasons.push(Reason::at(
                        "future_timestamp",
                        "/occurred_at",
                        format!(
                            "occurred_at {ts} is more than {}s after the batch was received ({})",
                            cfg.max_future_skew.num_seconds(),
                            received_at.to_rfc3339()
                        ),
                    ));
                }
            }
            Err(e) => reasons.push(Reason::at(
                "bad_timestamp",
                "/occurred_at",
                format!("{ts:?} is not RFC 3339 with an offset: {e}"),
            )),
        }
    }
    if let Some(id) = payload.get("event_id").and_then(Value::as_str) {
        if !seen.insert(id.to_owned()) {
            reasons.push(Reason::at(
                "duplicate_in_batch",
                "/event_id",
                format!("event_id {id:?} occurs more than once in this batch"),
            ));
        }
    }
    reasons
}
