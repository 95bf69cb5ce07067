//! Stage 3, detect: the detector of `pipeline-detect` run over a batch of enriched events.
//!
//! Everything about *how* an event is scored (the rules, the value model, the entity state,
//! incidents) is the `pipeline-detect` crate, re-exported here so that `pipeline_core::detect`
//! names all of it; this module adds what ties it to the event contract: reading an
//! [`Observation`] off an [`Event`] ([`ObservationOf`]), the [`ScoredEvent`] the stage
//! emits, and the stage function [`detect`] (which also sets each event's entity profile).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use pipeline_detect::*;

use crate::batch::{Batch, Stage};
use crate::enrich::{EnrichedEvent, Enrichment};
use crate::event::{Event, Provenance};

/// An event with its detection: the detect stage's output and persist's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredEvent {
    /// The event.
    pub event: Event,
    /// Where it came from.
    #[serde(default)]
    pub provenance: Provenance,
    /// What enrich added.
    pub enrichment: Enrichment,
    /// The verdict.
    pub detection: Detection,
}

impl crate::batch::ForStage for ScoredEvent {
    const STAGE: Option<crate::batch::Stage> = Some(crate::batch::Stage::Persist);
}

/// Reads an [`Observation`] off an event: `Observation::of(&event, base_value, &cfg)`.
pub trait ObservationOf<'a> {
    /// The observation of `event`, whose base-currency value is `base_value`.
    fn of(event: &'a Event, base_value: f64, cfg: &DetectConfig) -> Self;
}

impl<'a> ObservationOf<'a> for Observation<'a> {
    fn of(event: &'a Event, base_value: f64, cfg: &DetectConfig) -> Self {
        let failure = event.attr_str("status").is_some_and(|s| {
            cfg.failure_statuses
                .iter()
                .any(|f| f.eq_ignore_ascii_case(s))
        });
        Observation {
            event_id: &event.event_id,
            id_hash: hash64(event.event_id.as_bytes()),
            t_ms: event.occurred_ms(),
            value: base_value,
            failure,
            country: event.attr_str("country"),
            merchant: event.attr_str("merchant"),
            ctx: Context::of_local_ms(
                event.occurred_ms()
                    + i64::from(event.occurred_at.offset().local_minus_utc()) * 1000,
            ),
        }
    }
}

/// Runs the detect stage: scores every event in input order, each entity's starting from its
/// stored state in `states` (entities missing there start fresh), and sets each event's
/// `enrichment.entity` to the entity's profile just before it.
///
/// Input order, not event-time order within the batch: a batch is a cut of the stream that the
/// producer and the batch size decide, so sorting inside it would make an out-of-order
/// stream's scores depend on where the cuts fall (the late-event and watermark rules handle
/// out-of-order events the same way whichever batch they arrive in). For the same reason the
/// profile is the entity's as of the event, not as stored when the batch started: otherwise
/// three events of one entity in one batch would all read `event_count` 0, and 0, 1, 2 when
/// cut one per batch.
pub fn detect(
    mut batch: Batch<EnrichedEvent>,
    states: &HashMap<String, EntityState>,
    cfg: &DetectConfig,
) -> Batch<ScoredEvent> {
    let events = std::mem::take(&mut batch.events);
    let mut working: HashMap<String, EntityState> = HashMap::new();
    let scored = events
        .into_iter()
        .map(|ev| {
            let id = ev.event.entity_id.as_str();
            if !working.contains_key(id) {
                let state = states
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| EntityState::new(id));
                working.insert(id.to_owned(), state);
            }
            let mut enrichment = ev.enrichment;
            let detection = match working.get_mut(id) {
                Some(state) => {
                    enrichment.entity = state.profile();
                    let obs = Observation::of(&ev.event, enrichment.base_value, cfg);
                    observe(state, &obs, cfg, true)
                }
                None => Detection::default(),
            };
            ScoredEvent {
                event: ev.event,
                provenance: ev.provenance,
                enrichment,
                detection,
            }
        })
        .collect();
    let _ = Stage::Detect; // detect never quarantines: every enriched event can be scored.
    batch.map_events(scored, Vec::new())
}
