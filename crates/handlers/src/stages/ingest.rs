//! The ingest stage: an MSK (Kafka) or EventBridge event → batch documents under the Step
//! Functions state limit → a [`BatchSink`] (one state machine execution per batch in the
//! Lambda). It succeeds only when every batch succeeded, so Kafka offsets are never committed
//! past an unprocessed event and EventBridge retries (then dead-letters) a failed delivery.
//!
//! With `INGEST_REPORT_BATCH_ITEM_FAILURES` (and `ReportBatchItemFailures` on the MSK event
//! source mapping), a Kafka invocation whose batches partly failed succeeds instead, naming in
//! `batchItemFailures` the records to redeliver: per partition, every record from the first
//! failed one on ([`ingest::records_to_retry`]). One bad batch then no longer holds up the
//! other partitions of the invocation.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use pipeline_core::Error;
use pipeline_core::batch::{Batch, RawEvent, Stage};
use pipeline_ingest::{self as ingest, BatchSink, KafkaItem, SplitLimits};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use super::report_quarantine;
use crate::Handler;
use crate::config::Config;
use crate::error::FunctionError;
use crate::telemetry::metric;

/// What ingest returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestResponse {
    /// One summary per batch handed to the sink.
    pub batches: Vec<BatchReceipt>,
    /// Kafka records the event source mapping should redeliver (partial batch response);
    /// empty when every batch succeeded.
    #[serde(
        rename = "batchItemFailures",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// One entry of a partial batch response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItemFailure {
    /// The record: `topic-partition` and offset.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: KafkaItem,
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
    /// The batch failed; its records are in `batchItemFailures`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

/// The ingest stage: how to cut batches, how many to run at once, and where they go.
#[derive(Debug)]
pub struct Ingest<K> {
    limits: SplitLimits,
    concurrency: usize,
    partial_failures: bool,
    registry: std::sync::Arc<ingest::Registry>,
    /// Set with [`Ingest::with_glue`]: schema versions fetched from Glue at run time.
    glue: Option<ingest::GlueRegistry>,
    sink: K,
}

impl<K: BatchSink> Ingest<K> {
    /// Hands batches to `sink`, with the default split limits.
    pub fn new(config: &Config, sink: K) -> Self {
        Ingest {
            limits: SplitLimits::default(),
            concurrency: config.ingest_concurrency.max(1),
            partial_failures: config.report_batch_item_failures,
            registry: config.registry.clone(),
            glue: None,
            sink,
        }
    }

    /// Fetches the Glue schema versions that records name and the registry file does not
    /// list from `source` (the Glue client in the function), keeping them for the process.
    pub fn with_glue(mut self, source: std::sync::Arc<dyn ingest::GlueSchemas>) -> Self {
        self.glue = Some(ingest::GlueRegistry::new(
            ingest::Registry::clone(&self.registry),
            source,
        ));
        self
    }

    /// How many Glue schema versions this stage has fetched (0 without [`Ingest::with_glue`]).
    pub fn glue_fetches(&self) -> usize {
        self.glue.as_ref().map_or(0, ingest::GlueRegistry::fetches)
    }

    /// Cuts batches with these limits instead of the default ones.
    pub fn with_limits(mut self, limits: SplitLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The sink batches are handed to.
    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// Decodes a Kafka or EventBridge payload and cuts it into batch documents (with the
    /// registry file only: [`Handler::run`] fetches Glue versions first).
    pub fn cut(
        &self,
        input: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Batch<RawEvent>>, Error> {
        self.cut_with(input, &self.registry, received_at)
    }

    fn cut_with(
        &self,
        input: &Value,
        registry: &ingest::Registry,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Batch<RawEvent>>, Error> {
        Ok(ingest::split(
            ingest::decode_with(input, registry)?,
            received_at,
            self.limits,
        ))
    }
}

impl<K: BatchSink> Handler for Ingest<K> {
    const STAGE: Stage = Stage::Ingest;
    const EXPECTS: &'static str = "an MSK (Kafka) or EventBridge event";
    // The trigger's event as it is: the decoders tell its shape by its fields, and quarantine
    // what they cannot decode record by record instead of refusing the whole invocation.
    type Input = Value;
    type Output = IngestResponse;

    // Faults are injected into the stages' batch documents, never into the trigger's event.
    fn injects_faults(&self, _doc: &Value) -> bool {
        false
    }

    async fn run(&self, payload: Value) -> Result<IngestResponse, FunctionError> {
        let batches = match &self.glue {
            Some(glue) => {
                let registry = glue.for_input(&payload).await?;
                self.cut_with(&payload, &registry, Utc::now())?
            }
            None => self.cut(&payload, Utc::now())?,
        };
        let input: usize = batches.iter().map(|b| b.input_count).sum();
        metrics::counter!(metric::EVENTS_IN).increment(input as u64);
        for b in &batches {
            let execution = b.execution_name();
            info!(batch_id = %b.batch_id, execution, events = b.input_count, "batch cut");
            report_quarantine(&b.quarantine, Some(b.batch_id.as_str()));
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
        // failure: the failed records, or failing the invocation so the trigger
        // redelivers the whole input. Either way no offset is committed past an
        // unprocessed event.
        let mut failed = vec![false; results.len()];
        let mut errors = Vec::new();
        for (i, r) in results.into_iter().enumerate() {
            if let Err(e) = r {
                failed[i] = true;
                errors.push((i, e));
            }
        }
        let mut batch_item_failures = Vec::new();
        let mut errors = errors.into_iter();
        if let Some(first) = errors.next() {
            let retry = if self.partial_failures {
                ingest::records_to_retry(&batches, &failed).filter(|r| !r.is_empty())
            } else {
                None
            };
            let Some(retry) = retry else {
                return Err(FunctionError(first.1));
            };
            for (i, e) in std::iter::once(first).chain(errors) {
                warn!(
                    batch_id = batches.get(i).map(|b| b.batch_id.as_str()).unwrap_or_default(),
                    error_type = e.error_type(),
                    error = %e,
                    "batch failed; its records are reported for redelivery"
                );
            }
            metrics::counter!(metric::RECORDS_REDELIVERED).increment(retry.len() as u64);
            batch_item_failures = retry
                .into_iter()
                .map(|item_identifier| BatchItemFailure { item_identifier })
                .collect();
        }
        let receipts: Vec<BatchReceipt> = batches
            .iter()
            .zip(&failed)
            .map(|(b, &failed)| BatchReceipt {
                batch_id: b.batch_id.clone(),
                input_count: b.input_count,
                quarantined: b.quarantine.len(),
                failed,
            })
            .collect();
        info!(
            batches = receipts.len(),
            events = input,
            redelivered = batch_item_failures.len(),
            "ingest done"
        );
        Ok(IngestResponse {
            batches: receipts,
            batch_item_failures,
        })
    }
}
