//! The validate stage: raw batch → schema and semantic checks → validated batch, bad events
//! quarantined with every reason. It reads no table.

use pipeline_core::Error;
use pipeline_core::batch::{Batch, RawEvent, Stage, ValidEvent};
use pipeline_core::contract::Contract;
use pipeline_core::validate::ValidateConfig;
use serde_json::Value;

use super::stage_done;
use crate::Handler;
use crate::config::Config;
use crate::error::FunctionError;
use crate::telemetry::metric;

/// The validate stage: the compiled contract and its settings.
#[derive(Debug)]
pub struct Validate {
    contract: Contract,
    config: ValidateConfig,
    fault_injection: bool,
}

impl Validate {
    /// Compiles the contract.
    pub fn new(config: &Config) -> Result<Self, Error> {
        Ok(Validate {
            contract: Contract::v1()?,
            config: config.validate.clone(),
            fault_injection: config.fault_injection,
        })
    }

    /// Validates a batch.
    pub fn validate(&self, batch: Batch<RawEvent>) -> Batch<ValidEvent> {
        pipeline_core::validate::validate(batch, &self.contract, &self.config)
    }
}

impl Handler for Validate {
    const STAGE: Stage = Stage::Validate;
    const EXPECTS: &'static str = "raw event batch (ingest output)";
    type Input = Batch<RawEvent>;
    type Output = Batch<ValidEvent>;

    fn injects_faults(&self, _doc: &Value) -> bool {
        self.fault_injection
    }

    async fn run(&self, batch: Batch<RawEvent>) -> Result<Self::Output, FunctionError> {
        let before = batch.quarantine.len();
        let out = self.validate(batch);
        metrics::counter!(metric::EVENTS_VALID).increment(out.events.len() as u64);
        stage_done(Self::STAGE, before, &out);
        Ok(out)
    }
}
