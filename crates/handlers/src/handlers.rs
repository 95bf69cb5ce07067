//! One handler per Lambda function. Each runs inside an invocation span carrying the
//! correlation fields (see [`crate::telemetry`]), parses its input into the stage's typed batch
//! (so a malformed document fails with `Pipeline.Fatal.BadBatch`, not a runtime type name),
//! runs the stage, records its metrics and logs one summary line; quarantined events and
//! anomalies get one line each with their `event_id` (never their payload).

use std::time::Instant;

use chrono::Utc;
use lambda_runtime::LambdaEvent;
use pipeline_core::Error;
use pipeline_core::batch::{Batch, Quarantined, RawEvent, Stage, ValidEvent};
use pipeline_core::detect::ScoredEvent;
use pipeline_core::enrich::EnrichedEvent;
use pipeline_core::ingest::BatchSink;
use pipeline_core::persist::{FailedBatch, PersistReport};
use pipeline_core::store::Store;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{Instrument, info, warn};

use crate::error::FunctionError;
use crate::pipeline::Pipeline;
use crate::telemetry::{invocation_span, metric, record_batch};

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

fn finish(stage: Stage, started: Instant, batch_id: &str, events: usize, quarantined: usize) {
    metrics::histogram!(metric::STAGE_LATENCY_MS).record(started.elapsed().as_secs_f64() * 1000.0);
    let stage = stage.as_str();
    info!(stage, batch_id, events, quarantined, "stage done");
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

/// The `ingest` function: MSK or EventBridge event → batch documents → `sink`, with bounded
/// concurrency. Fails unless every batch succeeded, so the trigger redelivers the input.
pub async fn ingest<S: Store, K: BatchSink + ?Sized>(
    event: LambdaEvent<Value>,
    pipeline: &Pipeline<S>,
    sink: &K,
) -> Result<IngestResponse, FunctionError> {
    let span = invocation_span(Stage::Ingest, &event.context);
    async move {
        use futures::StreamExt;
        let started = Instant::now();
        let batches = pipeline.ingest(&event.payload, Utc::now())?;
        let input: usize = batches.iter().map(|b| b.input_count).sum();
        metrics::counter!(metric::EVENTS_IN).increment(input as u64);
        for b in &batches {
            let execution = b.execution_name();
            info!(batch_id = %b.batch_id, execution, events = b.input_count, "batch cut");
            report_quarantine(&b.quarantine);
        }
        // Batches run concurrently, but bounded: each is a whole state machine execution.
        let results: Vec<Result<(), Error>> =
            futures::stream::iter(batches.iter().map(|b| sink.submit(b)))
                .buffer_unordered(pipeline.config.ingest_concurrency.max(1))
                .collect()
                .await;
        // Every batch has finished (none is abandoned half-way); only then report a failure, so
        // the trigger redelivers the whole input and no offset is committed past an
        // unprocessed event.
        if let Some(err) = results.into_iter().find_map(Result::err) {
            return Err(FunctionError(err));
        }
        let receipts: Vec<BatchReceipt> = batches
            .iter()
            .map(|b| BatchReceipt {
                batch_id: b.batch_id.clone(),
                input_count: b.input_count,
                quarantined: b.quarantine.len(),
            })
            .collect();
        metrics::histogram!(metric::STAGE_LATENCY_MS)
            .record(started.elapsed().as_secs_f64() * 1000.0);
        info!(batches = receipts.len(), events = input, "ingest done");
        Ok(IngestResponse { batches: receipts })
    }
    .instrument(span)
    .await
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
    Fut: std::future::Future<Output = Result<Batch<O>, Error>>,
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
        finish(
            stage,
            started,
            &out.batch_id,
            out.events.len(),
            out.quarantine.len(),
        );
        Ok(out)
    }
    .instrument(span)
    .await
}

/// The `validate` function.
pub async fn validate<S: Store>(
    event: LambdaEvent<Value>,
    pipeline: &Pipeline<S>,
) -> Result<Batch<ValidEvent>, FunctionError> {
    run_stage(
        Stage::Validate,
        "raw event batch (ingest output)",
        event,
        pipeline.config.fault_injection,
        |b: Batch<RawEvent>| async move {
            let out = pipeline.validate(b);
            metrics::counter!(metric::EVENTS_VALID).increment(out.events.len() as u64);
            Ok(out)
        },
    )
    .await
}

