//! The ingest stage: an MSK (Kafka) or EventBridge event → batch documents under the Step
//! Functions state limit → a [`BatchSink`] (one state machine execution per batch in the
//! Lambda). It succeeds only when every batch succeeded, so Kafka offsets are never committed
//! past an unprocessed event and EventBridge retries (then dead-letters) a failed delivery.

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lambda_runtime::LambdaEvent;
use pipeline_core::Error;
use pipeline_core::batch::{Batch, RawEvent, Stage};
use pipeline_core::ingest::{self, BatchSink, SplitLimits};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{Instrument, info};

use super::{Handler, record_latency, report_quarantine};
use crate::config::Config;
use crate::error::FunctionError;
use crate::telemetry::{invocation_span, metric};

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

/// The ingest stage: how to cut batches, how many to run at once, and where they go.
#[derive(Debug)]
pub struct Ingest<K> {
    limits: SplitLimits,
    concurrency: usize,
    sink: K,
}

impl<K: BatchSink> Ingest<K> {
    /// Hands batches to `sink`, with the default split limits.
    pub fn new(config: &Config, sink: K) -> Self {
        Ingest {
            limits: SplitLimits::default(),
            concurrency: config.ingest_concurrency.max(1),
            sink,
        }
    }

    /// The sink batches are handed to.
    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// Decodes a Kafka or EventBridge payload and cuts it into batch documents.
    pub fn cut(
        &self,
        input: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Batch<RawEvent>>, Error> {
        Ok(ingest::split(
            ingest::decode(input)?,
            received_at,
            self.limits,
        ))
    }
}

impl<K: BatchSink> Handler for Ingest<K> {
    const STAGE: Stage = Stage::Ingest;
    type Output = IngestResponse;

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<IngestResponse, FunctionError> {
        let span = invocation_span(Self::STAGE, &event.context);
        async move {
            let started = Instant::now();
            let batches = self.cut(&event.payload, Utc::now())?;
            let input: usize = batches.iter().map(|b| b.input_count).sum();
            metrics::counter!(metric::EVENTS_IN).increment(input as u64);
            for b in &batches {
                let execution = b.execution_name();
                info!(batch_id = %b.batch_id, execution, events = b.input_count, "batch cut");
                report_quarantine(&b.quarantine);
            }
            // Batches run concurrently, but bounded: each is a whole state machine execution.
            // (The submissions are collected first: a closure left inside the stream would
            // make the handler's future lose `Send` to a higher-ranked lifetime check.)
            let submissions: Vec<_> = batches.iter().map(|b| self.sink.submit(b)).collect();
            let results: Vec<Result<(), Error>> = futures::stream::iter(submissions)
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            // Every batch has finished (none is abandoned half-way); only then report a
            // failure, so the trigger redelivers the whole input and no offset is committed
            // past an unprocessed event.
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
            record_latency(started);
            info!(batches = receipts.len(), events = input, "ingest done");
            Ok(IngestResponse { batches: receipts })
        }
        .instrument(span)
        .await
    }
}
