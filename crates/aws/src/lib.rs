//! The pipeline's AWS adapters: the DynamoDB [`Store`](pipeline_core::store::Store) and the
//! one place the AWS SDK is configured.
//!
//! # Layout
//! - [`sdk_config`] and [`dynamodb_config`]: SDK settings, loaded once at cold start from the
//!   standard environment (region, credentials, `AWS_ENDPOINT_URL` /
//!   `AWS_ENDPOINT_URL_DYNAMODB` for emulators), plus the store's retry and timeout settings.
//! - [`store`]: [`DynamoStore`], the store itself (reads, conditional writes, listings).
//! - [`tables`]: the three table names ([`Tables`], set by `pipeline_handlers::config`)
//!   and the table definitions behind [`DynamoStore::create_tables`].
//! - `item` (private): records ↔ DynamoDB items, and item sizes for capacity estimates.
//! - [`sfn`]: [`SfnSink`], ingest's sink: one Step Functions execution per batch.
//! - [`announce`]: [`EventBridgeAnnouncer`], persist's anomaly announcements.
//! - [`eventbridge`]: `PutEvents` with resends of the refused entries (the announcer and
//!   `pipeline send`).
//! - [`fault`]: [`fault::Fault`], every SDK error of every service classified as throttled,
//!   unavailable or rejected.
//! - [`metrics`]: [`StoreMetrics`], requests and write capacity used, for cost benchmarks.
//! - [`error`]: [`Error`], every failure classified as throttled, unavailable, rejected or
//!   corrupt, and its mapping onto the core's retryable and fatal errors.
//!
//! `examples/write_cost.rs` measures write requests and capacity units per event.

pub mod announce;
pub mod error;
pub mod eventbridge;
pub mod fault;
mod item;
pub mod metrics;
pub mod sfn;
pub mod store;
pub mod tables;

use std::time::Duration;

pub use aws_sdk_dynamodb;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;

pub use announce::EventBridgeAnnouncer;
pub use error::Error;
pub use metrics::{StoreMetrics, TableWrites};
pub use pipeline_core::ingest::MachineType;
pub use sfn::SfnSink;
pub use store::DynamoStore;
pub use tables::Tables;

/// Attempts per request, the first included, before a throttled or failing request becomes an
/// error (the SDK's default is 3; DynamoDB throttling is often a burst that passes in seconds).
pub const MAX_ATTEMPTS: u32 = 10;
/// First retry pause; the SDK doubles it per attempt with full jitter, up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(25);
/// Longest retry pause.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest single attempt: a stuck connection fails the attempt (and is retried) instead of
/// holding the invocation until the Lambda timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Loads the shared AWS SDK configuration from the environment. Call it once per process (at
/// cold start) and build every client from the result.
///
/// It honours the standard variables and files: region, credentials, and the endpoint
/// overrides `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` that point the SDK at an
/// emulator; no endpoint is ever set here.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// The DynamoDB client configuration of [`DynamoStore`]: `sdk`, plus the standard retry mode
/// with [`MAX_ATTEMPTS`] attempts and exponential backoff with jitter (the SDK retries
/// throttling, 5xx, timeouts and connection errors itself), plus the timeouts above. Add
/// interceptors to the returned builder before building, if needed.
pub fn dynamodb_config(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(sdk)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(INITIAL_BACKOFF)
                .with_max_backoff(MAX_BACKOFF),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
}
