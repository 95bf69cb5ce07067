//! The `validate` Lambda function: raw batch → schema and semantic checks → validated batch (bad
//! events quarantined). It reads no table; the store is built anyway, because a `Pipeline` holds
//! one, and building it sends no request.
//!
//! Everything is built once at cold start; the handler itself is
//! [`pipeline_handlers::handlers::validate`].

use lambda_runtime::service_fn;
use pipeline_aws::{DynamoStore, Tables};
use pipeline_handlers::{Config, Pipeline};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipeline_handlers::telemetry::init();
    let metrics = pipeline_handlers::telemetry::init_metrics(pipeline_handlers::Stage::Validate)?;
    let config = Config::from_env()?;
    let store = DynamoStore::new(&pipeline_aws::sdk_config().await, Tables::from_env());
    let pipeline = Pipeline::new(config, store)?;
    let pipeline = &pipeline;
    metrics_cloudwatch_embedded::lambda::service::run(
        metrics,
        service_fn(
            |event| async move { pipeline_handlers::handlers::validate(event, pipeline).await },
        ),
    )
    .await
}
