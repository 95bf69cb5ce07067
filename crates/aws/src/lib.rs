//! The pipeline's AWS adapters: the DynamoDB [`Store`](pipeline_core::store::Store) and the
//! one place the AWS SDK is configured.
//!
//! # Layout
//! - [`sdk_config`] and [`dynamodb_config`]: SDK settings, loaded once at cold start from the
//!   standard environment (region, credentials, `AWS_ENDPOINT_URL` /
//!   `AWS_ENDPOINT_URL_DYNAMODB` for emulators), plus the store's retry and timeout settings;
//!   [`lambda_sdk_config`], the same for the Lambda functions, trusting Amazon's roots only.
//! - [`store`]: [`DynamoStore`], the store itself (reads, conditional writes, listings).
//! - [`tables`]: the three table names ([`Tables`], set by `pipeline_handlers::config`)
//!   and the table definitions behind [`DynamoStore::create_tables`].
//! - `item` (private): records ↔ DynamoDB items, and item sizes for capacity estimates.
//! - [`sfn`]: [`SfnSink`], ingest's sink: one Step Functions execution per batch.
//! - [`announce`]: [`EventBridgeAnnouncer`], persist's anomaly announcements.
//! - [`eventbridge`]: `PutEvents` with resends of the refused entries (the announcer and
//!   `pipeline send`).
//! - [`cause`]: [`cause::Cause`], every SDK error of every service classified as throttled,
//!   unavailable or rejected.
//! - with the feature `ops`, what the operator commands ask AWS (the CLI only parses and
//!   prints): `publish` (`pipeline send`'s packing and `PutEvents`), `watch` (a snapshot of
//!   the state machine, its executions and the metrics),
//!   `history` (what an execution did, from its history events or its log lines), `logs`
//!   (the stack's log groups and `FilterLogEvents`).
//! - [`metrics`]: [`StoreMetrics`], requests and write capacity used, for cost benchmarks.
//! - [`error`]: [`Error`], every failure classified as throttled, unavailable, rejected or
//!   corrupt, and its mapping onto the core's retryable and fatal errors.
//!
//! `examples/write_cost.rs` measures write requests and capacity units per event.

pub mod announce;
pub mod cause;
pub mod error;
pub mod eventbridge;
#[cfg(feature = "glue")]
pub mod glue;
#[cfg(feature = "ops")]
pub mod history;
mod item;
#[cfg(feature = "ops")]
pub mod logs;
pub mod metrics;
#[cfg(feature = "ops")]
pub mod publish;
pub mod sfn;
pub mod store;
pub mod tables;
#[cfg(feature = "ops")]
pub mod watch;

use std::time::Duration;

pub use aws_sdk_dynamodb;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
pub use aws_sdk_eventbridge;
#[cfg(feature = "glue")]
pub use aws_sdk_glue;
#[cfg(feature = "glue")]
pub use glue::GlueSchemaClient;

pub use announce::EventBridgeAnnouncer;
pub use error::Error;
pub use metrics::{StoreMetrics, TableWrites};
pub use pipeline_ingest::MachineType;
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

/// [`sdk_config`] for a Lambda function: TLS trusts Amazon Trust Services' root CAs, compiled
/// in (`certs/amazon-trust-services.pem`), instead of the system's bundle.
///
/// Why: the SDK's default client reads and parses every certificate of the system's bundle
/// when the first client is built, which was most of the functions' cold start (figures in
/// `docs/performance.md`, from `bench/cold-start`). Every AWS service
/// endpoint the functions call (DynamoDB, Step Functions, EventBridge, STS) presents a
/// certificate chaining to one of these five roots.
///
/// Setting `SSL_CERT_FILE` or `SSL_CERT_DIR` (a proxy or endpoint with its own CA) brings the
/// system's roots back (the SDK's default HTTPS client). Plain-HTTP endpoints (emulators) work
/// either way.
///
/// The region and the execution role's credentials are taken from the variables Lambda sets
/// (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) when
/// they are there: the default chains would find them first anyway, but building those
/// chains (an STS client, IMDS and container providers, profile lookups) cost about 0.5 ms
/// of every cold start. Without them (e.g. SnapStart's container credentials) the default
/// chains are used.
pub async fn lambda_sdk_config() -> aws_config::SdkConfig {
    let var = |name: &str| std::env::var(name).ok();
    let loader = if system_roots_requested(|name| std::env::var_os(name).is_some()) {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
    } else {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(amazon_roots_client())
    };
    let from_lambda = LambdaEnvironment::read(var);
    let loader = match from_lambda.region {
        Some(region) => loader.region(aws_config::Region::new(region)),
        None => loader,
    };
    let loader = if from_lambda.credentials {
        loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
    } else {
        loader
    };
    loader.load().await
}

