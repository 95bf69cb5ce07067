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
//! - the [`invariants`] a typed event must keep (identifiers without control characters),
//!   which every later stage checks again on its input ([`recheck`]).
//!
//! An `event_id` that occurs twice in one batch is not a validation failure: persist decides
//! the repeat against the first (`duplicate`, `updated`, …) exactly as it would had the two
//! arrived in separate batches, so outcomes do not depend on where a stream was cut.

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::batch::{Batch, Quarantined, RawEvent, Reason, Stage, ValidEvent};
use crate::contract::{Contract, SCHEMA_VERSION};
use crate::currency;
use crate::event::{Event, Provenance};

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

/// Characters that change how text around them is shown or are not shown at all:
/// bidirectional marks, embeddings, overrides and isolates, zero-width characters, the word
/// joiner and invisible operators, the byte-order mark, the soft hyphen and tag characters. In
/// an identifier they let two different ids print alike (`acct-1` and `acct-1` with a
/// zero-width space) or reorder what a reader sees; printed, they are escaped.
pub fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Runs the validate stage over a batch.
pub fn validate(
    mut batch: Batch<RawEvent>,
    contract: &Contract,
    cfg: &ValidateConfig,
) -> Batch<ValidEvent> {
    let raws = std::mem::take(&mut batch.events);
    let mut valid = Vec::with_capacity(raws.len());
    let mut quarantine = Vec::new();
    for raw in raws {
        let reasons = check(&raw.payload, contract, cfg, batch.received_at);
        if !reasons.is_empty() {
            quarantine.push(reject(raw, reasons));
            continue;
        }
        // Deserialising from a borrowed Value keeps the payload for the quarantine path.
        match Event::deserialize(&raw.payload) {
            Ok(event) => {
                // The rules JSON Schema cannot say well (control characters in identifiers).
                let reasons = invariants(&event, batch.received_at, cfg);
                if reasons.is_empty() {
                    valid.push(ValidEvent {
                        event,
                        provenance: raw.provenance,
                    });
                } else {
                    quarantine.push(reject(raw, reasons));
                }
            }
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
        reasons.extend(unknown_currency(c));
    }
    if let Some(ts) = payload.get("occurred_at").and_then(Value::as_str) {
        match DateTime::parse_from_rfc3339(ts) {
            Ok(t) => reasons.extend(future_timestamp(t, received_at, cfg)),
            Err(e) => reasons.push(Reason::at(
                "bad_timestamp",
                "/occurred_at",
                format!("{ts:?} is not RFC 3339 with an offset: {e}"),
            )),
        }
    }
    reasons
}

/// `unknown_currency` when `c` is not an ISO 4217 code (validate and the re-checks share it).
/// The rule against event times ahead of receipt, for raw payloads and typed events alike.
fn future_timestamp(
    t: DateTime<FixedOffset>,
    received_at: DateTime<Utc>,
    cfg: &ValidateConfig,
) -> Option<Reason> {
    (t > received_at + cfg.max_future_skew).then(|| {
        Reason::at(
            "future_timestamp",
            "/occurred_at",
            format!(
                "occurred_at {} is more than {}s after the batch was received ({})",
                t.to_rfc3339(),
                cfg.max_future_skew.num_seconds(),
                received_at.to_rfc3339()
            ),
        )
    })
}

fn unknown_currency(c: &str) -> Option<Reason> {
    (!currency::is_known(c)).then(|| {
        Reason::at(
            "unknown_currency",
            "/currency",
            format!("{c:?} is not an ISO 4217 currency code"),
        )
    })
}

/// What every later stage re-checks on the typed events it is handed: its input is a trust
/// boundary (a batch document given to a Lambda or to `pipeline run` may come from anywhere,
/// not only from the previous stage), and typing an event checks its shape, not the contract's
/// rules. These are the contract's rules a typed [`Event`] can break, with the codes validate
/// uses; an empty list means the event may go on.
pub fn invariants(
    e: &Event,
    received_at: DateTime<chrono::Utc>,
    cfg: &ValidateConfig,
) -> Vec<Reason> {
    let mut reasons = Vec::new();
    // The message is built only for a broken rule: every later stage re-checks every event,
    // and formatting five messages per event per stage that nobody reads was measurable.
    let mut rule = |ok: bool, path: &str, what: &dyn Fn() -> String| {
        if !ok {
            reasons.push(Reason::at("schema", path, what()));
        }
    };
    let id_ok = (1..=128).contains(&e.event_id.len())
        && e.event_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    rule(id_ok, "/event_id", &|| {
        format!(
            "event_id {:?} must be 1-128 of A-Z a-z 0-9 . _ : -",
            e.event_id
        )
    });
    let type_ok = (3..=128).contains(&e.event_type.len())
        && e.event_type.split('.').count() >= 2
        && e.event_type.split('.').all(|seg| {
            seg.starts_with(|c: char| c.is_ascii_lowercase())
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    rule(type_ok, "/event_type", &|| {
        format!(
            "event_type {:?} must be dotted lowercase segments",
            e.event_type
        )
    });
    for (path, text, max) in [
        ("/source", &e.source, 256),
        ("/entity_id", &e.entity_id, 256),
    ] {
        let ok = !text.is_empty()
            && text.chars().count() <= max
            && !text.chars().any(|c| c.is_control() || is_hidden(c));
        rule(ok, path, &|| {
            format!(
                "{path} must be 1-{max} characters without control, bidirectional-override or \
                 invisible characters (they make two different ids look the same)"
            )
        });
    }
    rule(e.version >= 1, "/version", &|| {
        format!("version must be at least 1, not {}", e.version)
    });
    if let Some(v) = e.schema_version {
        if v != 1 {
            reasons.push(Reason::at(
                "unsupported_schema_version",
                "/schema_version",
                format!("schema_version {v} is not supported by this build"),
            ));
        }
    }
    if !e.value.is_finite() {
        reasons.push(Reason::at(
            "non_finite_value",
            "/value",
            "value must be a finite number",
        ));
    }
    if let Some(c) = &e.currency {
        reasons.extend(unknown_currency(c));
    }
    reasons.extend(future_timestamp(e.occurred_at, received_at, cfg));
    reasons
}

/// Moves the events of `batch` that break the [`invariants`] to its quarantine list, at
/// `stage`, each with every reason; `parts` gives an event's typed event and provenance.
pub fn recheck<T>(
    mut batch: Batch<T>,
    stage: Stage,
    cfg: &ValidateConfig,
    parts: impl Fn(&T) -> (&Event, &Provenance),
) -> Batch<T> {
    let received_at = batch.received_at;
    if batch
        .events
        .iter()
        .all(|x| invariants(parts(x).0, received_at, cfg).is_empty())
    {
        return batch;
    }
    let mut kept = Vec::with_capacity(batch.events.len());
    let mut quarantine = Vec::new();
    for x in std::mem::take(&mut batch.events) {
        let (event, provenance) = parts(&x);
        let reasons = invariants(event, received_at, cfg);
        if reasons.is_empty() {
            kept.push(x);
        } else {
            quarantine.push(Quarantined::typed(
                event,
                provenance.clone(),
                stage,
                reasons,
            ));
        }
    }
    batch.map_events(kept, quarantine)
}
