//! The enrich stage: validated batch → FX normalisation and event-time features → enriched
//! batch. It reads nothing: the entity profile is set by detect, from the state it reads
//! (`pipeline_core::enrich`'s module doc says why).

use pipeline_core::batch::{Batch, Stage, ValidEvent};
use pipeline_core::enrich::{EnrichedEvent, FxTable};
use pipeline_core::validate::{ValidateConfig, recheck};
use serde_json::Value;

use super::stage_done;
use crate::Handler;
use crate::config::Config;
use crate::error::FunctionError;

/// The enrich stage: the FX table and the validation settings it re-checks a batch with.
#[derive(Debug)]
pub struct Enrich {
    fx: FxTable,
    validate: ValidateConfig,
    fault_injection: bool,
}

impl Enrich {
    /// The stage with the configuration's FX table.
    pub fn new(config: &Config) -> Self {
        Enrich {
            fx: config.fx.clone(),
            validate: config.validate.clone(),
            fault_injection: config.fault_injection,
        }
    }

    /// Enriches a batch: like validate, pure and infallible (a bad event is quarantined).
    pub fn enrich(&self, batch: Batch<ValidEvent>) -> Batch<EnrichedEvent> {
        let batch = recheck(batch, Stage::Enrich, &self.validate, |e| {
            (&e.event, &e.provenance)
        });
        pipeline_core::enrich::enrich(batch, &self.fx)
    }
}

impl Handler for Enrich {
    const STAGE: Stage = Stage::Enrich;
    const EXPECTS: &'static str = "validated batch (validate output)";
    type Input = Batch<ValidEvent>;
    type Output = Batch<EnrichedEvent>;

    fn injects_faults(&self, _doc: &Value) -> bool {
        self.fault_injection
    }

    async fn run(&self, batch: Batch<ValidEvent>) -> Result<Self::Output, FunctionError> {
        let before = batch.quarantine.len();
        let out = self.enrich(batch);
        stage_done(Self::STAGE, before, &out);
        Ok(out)
    }
}
