//! Stage 2, enrich: base-currency value, event-time features, ingestion lag and what the store
//! knows about the entity.
//!
//! - **FX**: `value` is converted to the base currency with the table in `config/fx.json`
//!   (compiled in; a deployment can point `PIPELINE_FX_TABLE` at another file of the same
//!   shape). An event without `currency` is a reading, not money: its base value is its value.
//!   A currency that is valid ISO 4217 but absent from the table is quarantined with
//!   `fx_rate_missing`, never guessed.
//! - **Event-time features** are computed in the event's own UTC offset, because a person's
//!   daily rhythm follows local time: day of week (0 = Monday), hour of day, hour of week.
//! - **Ingestion lag** is `received_at − occurred_at` in milliseconds (negative when the
//!   producer's clock is ahead, within the skew validate allows).
//! - **Entity profile** (first seen, events seen, usual countries) is not enrich's: it is the
//!   entity as of each event, which only the detect stage knows (it walks the batch's events
//!   through the entity's state in order), so detect fills `enrichment.entity` from the state
//!   it reads anyway. Enrich reads nothing: the states are read once per batch before persist,
//!   not twice (one DynamoDB round trip less on every execution's critical path).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::batch::{Batch, Quarantined, Reason, Stage, ValidEvent};
use crate::event::{Event, Provenance};

/// Bumped whenever enrichment output changes meaning.
pub const ENRICHMENT_VERSION: u32 = 1;

/// The FX table shipped in the repository.
pub const DEFAULT_FX_TABLE: &str = include_str!("../../../config/fx.json");

/// Conversion rates into one base currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FxTable {
    /// The base currency.
    pub base: String,
    /// Date the rates are from.
    #[serde(default)]
    pub as_of: Option<String>,
    /// Units of the base currency per unit of each currency.
    pub rates: BTreeMap<String, f64>,
}

impl FxTable {
    /// The table shipped in the repository.
    pub fn builtin() -> Result<Self, Error> {
        Self::from_json(DEFAULT_FX_TABLE)
    }

    /// Parses and checks a table.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let t: FxTable = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("FX table is not valid: {e}")))?;
        if let Some((code, rate)) = t.rates.iter().find(|(_, r)| !(r.is_finite() && **r > 0.0)) {
            return Err(Error::Config(format!(
                "FX rate for {code} must be a positive number, got {rate}"
            )));
        }
        if t.rates.get(&t.base) != Some(&1.0) {
            return Err(Error::Config(format!(
                "FX table must list its base currency {} at rate 1.0",
                t.base
            )));
        }
        Ok(t)
    }
}

pub use pipeline_detect::EntityProfile;

/// What enrich adds to an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    /// [`ENRICHMENT_VERSION`] at the time.
    pub enrichment_version: u32,
    /// `value` in the base currency (equal to `value` for events without a currency).
    pub base_value: f64,
    /// The base currency.
    pub base_currency: String,
    /// The rate applied, when the event had a currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fx_rate: Option<f64>,
    /// 0 … 167 (Monday 00h = 0), in the event's offset. Day and hour are derived from it
    /// ([`Enrichment::day_of_week`], [`Enrichment::hour_of_day`]) rather than carried beside
    /// it: every byte here crosses three stage boundaries and is stored with each record.
    pub hour_of_week: u16,
    /// `received_at − occurred_at`, ms.
    pub ingestion_lag_ms: i64,
    /// Reference data about the entity as of this event: set by the detect stage (enrich
    /// leaves the default; see the module's doc).
    pub entity: EntityProfile,
}

impl Enrichment {
    /// 0 = Monday … 6 = Sunday, in the event's offset.
    pub fn day_of_week(&self) -> u8 {
        (self.hour_of_week / 24) as u8
    }

    /// 0 … 23, in the event's offset.
    pub fn hour_of_day(&self) -> u8 {
        (self.hour_of_week % 24) as u8
    }
}

