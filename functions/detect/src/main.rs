//! The `detect` Lambda function: enriched batch → anomaly scores from the entity state in
//! DynamoDB → scored batch. The stage is [`pipeline_handlers::Detect`].

use pipeline_aws::{DynamoStore, lambda_sdk_config};
use pipeline_handlers::{Config, Detect, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::stage_from_env()?;
    let store = DynamoStore::new(&lambda_sdk_config().await, config.tables.clone());
    serve(Detect::new(&config, store), &config.telemetry).await
}
