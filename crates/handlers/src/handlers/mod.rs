//! One handler type per Lambda function, each holding only what its stage needs, and
//! [`serve`], which runs one of them as a Lambda function.
//!
//! - [`Ingest`]: split limits, concurrency and a [`BatchSink`](pipeline_ingest::BatchSink).
//! - [`Validate`]: the compiled contract and validate settings.
//! - [`Enrich`]: the FX table and a store (entity profiles).
//! - [`Detect`]: detection settings and a store (entity state).
//! - [`Persist`]: persist settings, a store and an announcer.
//!
//! Each has a typed method (what the local runner chains in process) and a [`Handler`]
//! implementation (what the Lambda runs): an invocation span carrying the correlation fields
//! (see [`crate::telemetry`]), the input parsed into the stage's typed batch (so a malformed
//! document fails with `Pipeline.Fatal.BadBatch`, not a runtime type name), the stage, its
//! metrics and one summary line; quarantined events and anomalies get one line each with their
//! `event_id` (never their payload).

mod detect;
mod enrich;
mod ingest;
mod persist;
mod validate;

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use lambda_runtime::{LambdaEvent, service_fn};
use pipeline_core::Error;
use pipeline_core::batch::{Batch, Quarantined, Stage};
use pipeline_core::detect::EntityState;
use pipeline_core::store::Store;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{Instrument, info, warn};

pub use detect::Detect;
pub use enrich::Enrich;
pub use ingest::{BatchItemFailure, BatchReceipt, Ingest, IngestResponse};
pub use persist::Persist;
pub use validate::Validate;

use crate::config::TelemetryConfig;
use crate::error::FunctionError;
use crate::telemetry::{invocation_span, metric, record_batch};

/// A Lambda function's handler: one invocation's JSON in, the stage's output out.
pub trait Handler: Send + Sync {
    /// The stage it runs (its metric dimension and log `function` field).
    const STAGE: Stage;
    /// What it returns.
    type Output: Serialize + Send;
    /// Handles one invocation.
    fn handle(
        &self,
        event: LambdaEvent<Value>,
    ) -> impl Future<Output = Result<Self::Output, FunctionError>> + Send;
}

/// Runs `handler` as a Lambda function: installs logging and the EMF metrics recorder from
/// `telemetry`, then serves invocations until the runtime stops.
pub async fn serve<H: Handler>(
    handler: H,
    telemetry: &TelemetryConfig,
) -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init(telemetry);
    let metrics = crate::telemetry::init_metrics(H::STAGE, telemetry)?;
    let handler = &handler;
    metrics_cloudwatch_embedded::lambda::service::run(
        metrics,
        service_fn(move |event| handler.handle(event)),
    )
    .await
}

/// What an injected fault does to one invocation, once the stage has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterRun {
    /// Nothing: answer as usual.
    Answer,
    /// The stage's effects happen, then the invocation fails (a timeout or a lost answer
    /// after the work was done: the state machine retries work that already landed).
    Fail,
}

/// With fault injection enabled, fails `stage` when an event asks for it in
/// `attributes.fault_inject` (tests drive the state machine's Retry and Catch paths this way):
/// - the stage's name: fails that stage every time, before it runs;
/// - `chaos:RATE` (e.g. `chaos:0.2`): every stage fails at random with probability RATE, in
///   equal parts before it runs (`InjectedFault`), as throttled by the store past the SDK's
///   retries (`StoreThrottled`), and after its effects landed (see [`AfterRun::Fail`]).
fn inject_fault(enabled: bool, stage: Stage, doc: &Value) -> Result<AfterRun, FunctionError> {
    if !enabled {
        return Ok(AfterRun::Answer);
    }
    let events = doc
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for e in events.filter_map(|e| e.get("payload").or_else(|| e.get("event"))) {
        let Some(asked) = e
            .pointer("/attributes/fault_inject")
            .and_then(Value::as_str)
        else {
            continue;
        };
        let event_id = || {
            e.get("event_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        if asked == stage.as_str() {
            return Err(FunctionError(Error::InjectedFault {
                stage: stage.as_str(),
                event_id: event_id(),
            }));
        }
        if let Some(rate) = asked
            .strip_prefix("chaos:")
            .and_then(|r| r.parse::<f64>().ok())
        {
            let roll = chance();
            return if roll < rate / 3.0 {
                Err(FunctionError(Error::InjectedFault {
                    stage: stage.as_str(),
                    event_id: event_id(),
                }))
            } else if roll < rate * 2.0 / 3.0 {
                Err(FunctionError(Error::StoreThrottled {
                    message: format!("injected throttle in {}", stage.as_str()),
                    source: None,
                }))
            } else if roll < rate {
                Ok(AfterRun::Fail)
            } else {
                Ok(AfterRun::Answer)
            };
        }
    }
    Ok(AfterRun::Answer)
}

/// A number in [0, 1), different on every call (std's per-instance random hash keys; no RNG
/// dependency for a test-only path).
fn chance() -> f64 {
    use std::hash::BuildHasher;
    let h = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The error an [`AfterRun::Fail`] fault answers with.
fn failed_after_run(stage: Stage) -> FunctionError {
    FunctionError(Error::InjectedFault {
        stage: stage.as_str(),
        event_id: "(after the stage ran)".into(),
    })
}

fn parse<T: DeserializeOwned>(payload: Value, expected: &'static str) -> Result<T, FunctionError> {
    serde_json::from_value(payload)
        .map_err(|source| FunctionError(Error::BadBatch { expected, source }))
}

/// Logs (one line each, with `event_id`) and counts the quarantine entries a stage added.
/// `batch_id` is for ingest, whose invocation span may cut several batches and so names none;
/// the other stages' span already carries it.
fn report_quarantine(new: &[Quarantined], batch_id: Option<&str>) {
    for q in new {
        let reasons = reason_codes(q.reasons.iter().map(|r| r.code.as_str()));
        warn!(
            event_id = q.event_id.as_deref().unwrap_or(""),
            stage = q.stage.as_str(),
            batch_id,
            reasons,
            "event quarantined"
        );
    }
    metrics::counter!(metric::EVENTS_QUARANTINED).increment(new.len() as u64);
}

/// Reason codes as one comma-separated field, each code once in first-seen order: a schema
/// failure yields one reason per violated rule, and a log line (or a Logs Insights filter such
/// as `reasons like /schema/`) wants the kinds, not a quoted array repeating them.
fn reason_codes<'a>(codes: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for code in codes {
        if !out.split(',').any(|c| c == code) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(code);
        }
    }
    out
}

