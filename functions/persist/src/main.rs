//! The `persist` Lambda function: scored (or failed) batch → conditional writes to DynamoDB,
//! anomalies announced on EventBridge → report. The stage is [`pipeline_handlers::Persist`].

use pipeline_aws::{DynamoStore, EventBridgeAnnouncer, lambda_sdk_config};
use pipeline_handlers::{Config, Persist, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, sdk) = (Config::stage_from_env()?, lambda_sdk_config().await);
    let announcer = EventBridgeAnnouncer::for_bus(&sdk, config.anomaly_bus.as_deref());
    let store = DynamoStore::new(&sdk, config.tables.clone());
    serve(
        Persist::new(&config, store).with_announcer(announcer),
        &config.telemetry,
    )
    .await
}
