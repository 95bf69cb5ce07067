//! The `validate` Lambda function: raw batch → schema and semantic checks → validated batch,
//! bad events quarantined. It reads no table. The stage is [`pipeline_handlers::Validate`].

use pipeline_handlers::{Config, Validate, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::stage_from_env()?;
    serve(Validate::new(&config)?, &config.telemetry).await
}