/// The `enrich` function.
pub async fn enrich<S: Store>(
    event: LambdaEvent<Value>,
    pipeline: &Pipeline<S>,
) -> Result<Batch<EnrichedEvent>, FunctionError> {
    run_stage(
        Stage::Enrich,
        "validated batch (validate output)",
        event,
        pipeline.config.fault_injection,
        |b: Batch<ValidEvent>| pipeline.enrich(b),
    )
    .await
}

/// The `detect` function.
pub async fn detect<S: Store>(
    event: LambdaEvent<Value>,
    pipeline: &Pipeline<S>,
) -> Result<Batch<ScoredEvent>, FunctionError> {
    run_stage(Stage::Detect, "enriched batch (enrich output)", event, pipeline.config.fault_injection, |b: Batch<EnrichedEvent>| async move {
        let out = pipeline.detect(b).await?;
        for e in out.events.iter().filter(|e| e.detection.is_anomaly) {
            let codes: Vec<&str> = e.detection.reasons.iter().map(|r| r.code()).collect();
            info!(event_id = %e.event.event_id, entity_id = %e.event.entity_id, score = e.detection.score, reasons = ?codes, "anomaly scored");
        }
        Ok(out)
    })
    .await
}

/// The `persist` function: a scored batch, or (from the state machine's quarantine path) a
/// batch that failed a stage, whose events are all quarantined with the error.
pub async fn persist<S: Store>(
    event: LambdaEvent<Value>,
    pipeline: &Pipeline<S>,
) -> Result<PersistReport, FunctionError> {
    let span = invocation_span(Stage::Persist, &event.context);
    let inner = span.clone();
    async move {
        let started = Instant::now();
        let now = Utc::now();
        let report = if FailedBatch::is_failed_batch(&event.payload) {
            let failed: FailedBatch = parse(event.payload, "failed batch (state machine quarantine path)")?;
            let execution = Batch::<Value> {
                batch_id: failed.batch_id.clone(),
                received_at: failed.received_at,
                input_count: 0,
                events: Vec::new(),
                quarantine: Vec::new(),
            }
            .execution_name();
            record_batch(&inner, &failed.batch_id, &execution);
            warn!(error = %failed.error.error, failed_stage = ?failed.failed_stage, events = failed.events.len(),
                  "quarantining a batch that failed a stage");
            metrics::counter!(metric::EVENTS_QUARANTINED).increment(failed.events.len() as u64);
            pipeline.quarantine_failed(failed, now).await?
        } else {
            inject_fault(pipeline.config.fault_injection, Stage::Persist, &event.payload)?;
            let batch: Batch<ScoredEvent> = parse(event.payload, "scored batch (detect output)")?;
            record_batch(&inner, &batch.batch_id, &batch.execution_name());
            // Event time to persisted, per event: the lag the on-call engineer watches.
            for e in &batch.events {
                let lag = (now.timestamp_millis() - e.event.occurred_ms()).max(0);
                metrics::histogram!(metric::END_TO_END_LAG_MS).record(lag as f64);
            }
            pipeline.persist(batch, now).await?
        };
        let c = &report.counts;
        metrics::counter!(metric::PERSISTED).increment(c.persisted as u64);
        metrics::counter!(metric::DUPLICATES).increment(c.duplicate as u64);
        metrics::counter!(metric::UPDATED).increment(c.updated as u64);
        metrics::counter!(metric::STALE).increment(c.stale as u64);
        metrics::counter!(metric::CONFLICTS).increment(c.conflict as u64);
        metrics::counter!(metric::ANOMALIES).increment(c.anomalies as u64);
        for (reason, n) in &report.quarantined_by_reason {
            metrics::counter!(metric::QUARANTINED_BY_REASON, "Reason" => reason.clone()).increment(*n as u64);
        }
        for o in report.outcomes.iter().filter(|o| o.status == pipeline_core::persist::Status::Conflict) {
            warn!(event_id = o.event_id.as_deref().unwrap_or(""), "conflict: same event_id and version, other content; quarantined");
        }
        metrics::histogram!(metric::STAGE_LATENCY_MS).record(started.elapsed().as_secs_f64() * 1000.0);
        info!(batch_id = %report.batch_id, input = c.input, persisted = c.persisted, duplicate = c.duplicate,
              updated = c.updated, stale = c.stale, conflict = c.conflict, quarantined = c.quarantined,
              anomalies = c.anomalies, "persist done");
        Ok(report)
    }
    .instrument(span)
    .await
}
