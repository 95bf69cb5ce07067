//! The enrich stage: validated batch → FX normalisation and entity profiles read from the store
//! → enriched batch.

use pipeline_core::Error;
use pipeline_core::batch::{Batch, Stage, ValidEvent};
use pipeline_core::enrich::{EnrichedEvent, FxTable};
use pipeline_core::store::EntityStore;
use pipeline_core::validate::{ValidateConfig, recheck};
use serde_json::Value;

use super::{entities, stage_done};
use crate::Handler;
use crate::config::Config;
use crate::error::FunctionError;

/// The enrich stage: the FX table and the store holding entity profiles.
#[derive(Debug)]
pub struct Enrich<S> {
    fx: FxTable,
    store: S,
    validate: ValidateConfig,
    fault_injection: bool,
}

impl<S: EntityStore> Enrich<S> {
    /// Binds the FX table to a store.
    pub fn new(config: &Config, store: S) -> Self {
        Enrich {
            fx: config.fx.clone(),
            store,
            validate: config.validate.clone(),
            fault_injection: config.fault_injection,
        }
    }

    /// Enriches a batch, reading its entities' profiles.
    pub async fn enrich(&self, batch: Batch<ValidEvent>) -> Result<Batch<EnrichedEvent>, Error> {
        let batch = recheck(batch, Stage::Enrich, &self.validate, |e| {
            (&e.event, &e.provenance)
        });
        let ids = batch.events.iter().map(|e| e.event.entity_id.as_str());
        let states = entities(&self.store, ids).await?;
        Ok(pipeline_core::enrich::enrich(batch, &self.fx, &states))
    }
}

impl<S: EntityStore> Handler for Enrich<S> {
    const STAGE: Stage = Stage::Enrich;
    const EXPECTS: &'static str = "validated batch (validate output)";
    type Input = Batch<ValidEvent>;
    type Output = Batch<EnrichedEvent>;

    fn injects_faults(&self, _doc: &Value) -> bool {
        self.fault_injection
    }

    async fn run(&self, batch: Batch<ValidEvent>) -> Result<Self::Output, FunctionError> {
        let before = batch.quarantine.len();
        let out = self.enrich(batch).await?;
        stage_done(Self::STAGE, before, &out);
        Ok(out)
    }
}
