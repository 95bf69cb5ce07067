//! The `enrich` Lambda function: validated batch → FX normalisation and entity profiles read
//! from DynamoDB → enriched batch. The stage is [`pipeline_handlers::Enrich`].

use pipeline_aws::{DynamoStore, lambda_sdk_config};
use pipeline_handlers::{Config, Enrich, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::stage_from_env()?;
    let store = DynamoStore::new(&lambda_sdk_config().await, config.tables.clone());
    serve(Enrich::new(&config, store), &config.telemetry).await
}
