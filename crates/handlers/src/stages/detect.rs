//! The detect stage: enriched batch → anomaly scores from the entity state in the store →
//! scored batch.

use pipeline_core::Error;
use pipeline_core::batch::{Batch, Stage};
use pipeline_core::detect::{DetectConfig, ScoredEvent};
use pipeline_core::enrich::EnrichedEvent;
use pipeline_core::store::EntityStore;
use pipeline_core::validate::{ValidateConfig, recheck};
use serde_json::Value;
use tracing::info;

use super::{entities, reason_codes, stage_done};
use crate::Handler;
use crate::config::Config;
use crate::error::FunctionError;

/// The detect stage: detection settings and the store holding entity state.
#[derive(Debug)]
pub struct Detect<S> {
    config: DetectConfig,
    store: S,
    validate: ValidateConfig,
    fault_injection: bool,
}

impl<S: EntityStore> Detect<S> {
    /// Binds the detection settings to a store.
    pub fn new(config: &Config, store: S) -> Self {
        Detect {
            config: config.detect.clone(),
            store,
            validate: config.validate.clone(),
            fault_injection: config.fault_injection,
        }
    }

    /// Scores a batch against its entities' state.
    pub async fn detect(&self, batch: Batch<EnrichedEvent>) -> Result<Batch<ScoredEvent>, Error> {
        let batch = recheck(batch, Stage::Detect, &self.validate, |e| {
            (&e.event, &e.provenance)
        });
        let ids = batch.events.iter().map(|e| e.event.entity_id.as_str());
        let states = entities(&self.store, ids).await?;
        Ok(pipeline_core::detect::detect(batch, &states, &self.config))
    }
}

impl<S: EntityStore> Handler for Detect<S> {
    const STAGE: Stage = Stage::Detect;
    const EXPECTS: &'static str = "enriched batch (enrich output)";
    type Input = Batch<EnrichedEvent>;
    type Output = Batch<ScoredEvent>;

    fn injects_faults(&self, _doc: &Value) -> bool {
        self.fault_injection
    }

    async fn run(&self, batch: Batch<EnrichedEvent>) -> Result<Self::Output, FunctionError> {
        let before = batch.quarantine.len();
        let out = self.detect(batch).await?;
        for e in out.events.iter().filter(|e| e.detection.is_anomaly) {
            let reasons = reason_codes(e.detection.reasons.iter().map(|r| r.code()));
            info!(event_id = %e.event.event_id, entity_id = %e.event.entity_id, score = e.detection.score, reasons, "anomaly scored");
        }
        stage_done(Self::STAGE, before, &out);
        Ok(out)
    }
}