/// What the Lambda environment hands a function directly.
#[derive(Debug, PartialEq)]
struct LambdaEnvironment {
    /// `AWS_REGION`, when set and not blank.
    region: Option<String>,
    /// Whether the execution role's keys are in the environment (the access key and its
    /// secret; the session token is read with them when present).
    credentials: bool,
}

impl LambdaEnvironment {
    fn read(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        LambdaEnvironment {
            region: set("AWS_REGION"),
            credentials: set("AWS_ACCESS_KEY_ID").is_some()
                && set("AWS_SECRET_ACCESS_KEY").is_some(),
        }
    }
}

/// Amazon Trust Services' root CAs (Amazon Root CA 1–4 and the Starfield Services G2 root
/// that cross-signs them), as Debian's `ca-certificates` ships them.
pub const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("../certs/amazon-trust-services.pem");

/// Whether the environment names its own CA bundle, by the variables OpenSSL and the SDK's
/// default client read.
fn system_roots_requested(is_set: impl Fn(&str) -> bool) -> bool {
    ["SSL_CERT_FILE", "SSL_CERT_DIR"].into_iter().any(is_set)
}

/// The SDK's own HTTPS client with a trust store of [`AMAZON_TRUST_SERVICES_ROOTS`] only,
/// built as the SDK builds its default one (rustls on aws-lc and its cipher suites, the
/// client's timeouts, and the proxy named by `HTTPS_PROXY`/`NO_PROXY`), so that the roots
/// are the only difference.
pub fn amazon_roots_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS.as_bytes());
    // Unreachable with a valid trust store; the system's roots are the safe fallback.
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .unwrap_or_default();
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn the_bundled_roots_are_five_parsable_certificates() {
        let certs: Vec<_> =
            CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS.as_bytes()).collect();
        assert_eq!(certs.len(), 5);
        assert!(certs.iter().all(Result::is_ok), "{certs:?}");
    }

    #[test]
    fn a_client_builds_its_tls_configuration_from_the_bundled_roots() {
        // Building a client makes the SDK build the connector, which parses the trust store
        // (and panics on a certificate rustls cannot add).
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .http_client(amazon_roots_client())
            .build();
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        assert!(client.config().http_client().is_some());
    }

    #[test]
    fn region_and_keys_come_from_the_lambda_environment_only_when_complete() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let lambda = LambdaEnvironment::read(env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ]));
        assert_eq!(
            lambda,
            LambdaEnvironment {
                region: Some("eu-west-1".into()),
                credentials: true
            }
        );
        // A key without its secret, or blank values: the default chains decide.
        let partial =
            LambdaEnvironment::read(env(&[("AWS_REGION", " "), ("AWS_ACCESS_KEY_ID", "AKIA")]));
        assert_eq!(
            partial,
            LambdaEnvironment {
                region: None,
                credentials: false
            }
        );
        assert!(!LambdaEnvironment::read(env(&[("AWS_SECRET_ACCESS_KEY", "secret")])).credentials);
    }

    #[test]
    fn a_named_ca_bundle_brings_the_system_roots_back() {
        assert!(!system_roots_requested(|_| false));
        assert!(system_roots_requested(|name| name == "SSL_CERT_FILE"));
        assert!(system_roots_requested(|name| name == "SSL_CERT_DIR"));
    }
}
