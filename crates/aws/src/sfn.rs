//! Ingest's sink: every batch document becomes one Step Functions execution, and ingest only
//! succeeds once every execution has.
//!
//! - **Express** (the default): `StartSyncExecution` runs the batch and returns its outcome.
//! - **Standard**: `StartExecution`, then `DescribeExecution` until the execution ends (with
//!   a backoff from 200 ms to 2 s). Standard also serves emulators without
//!   `StartSyncExecution` (moto), which the local AWS run relies on.
//!
//! Execution names are `<batch_id>-<received ms>` ([`Batch::execution_name`]): the batch id is a hash of the batch's
//! provenance and content (topic, partition, offsets for Kafka), so a redelivered batch shows
//! up in the history as a second execution with the same prefix.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::types::{ExecutionStatus, SyncExecutionStatus};
use pipeline_core::Error as CoreError;
use pipeline_core::batch::{Batch, RawEvent};
use pipeline_ingest::{BatchSink, MachineType};

use crate::cause::{self, Cause};

/// Runs each batch as a state machine execution.
#[derive(Debug, Clone)]
pub struct SfnSink {
    client: Client,
    state_machine_arn: String,
    kind: MachineType,
    /// Give up waiting on a Standard execution after this long (Lambda's own limit is 15 min).
    pub max_wait: Duration,
}

impl SfnSink {
    /// A sink for one state machine.
    pub fn new(sdk: &aws_config::SdkConfig, state_machine_arn: String, kind: MachineType) -> Self {
        SfnSink {
            client: Client::new(sdk),
            state_machine_arn,
            kind,
            max_wait: Duration::from_secs(14 * 60),
        }
    }

    /// A failed API call: rejected requests (access denied, a missing state machine) are not
    /// worth retrying; everything else fails the execution retryably.
    fn call_failed<E>(name: &str, status: &str, err: SdkError<E, HttpResponse>) -> CoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match Cause::of(&err) {
            Cause::Rejected => CoreError::ServiceRejected {
                service: "stepfunctions",
                message: format!("execution {name}: {}", cause::detail(&err)),
                source: Some(Box::new(err)),
            },
            Cause::Throttled | Cause::Unavailable => {
                Self::failed(name, status, DisplayErrorContext(err).to_string())
            }
        }
    }

    fn failed(name: &str, status: &str, detail: impl Into<String>) -> CoreError {
        CoreError::ExecutionFailed {
            execution: name.to_owned(),
            status: status.to_owned(),
            detail: detail.into(),
        }
    }

    async fn run_express(&self, name: &str, input: String) -> Result<(), CoreError> {
        let out = self
            .client
            .start_sync_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
            .map_err(|e| Self::call_failed(name, "NOT_STARTED", e))?;
        match out.status() {
            SyncExecutionStatus::Succeeded => Ok(()),
            other => Err(Self::failed(
                name,
                other.as_str(),
                format!(
                    "{}: {}",
                    out.error().unwrap_or_default(),
                    out.cause().unwrap_or_default()
                ),
            )),
        }
    }

    async fn run_standard(&self, name: &str, input: String) -> Result<(), CoreError> {
        let started = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
            .map_err(|e| Self::call_failed(name, "NOT_STARTED", e))?;
        let arn = started.execution_arn().to_owned();
        let deadline = tokio::time::Instant::now() + self.max_wait;
        let mut pause = Duration::from_millis(200);
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
            let d = self
                .client
                .describe_execution()
                .execution_arn(&arn)
                .send()
                .await
                .map_err(|e| Self::call_failed(name, "UNKNOWN", e))?;
            match d.status() {
                ExecutionStatus::Running | ExecutionStatus::PendingRedrive => {}
                ExecutionStatus::Succeeded => return Ok(()),
                other => {
                    return Err(Self::failed(
                        name,
                        other.as_str(),
                        format!(
                            "{}: {}",
                            d.error().unwrap_or_default(),
                            d.cause().unwrap_or_default()
                        ),
                    ));
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Self::failed(
                    name,
                    "RUNNING",
                    "still running when ingest had to give up",
                ));
            }
        }
    }
}

#[async_trait]
impl BatchSink for SfnSink {
    async fn submit(&self, batch: &Batch<RawEvent>) -> Result<(), CoreError> {
        let name = batch.execution_name();
        let input = serde_json::to_string(batch)
            .map_err(|e| Self::failed(&name, "NOT_STARTED", e.to_string()))?;
        tracing::info!(execution = %name, batch_id = %batch.batch_id, events = batch.input_count, "starting execution");
        match self.kind {
            MachineType::Express => self.run_express(&name, input).await,
            MachineType::Standard => self.run_standard(&name, input).await,
        }
    }
}
