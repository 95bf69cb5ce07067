//! The cold-start baseline for `bench/cold-start`: the smallest function `lambda_runtime`
//! allows (it answers each event with itself), built with the same profile as ours, so that
//! the difference between it and a stage is what the stage adds at start.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