/// An enriched event: enrich's output and detect's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedEvent {
    /// The event.
    pub event: Event,
    /// Where it came from.
    #[serde(default)]
    pub provenance: Provenance,
    /// What enrich added.
    pub enrichment: Enrichment,
}

impl crate::batch::ForStage for EnrichedEvent {
    const STAGE: Option<crate::batch::Stage> = Some(crate::batch::Stage::Detect);
}

/// Runs the enrich stage: a pure function of the batch and the FX table.
pub fn enrich(mut batch: Batch<ValidEvent>, fx: &FxTable) -> Batch<EnrichedEvent> {
    let events = std::mem::take(&mut batch.events);
    let mut out = Vec::with_capacity(events.len());
    let mut quarantine = Vec::new();
    let received_at = batch.received_at;
    for ValidEvent { event, provenance } in events {
        match enrich_one(&event, fx, received_at) {
            Ok(enrichment) => {
                out.push(EnrichedEvent {
                    event,
                    provenance,
                    enrichment,
                });
            }
            Err(reasons) => quarantine.push(Quarantined::typed(
                &event,
                provenance,
                Stage::Enrich,
                reasons,
            )),
        }
    }
    batch.map_events(out, quarantine)
}

fn enrich_one(
    event: &Event,
    fx: &FxTable,
    received_at: DateTime<Utc>,
) -> Result<Enrichment, Vec<Reason>> {
    let (base_value, fx_rate) = match &event.currency {
        None => (event.value, None),
        // Rounded to a millionth: the float noise of the multiplication is not information.
        Some(c) => match fx.rates.get(c) {
            Some(rate) => (((event.value * rate) * 1e6).round() / 1e6, Some(*rate)),
            None => {
                return Err(vec![Reason::at(
                    "fx_rate_missing",
                    "/currency",
                    format!("no {c}→{} rate in the FX table", fx.base),
                )]);
            }
        },
    };
    if !base_value.is_finite() {
        return Err(vec![Reason::at(
            "fx_overflow",
            "/value",
            "value overflows once converted to the base currency",
        )]);
    }
    let t = event.occurred_at;
    let day = t.weekday().num_days_from_monday() as u8;
    let hour = t.hour() as u8;
    Ok(Enrichment {
        enrichment_version: ENRICHMENT_VERSION,
        base_value,
        base_currency: fx.base.clone(),
        fx_rate,
        hour_of_week: u16::from(day) * 24 + u16::from(hour),
        ingestion_lag_ms: received_at.timestamp_millis() - t.timestamp_millis(),
        entity: EntityProfile::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn builtin_table_loads_and_rejects_bad_tables() {
        let t = FxTable::builtin().expect("builtin table");
        assert_eq!(t.base, "USD");
        assert!(FxTable::from_json(r#"{"base":"USD","rates":{"USD":1.0,"EUR":-1}}"#).is_err());
        assert!(FxTable::from_json(r#"{"base":"USD","rates":{"EUR":1.1}}"#).is_err());
    }

    #[test]
    fn features_use_the_events_offset() {
        let e: Event = serde_json::from_str(
            r#"{"event_id":"e","event_type":"a.b","source":"s","entity_id":"x","occurred_at":"2026-11-02T23:30:00-05:00","value":10,"currency":"EUR"}"#,
        )
        .expect("event");
        let fx = FxTable::builtin().expect("fx");
        let received = Utc
            .with_ymd_and_hms(2026, 11, 3, 4, 31, 0)
            .single()
            .expect("time");
        let en = enrich_one(&e, &fx, received).expect("enriched");
        assert_eq!(
            (en.day_of_week(), en.hour_of_day(), en.hour_of_week),
            (0, 23, 23)
        );
        assert!((en.base_value - 10.8).abs() < 1e-9);
        assert_eq!(en.ingestion_lag_ms, 60_000);
    }
}
