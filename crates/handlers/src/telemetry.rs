//! Logs and metrics for the Lambda functions.
//!
//! **Logs**: JSON lines through `tracing` (Lambda's advanced logging controls set
//! `AWS_LAMBDA_LOG_FORMAT` = `JSON`|`Text` and `AWS_LAMBDA_LOG_LEVEL`; `RUST_LOG` overrides
//! the level with a full filter; all read by [`crate::config`]). Every line carries the current span's correlation fields,
//! set by [`invocation_span`]: `function`, `request_id`, `xray_trace_id`, `execution` (the
//! Step Functions execution name) and `batch_id`; per-event lines add `event_id`. Event
//! payloads are never logged at INFO.
//!
//! **Metrics**: CloudWatch Embedded Metric Format documents on stdout, written by the
//! `metrics_cloudwatch_embedded` crate (a `metrics` facade backend) after each invocation:
//! one namespace (`METRICS_NAMESPACE`, default `EventPipeline`), one dimension `Function` =
//! the stage name, plus `Reason` on `QuarantinedByReason`, and a `ColdStart` count. The
//! metric names are the dashboard's contract (see template.yaml):
//! `EventsIn`, `EventsValid`, `EventsQuarantined`, `QuarantinedByReason`, `Anomalies`,
//! `Persisted`, `Duplicates`, `Updated`, `Stale`, `Conflicts`, `StageLatencyMs`,
//! `EndToEndLagMs`, `ColdStart`.

use lambda_runtime::Context;
use pipeline_core::Error;
use pipeline_core::batch::Stage;
use tracing::Span;
use tracing_subscriber::EnvFilter;

use crate::config::TelemetryConfig;

pub use crate::config::DEFAULT_NAMESPACE;

/// The metric names the functions write and `pipeline watch` and the dashboard read: one
/// place, so that a rename cannot leave a reader behind.
pub mod metric {
    /// Events entering ingest.
    pub const EVENTS_IN: &str = "EventsIn";
    /// Events that passed validation.
    pub const EVENTS_VALID: &str = "EventsValid";
    /// Events quarantined, by every stage that quarantines.
    pub const EVENTS_QUARANTINED: &str = "EventsQuarantined";
    /// Quarantined events with a `Reason` dimension.
    pub const QUARANTINED_BY_REASON: &str = "QuarantinedByReason";
    /// Anomalies newly persisted or updated.
    pub const ANOMALIES: &str = "Anomalies";
    /// New records.
    pub const PERSISTED: &str = "Persisted";
    /// Records already stored unchanged.
    pub const DUPLICATES: &str = "Duplicates";
    /// Records replaced by a higher version.
    pub const UPDATED: &str = "Updated";
    /// Events older than what is stored.
    pub const STALE: &str = "Stale";
    /// Same version, other content.
    pub const CONFLICTS: &str = "Conflicts";
    /// Kafka records ingest handed back for redelivery in a partial batch response.
    pub const RECORDS_REDELIVERED: &str = "RecordsRedelivered";
    /// Milliseconds a stage took for a batch.
    pub const STAGE_LATENCY_MS: &str = "StageLatencyMs";
    /// Milliseconds from event time to persisted, per event.
    pub const END_TO_END_LAG_MS: &str = "EndToEndLagMs";
    /// The dimension naming the function (the stage).
    pub const FUNCTION_DIMENSION: &str = "Function";
}

/// Installs the global log subscriber; call once at cold start ([`crate::serve`] does).
pub fn init(config: &TelemetryConfig) {
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let text = config.text;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    // A second init (tests) is harmless: try_init reports it and we ignore it.
    let _ = if text {
        builder.try_init()
    } else {
        // The innermost span is ours (invocation_span): its fields are the correlation fields.
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    };
}

/// Installs the EMF metrics recorder for `stage`; call once at cold start ([`crate::serve`]
/// does) and hand the result to `metrics_cloudwatch_embedded::lambda::service::run`, which writes the
/// metric document after every invocation.
pub fn init_metrics(
    stage: Stage,
    config: &TelemetryConfig,
) -> Result<&'static metrics_cloudwatch_embedded::Collector, Error> {
    let function = stage.as_str();
    let namespace = config.namespace.clone();
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        .with_dimension(metric::FUNCTION_DIMENSION, function)
        .lambda_cold_start_metric("ColdStart")
        .with_lambda_request_id("RequestId")
        .with_lambda_xray_trace_id("TraceId")
        .init()
        .map_err(|e| Error::Config(format!("cannot install the metrics recorder: {e}")))
}

/// The span every log line of one invocation is emitted in. `execution` and `batch_id` are
/// filled in once the batch is parsed ([`record_batch`]).
pub fn invocation_span(stage: Stage, ctx: &Context) -> Span {
    let function = stage.as_str();
    tracing::info_span!(
        "invocation",
        function,
        request_id = %ctx.request_id,
        xray_trace_id = ctx.xray_trace_id.as_deref().unwrap_or(""),
        execution = tracing::field::Empty,
        batch_id = tracing::field::Empty,
    )
}

/// Records the batch's correlation fields on the current invocation span.
pub fn record_batch(span: &Span, batch_id: &str, execution: &str) {
    span.record("batch_id", batch_id);
    span.record("execution", execution);
}
