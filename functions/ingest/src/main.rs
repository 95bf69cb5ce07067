//! The `ingest` Lambda function: an MSK (Kafka) or EventBridge event → batch documents under the
//! Step Functions state limit → one state machine execution per batch ([`SfnSink`]).
//!
//! Everything is built once at cold start; the handler itself is
//! [`pipeline_handlers::handlers::ingest`]. It succeeds only when every execution succeeded,
//! so Kafka offsets are never committed past an unprocessed event and EventBridge retries
//! (then dead-letters) a failed delivery.

use lambda_runtime::service_fn;
use pipeline_aws::{DynamoStore, SfnSink, Tables};
use pipeline_handlers::{Config, Pipeline};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_handlers::telemetry::init();
    let metrics = pipeline_handlers::telemetry::init_metrics(pipeline_handlers::Stage::Ingest)?;
    let config = Config::from_env()?;
    let sdk = pipeline_aws::sdk_config().await;
    let sink = SfnSink::from_env(&sdk)?;
    // Ingest never touches the store; the Pipeline type carries one, and building it makes no call.
    let pipeline = Pipeline::new(config, DynamoStore::new(&sdk, Tables::from_env()))?;
    let (pipeline, sink) = (&pipeline, &sink);
    metrics_cloudwatch_embedded::lambda::service::run(
        metrics,
        service_fn(|event| async move {
            pipeline_handlers::handlers::ingest(event, pipeline, sink).await
        }),
    )
    .await
}
