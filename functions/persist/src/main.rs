//! The `persist` Lambda function: scored batch → anomaly announcements on EventBridge →
//! conditional writes to DynamoDB → persist report; or, on the state machine's quarantine
//! path, a failed batch → quarantine records.
//!
//! Everything is built once at cold start; the handler itself is
//! [`pipeline_handlers::handlers::persist`].

use lambda_runtime::service_fn;
use std::sync::Arc;

use pipeline_aws::{DynamoStore, EventBridgeAnnouncer, Tables};
use pipeline_handlers::{Config, Pipeline};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_handlers::telemetry::init();
    let metrics = pipeline_handlers::telemetry::init_metrics(pipeline_handlers::Stage::Persist)?;
    let config = Config::from_env()?;
    let sdk = pipeline_aws::sdk_config().await;
    let store = DynamoStore::new(&sdk, Tables::from_env());
    let mut pipeline = Pipeline::new(config, store)?;
    // Without ANOMALY_BUS_NAME anomalies are stored but not announced.
    if let Some(announcer) = EventBridgeAnnouncer::from_env(&sdk) {
        pipeline = pipeline.with_announcer(Arc::new(announcer));
    }
    let pipeline = &pipeline;
    metrics_cloudwatch_embedded::lambda::service::run(
        metrics,
        service_fn(
            |event| async move { pipeline_handlers::handlers::persist(event, pipeline).await },
        ),
    )
    .await
}
