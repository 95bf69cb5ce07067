//! One handler per Lambda function. Each parses its input into the stage's typed batch (so a
//! malformed document fails with `Pipeline.Fatal.BadBatch`, not a runtime type name), logs one
//! summary line with the correlation fields, and runs the stage.

use chrono::Utc;
use lambda_runtime::LambdaEvent;
use pipeline_core::Error;
use pipeline_core::batch::{Batch, RawEvent, ValidEvent};
use pipeline_core::detect::ScoredEvent;
use pipeline_core::enrich::EnrichedEvent;
use pipeline_core::persist::{FailedBatch, PersistReport};
use pipeline_core::store::Store;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::info;

use crate::error::FunctionError;
use crate::pipeline::Pipeline;
use pipeline_core::ingest::BatchSink;

/// With fault injection enabled, fails `stage` when an event asks for it in
/// `attributes.fault_inject` (tests drive the state machine's Retry and Catch paths this way).
fn inject_fault<'a>(
    enabled: bool,
    stage: &'static str,
    events: impl Iterator<Item = &'a Value>,
) -> Result<(), FunctionError> {
    if !enabled {
        return Ok(());
    }
    for e in events {
        if e.pointer("/attributes/fault_inject")
            .and_then(Value::as_str)
            == Some(stage)
        {
            let event_id = e
                .get("event_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Err(FunctionError(Error::InjectedFault { stage, event_id }));
        }
    }
    Ok(())
}

/// The events of a stage document, for fault injection (payload or typed event).
fn event_values(doc: &Value) -> Vec<&Value> {
    doc.get("events")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get("payload").or_else(|| e.get("event")))
                .collect()
        })
        .unwrap_or_default()
}

fn parse<T: DeserializeOwned>(payload: Value, expected: &'static str) -> Result<T, FunctionError> {
    serde_json::from_value(payload)
        .map_err(|source| FunctionError(Error::BadBatch { expected, source }))
}

/// What ingest returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestResponse {
    /// One summary per batch handed to the sink.
    pub batches: Vec<BatchReceipt>,
}

/// A batch handed to the sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchReceipt {
    /// The batch id.
    pub batch_id: String,
    /// Events in it, quarantined at ingest included.
    pub input_count: usize,
    /// Events quarantined at ingest (undecodable records).
    pub quarantined: usize,
}

/// The `ingest` function: MSK or EventBridge event → batch documents → `sink`.
pub async fn ingest<S: Store, K: BatchSink + ?Sized>(
    event: LambdaEvent<Value>,
    pipeline: &Pipeline<S>,
    sink: &K,
) -> Result<IngestResponse, FunctionError> {
    use futures::StreamExt;
    let batches = pipeline.ingest(&event.payload, Utc::now())?;
    // Batches run concurrently, but bounded: each is a whole state machine execution.
    let results: Vec<Result<(), Error>> =
        futures::stream::iter(batches.iter().map(|b| sink.submit(b)))
            .buffer_unordered(pipeline.config.ingest_concurrency.max(1))
            .collect()
            .await;
    // Every batch has finished (none is abandoned half-way); only then report a failure, so
    // the trigger redelivers the whole input and nothing is committed past an unprocessed event.
    if let Some(err) = results.into_iter().find_map(Result::err) {
        return Err(FunctionError(err));
    }
    let mut receipts = Vec::with_capacity(batches.len());
    for b in &batches {
        info!(request_id = %event.context.request_id, batch_id = %b.batch_id, events = b.input_count,
              quarantined = b.quarantine.len(), "batch processed");
        receipts.push(BatchReceipt {
            batch_id: b.batch_id.clone(),
            input_count: b.input_count,
            quarantined: b.quarantine.len(),
        });
    }
    Ok(IngestResponse { batches: receipts })
}

/// The `validate` function.
pub async fn validate<S: Store>(
    event: LambdaEvent<Value>,
    pipeline: &Pipeline<S>,
) -> Result<Batch<ValidEvent>, FunctionError> {
    inject_fault(
        pipeline.config.fault_injection,
        "validate",
        event_values(&event.payload).into_iter(),
    )?;
    let batch: Batch<RawEvent> = parse(event.payload, "raw event batch (ingest output)")?;
    let out = pipeline.validate(batch);
    log_stage(
        "validate",
        &event.context.request_id,
        &out.batch_id,
        out.events.len(),
        out.quarantine.len(),
    );
    Ok(out)
}

/// The `enrich` function.
pub async fn enrich<S: Store>(
    event: LambdaEvent<Value>,
    pipeline: &Pipeline<S>,
) -> Result<Batch<EnrichedEvent>, FunctionError> {
    inject_fault(
        pipeline.config.fault_injection,
        "enrich",
        event_values(&event.payload).into_iter(),
    )?;
    let batch: Batch<ValidEvent> = parse(event.payload, "validated batch (validate output)")?;
    let out = pipeline.enrich(batch).await?;
    log_stage(
        "enrich",
        &event.context.request_id,
        &out.batch_id,
        out.events.len(),
        out.quarantine.len(),
    );
    Ok(out)
}

/// The `detect` function.
pub async fn detect<S: Store>(
    event: LambdaEvent<Value>,
    pipeline: &Pipeline<S>,
) -> Result<Batch<ScoredEvent>, FunctionError> {
    inject_fault(
        pipeline.config.fault_injection,
        "detect",
        event_values(&event.payload).into_iter(),
    )?;
    let batch: Batch<EnrichedEvent> = parse(event.payload, "enriched batch (enrich output)")?;
    let out = pipeline.detect(batch).await?;
    let anomalies = out.events.iter().filter(|e| e.detection.is_anomaly).count();
    info!(request_id = %event.context.request_id, batch_id = %out.batch_id, anomalies, "detect scored batch");
    log_stage(
        "detect",
        &event.context.request_id,
        &out.batch_id,
        out.events.len(),
        out.quarantine.len(),
    );
    Ok(out)
}

/// The `persist` function.
pub async fn persist<S: Store>(
    event: LambdaEvent<Value>,
    pipeline: &Pipeline<S>,
) -> Result<PersistReport, FunctionError> {
    let report = if FailedBatch::is_failed_batch(&event.payload) {
        let failed: FailedBatch = parse(
            event.payload,
            "failed batch (state machine quarantine path)",
        )?;
        tracing::warn!(request_id = %event.context.request_id, batch_id = %failed.batch_id,
                       error = %failed.error.error, "quarantining a failed batch");
        pipeline.quarantine_failed(failed, Utc::now()).await?
    } else {
        inject_fault(
            pipeline.config.fault_injection,
            "persist",
            event_values(&event.payload).into_iter(),
        )?;
        let batch: Batch<ScoredEvent> = parse(event.payload, "scored batch (detect output)")?;
        pipeline.persist(batch, Utc::now()).await?
    };
    let c = &report.counts;
    info!(request_id = %event.context.request_id, batch_id = %report.batch_id, input = c.input,
          persisted = c.persisted, duplicate = c.duplicate, updated = c.updated, stale = c.stale,
          conflict = c.conflict, quarantined = c.quarantined, anomalies = c.anomalies, "persist done");
    Ok(report)
}

fn log_stage(stage: &str, request_id: &str, batch_id: &str, events: usize, quarantined: usize) {
    info!(
        request_id,
        batch_id, stage, events, quarantined, "stage done"
    );
}