fn record_latency(started: Instant) {
    metrics::histogram!(metric::STAGE_LATENCY_MS).record(started.elapsed().as_secs_f64() * 1000.0);
}

/// The common shape of validate, enrich and detect: span, fault injection, parse, run, record
/// the quarantine entries the stage added, latency, summary line.
async fn run_stage<I, O, F, Fut>(
    stage: Stage,
    expected: &'static str,
    event: LambdaEvent<Value>,
    fault_injection: bool,
    run: F,
) -> Result<Batch<O>, FunctionError>
where
    I: DeserializeOwned,
    F: FnOnce(Batch<I>) -> Fut,
    Fut: Future<Output = Result<Batch<O>, Error>>,
{
    let span = invocation_span(stage, &event.context);
    let inner = span.clone();
    correlate(&span, &event.payload);
    logged(async move {
        let started = Instant::now();
        let after = inject_fault(fault_injection, stage, &event.payload)?;
        let batch: Batch<I> = parse(event.payload, expected)?;
        record_batch(&inner, &batch.batch_id, &batch.execution_name());
        let before = batch.quarantine.len();
        let out = run(batch).await?;
        if after == AfterRun::Fail {
            return Err(failed_after_run(stage));
        }
        report_quarantine(out.quarantine.get(before..).unwrap_or_default(), None);
        record_latency(started);
        let (stage, batch_id) = (stage.as_str(), &out.batch_id);
        let (events, quarantined) = (out.events.len(), out.quarantine.len());
        info!(stage, batch_id, events, quarantined, "stage done");
        Ok(out)
    })
    .instrument(span)
    .await
}

/// Records the batch's correlation fields off the raw document before anything can fail, so
/// that the line reporting a failure (a fault, a malformed batch, a store error) names its
/// batch and execution too: what `pipeline logs --batch` finds.
fn correlate(span: &tracing::Span, payload: &Value) {
    #[derive(serde::Deserialize)]
    struct Key {
        batch_id: String,
        received_at: chrono::DateTime<chrono::Utc>,
    }
    if let Ok(k) = <Key as serde::Deserialize>::deserialize(payload) {
        let execution = Batch::<Value> {
            batch_id: k.batch_id.clone(),
            received_at: k.received_at,
            input_count: 0,
            events: Vec::new(),
            quarantine: Vec::new(),
        }
        .execution_name();
        record_batch(span, &k.batch_id, &execution);
    }
}

/// Runs an invocation and logs its failure, with the error type the state machine's Retry and
/// Catch match, inside the invocation span (the runtime's own report has no correlation fields).
async fn logged<T>(
    work: impl Future<Output = Result<T, FunctionError>>,
) -> Result<T, FunctionError> {
    let result = work.await;
    if let Err(e) = &result {
        tracing::error!(error_type = e.error_type(), error = %e.0, "invocation failed");
    }
    result
}

/// The entity states for the entities of a batch: one batched read, none for an empty batch.
async fn entities<'a, S: Store>(
    store: &S,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, EntityState>, Error> {
    let mut ids: Vec<String> = ids.map(str::to_owned).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    store.get_entities(&ids).await
}

#[cfg(test)]
mod tests {
    use super::reason_codes;

    #[test]
    fn reason_codes_name_each_kind_once_in_first_seen_order() {
        let codes = [
            "schema",
            "schema",
            "unknown_currency",
            "schema",
            "bad_timestamp",
        ];
        assert_eq!(
            reason_codes(codes.into_iter()),
            "schema,unknown_currency,bad_timestamp"
        );
        assert_eq!(reason_codes(std::iter::empty()), "");
        // A code that is a prefix of another is still its own kind.
        assert_eq!(
            reason_codes(["new", "new_country", "new"].into_iter()),
            "new,new_country"
        );
    }
}
