//! Tracing set-up for the Lambda functions.
//!
//! Lambda's advanced logging controls set `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`) and
//! `AWS_LAMBDA_LOG_LEVEL`; `RUST_LOG` overrides the level with a full filter. JSON is the
//! default because CloudWatch Logs Insights queries fields, not text.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once at cold start.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .unwrap_or_else(|_| "INFO".into())
        .to_lowercase();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    // A second init (tests) is harmless: try_init reports it and we ignore it.
    let _ = if text {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    };
}
