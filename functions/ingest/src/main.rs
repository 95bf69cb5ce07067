//! The `ingest` Lambda function: MSK or EventBridge event → batches → one Step Functions
//! execution each ([`pipeline_aws::SfnSink`]). The stage is [`pipeline_handlers::Ingest`].

use pipeline_aws::{SfnSink, lambda_sdk_config};
use pipeline_handlers::{Config, Ingest, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env()?;
    let machine = config.require_state_machine()?;
    let sink = SfnSink::new(
        &lambda_sdk_config().await,
        machine.arn.clone(),
        machine.kind,
    );
    serve(Ingest::new(&config, sink), &config.telemetry).await
}
