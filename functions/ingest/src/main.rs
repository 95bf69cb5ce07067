//! The `ingest` Lambda function: an MSK (Kafka) or EventBridge event → batch documents under the
//! Step Functions state limit → one receipt per batch.
//!
//! Everything is built once at cold start; the handler itself is
//! [`pipeline_handlers::handlers::ingest`]. Until the Step Functions sink exists, each
//! invocation hands its batches to a fresh [`CollectSink`] and returns the receipts.

use lambda_runtime::service_fn;
use pipeline_aws::{DynamoStore, Tables};
use pipeline_handlers::{CollectSink, Config, Pipeline};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_handlers::telemetry::init();
    let config = Config::from_env()?;
    let store = DynamoStore::new(&pipeline_aws::sdk_config().await, Tables::from_env());
    let pipeline = Pipeline::new(config, store)?;
    let pipeline = &pipeline;
    lambda_runtime::run(service_fn(|event| async move {
        let sink = CollectSink::default();
        pipeline_handlers::handlers::ingest(event, pipeline, &sink).await
    }))
    .await
}
