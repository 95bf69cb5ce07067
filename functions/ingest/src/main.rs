//! The `ingest` Lambda function: MSK or EventBridge event → batches → one Step Functions
//! execution each ([`pipeline_aws::SfnSink`]). The stage is [`pipeline_handlers::Ingest`].

use std::sync::Arc;

use pipeline_aws::{GlueSchemaClient, SfnSink, lambda_sdk_config};
use pipeline_handlers::{Config, Ingest, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, sdk) = (Config::from_env()?, lambda_sdk_config().await);
    let machine = config.require_state_machine()?;
    let sink = SfnSink::new(&sdk, machine.arn.clone(), machine.kind);
    let mut ingest = Ingest::new(&config, sink);
    if let Some(registry) = &config.glue_registry {
        ingest = ingest.with_glue(Arc::new(GlueSchemaClient::new(&sdk, registry)));
    }
    serve(ingest, &config.telemetry).await
}
