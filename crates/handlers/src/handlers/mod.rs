//! One handler type per Lambda function, each holding only what its stage needs, and
//! [`serve`], which runs one of them as a Lambda function.
//!
//! - [`Ingest`]: split limits, concurrency and a [`BatchSink`](pipeline_core::ingest::BatchSink).
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
pub use ingest::{BatchReceipt, Ingest, IngestResponse};
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

/// With fault injection enabled, fails `stage` when an event asks for it in
/// `attributes.fault_inject` (tests drive the state machine's Retry and Catch paths this way).
fn inject_fault(enabled: bool, stage: Stage, doc: &Value) -> Result<(), FunctionError> {
    if !enabled {
        return Ok(());
    }
    let events = doc
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for e in events.filter_map(|e| e.get("payload").or_else(|| e.get("event"))) {
        if e.pointer("/attributes/fault_inject")
            .and_then(Value::as_str)
            == Some(stage.as_str())
        {
            let event_id = e
                .get("event_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Err(FunctionError(Error::InjectedFault {
                stage: stage.as_str(),
                event_id,
            }));
        }
    }
    Ok(())
}

fn parse<T: DeserializeOwned>(payload: Value, expected: &'static str) -> Result<T, FunctionError> {
    serde_json::from_value(payload)
        .map_err(|source| FunctionError(Error::BadBatch { expected, source }))
}

/// Logs (one line each, with `event_id`) and counts the quarantine entries a stage added.
fn report_quarantine(new: &[Quarantined]) {
    for q in new {
        let codes: Vec<&str> = q.reasons.iter().map(|r| r.code.as_str()).collect();
        warn!(event_id = q.event_id.as_deref().unwrap_or(""), stage = q.stage.as_str(), reasons = ?codes, "event quarantined");
    }
    metrics::counter!(metric::EVENTS_QUARANTINED).increment(new.len() as u64);
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
    async move {
        let started = Instant::now();
        inject_fault(fault_injection, stage, &event.payload)?;
        let batch: Batch<I> = parse(event.payload, expected)?;
        record_batch(&inner, &batch.batch_id, &batch.execution_name());
        let before = batch.quarantine.len();
        let out = run(batch).await?;
        report_quarantine(out.quarantine.get(before..).unwrap_or_default());
        record_latency(started);
        let (stage, batch_id) = (stage.as_str(), &out.batch_id);
        let (events, quarantined) = (out.events.len(), out.quarantine.len());
        info!(stage, batch_id, events, quarantined, "stage done");
        Ok(out)
    }
    .instrument(span)
    .await
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
