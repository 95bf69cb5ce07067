//! The validate stage: raw batch → schema and semantic checks → validated batch, bad events
//! quarantined with every reason. It reads no table.

use lambda_runtime::LambdaEvent;
use pipeline_core::Error;
use pipeline_core::batch::{Batch, RawEvent, Stage, ValidEvent};
use pipeline_core::contract::Contract;
use pipeline_core::validate::ValidateConfig;
use serde_json::Value;

use super::{Handler, run_stage};
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
    pub fn run(&self, batch: Batch<RawEvent>) -> Batch<ValidEvent> {
        pipeline_core::validate::validate(batch, &self.contract, &self.config)
    }
}

impl Handler for Validate {
    const STAGE: Stage = Stage::Validate;
    type Output = Batch<ValidEvent>;

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Self::Output, FunctionError> {
        run_stage(
            Self::STAGE,
            "raw event batch (ingest output)",
            event,
            self.fault_injection,
            |b: Batch<RawEvent>| async move {
                let out = self.run(b);
                metrics::counter!(metric::EVENTS_VALID).increment(out.events.len() as u64);
                Ok(out)
            },
        )
        .await
    }
}
