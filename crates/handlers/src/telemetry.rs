//! Logs and metrics for the Lambda functions.
//!
//! **Logs**: JSON lines through `tracing` (Lambda's advanced logging controls set
//! `AWS_LAMBDA_LOG_FORMAT` = `JSON`|`Text` and `AWS_LAMBDA_LOG_LEVEL`; `RUST_LOG` overrides
//! the level with a full filter; all read by [`crate::config`]). Every line carries the current span's correlation fields,
//! set by [`invocation_span`]: `function`, `request_id`, `xray_trace_id`, `execution` (the
//! Step Functions execution name) and `batch_id`; per-event lines add `event_id`. JSON lines
//! carry `timestamp` (RFC 3339, UTC, milliseconds). Event payloads are never logged at INFO.
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
use tracing_subscriber::fmt::time::ChronoUtc;
use tracing_subscriber::util::SubscriberInitExt;

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
    /// One per cold start of a function (written by the EMF crate at the first invocation).
    pub const COLD_START: &str = "ColdStart";
    /// The dimension naming the function (the stage).
    pub const FUNCTION_DIMENSION: &str = "Function";

    /// Every metric name above: what the template's dashboard and alarms, `docs/deploy.md` and
    /// the end-to-end test may name (checked by `tests/one_source.rs`).
    pub const ALL: [&str; 14] = [
        EVENTS_IN,
        EVENTS_VALID,
        EVENTS_QUARANTINED,
        QUARANTINED_BY_REASON,
        ANOMALIES,
        PERSISTED,
        DUPLICATES,
        UPDATED,
        STALE,
        CONFLICTS,
        RECORDS_REDELIVERED,
        STAGE_LATENCY_MS,
        END_TO_END_LAG_MS,
        COLD_START,
    ];
}

/// Installs the global log subscriber; call once at cold start ([`crate::serve()`] does).
pub fn init(config: &TelemetryConfig) {
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests) is harmless: try_init reports it and we ignore it.
    let _ = if config.text {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .without_time()
            .finish()
            .try_init()
    } else {
        json_subscriber(filter, std::io::stdout).try_init()
    };
}

/// The JSON-lines subscriber: the innermost span is ours ([`invocation_span`]), so its fields
/// are the correlation fields. With the JSON log format Lambda reads `level` and `timestamp`
/// from each line, and takes a line without a valid RFC 3339 timestamp as INFO whatever its
/// level, so that an application log level of WARN would drop WARN and ERROR lines too.
fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer)
        .with_timer(ChronoUtc::new("%Y-%m-%dT%H:%M:%S%.3fZ".to_owned()))
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .finish()
}

/// Installs the EMF metrics recorder for `stage`; call once at cold start ([`crate::serve()`]
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
        .lambda_cold_start_metric(metric::COLD_START)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that keeps what the subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_level_timestamp_and_the_invocation_fields() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = json_subscriber(EnvFilter::new("info"), move || writer.clone());
        let mut ctx = Context::default();
        ctx.request_id = "req-1".into();
        tracing::subscriber::with_default(subscriber, || {
            let span = invocation_span(Stage::Validate, &ctx);
            record_batch(&span, "b-1", "b-1-1732771200000");
            let _in = span.enter();
            tracing::warn!(event_id = "evt-1", reasons = "schema", "event quarantined");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["message"], "event quarantined");
        assert_eq!(line["event_id"], "evt-1");
        assert_eq!(line["span"]["batch_id"], "b-1");
        assert_eq!(line["span"]["request_id"], "req-1");
        assert_eq!(line["span"]["function"], "validate");
        // Lambda takes a line without a valid RFC 3339 timestamp as INFO.
        let ts = line["timestamp"].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(ts).unwrap();
        assert!(
            ts.ends_with('Z') && ts.len() == "2026-11-29T03:20:00.123Z".len(),
            "{ts}"
        );
        assert!((chrono::Utc::now() - parsed.to_utc()).num_seconds().abs() < 60);
    }
}
