//! The `enrich` Lambda function: validated batch → FX normalisation and event-time features →
//! enriched batch. It reads no table. The stage is [`pipeline_handlers::Enrich`].

use pipeline_handlers::{Config, Enrich, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::stage_from_env()?;
    serve(Enrich::new(&config), &config.telemetry).await
}
