//! The persist stage: scored batch → anomaly announcements → conditional writes → persist
//! report; or, on the state machine's quarantine path, a batch that failed a stage, whose
//! events are all quarantined with the error.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use pipeline_core::Error;
use pipeline_core::batch::{Batch, Stage};
use pipeline_core::detect::ScoredEvent;
use pipeline_core::persist::{
    Announcer, FailedBatch, NoAnnouncer, PersistConfig, PersistReport, Status,
};
use pipeline_core::store::Store;
use pipeline_core::validate::{ValidateConfig, recheck};
use serde_json::Value;
use tracing::{Instrument, info, warn};

use super::{AfterRun, Handler, failed_after_run, inject_fault, parse, record_latency};
use crate::config::Config;
use crate::error::FunctionError;
use crate::telemetry::{invocation_span, metric, record_batch};

/// The persist stage: its settings, the store, and where new anomalies are announced.
pub struct Persist<S> {
    config: PersistConfig,
    store: S,
    announcer: Arc<dyn Announcer>,
    validate: ValidateConfig,
    fault_injection: bool,
}

impl<S: Store> Persist<S> {
    /// Binds the persist settings to a store; anomalies are stored, not announced, until
    /// [`Persist::with_announcer`].
    pub fn new(config: &Config, store: S) -> Self {
        Persist {
            config: config.persist.clone(),
            store,
            announcer: Arc::new(NoAnnouncer),
            validate: config.validate.clone(),
            fault_injection: config.fault_injection,
        }
    }

    /// Announces new anomalies through `announcer` (EventBridge in the Lambda).
    pub fn with_announcer(mut self, announcer: Arc<dyn Announcer>) -> Self {
        self.announcer = announcer;
        self
    }

    /// Persists a scored batch at time `now`.
    pub async fn run(
        &self,
        batch: Batch<ScoredEvent>,
        now: DateTime<Utc>,
    ) -> Result<PersistReport, Error> {
        let batch = recheck(batch, Stage::Persist, &self.validate, |e| {
            (&e.event, &e.provenance)
        });
        pipeline_core::persist::persist_and_announce(
            &self.store,
            batch,
            &self.config,
            now,
            &*self.announcer,
        )
        .await
    }

    /// The quarantine path for a batch that failed a stage for good.
    pub async fn quarantine_failed(
        &self,
        failed: FailedBatch,
        now: DateTime<Utc>,
    ) -> Result<PersistReport, Error> {
        pipeline_core::persist::quarantine_failed_batch(&self.store, failed, &self.config, now)
            .await
    }

    async fn handle_failed(
        &self,
        payload: Value,
        span: &tracing::Span,
        now: DateTime<Utc>,
    ) -> Result<PersistReport, FunctionError> {
        let failed: FailedBatch = parse(payload, "failed batch (state machine quarantine path)")?;
        let execution = Batch::<Value> {
            batch_id: failed.batch_id.clone(),
            received_at: failed.received_at,
            input_count: 0,
            events: Vec::new(),
            quarantine: Vec::new(),
        }
        .execution_name();
        record_batch(span, &failed.batch_id, &execution);
        warn!(error = %failed.error.error, failed_stage = failed.failed_stage.map_or("unknown", Stage::as_str), events = failed.events.len(),
              "quarantining a batch that failed a stage");
        metrics::counter!(metric::EVENTS_QUARANTINED).increment(failed.events.len() as u64);
        Ok(self.quarantine_failed(failed, now).await?)
    }

    async fn handle_scored(
        &self,
        payload: Value,
        span: &tracing::Span,
        now: DateTime<Utc>,
    ) -> Result<PersistReport, FunctionError> {
        let after = inject_fault(self.fault_injection, Stage::Persist, &payload)?;
        let batch: Batch<ScoredEvent> = parse(payload, "scored batch (detect output)")?;
        record_batch(span, &batch.batch_id, &batch.execution_name());
        // Event time to persisted, per event: the lag the on-call engineer watches.
        for e in &batch.events {
            let lag = (now.timestamp_millis() - e.event.occurred_ms()).max(0);
            metrics::histogram!(metric::END_TO_END_LAG_MS).record(lag as f64);
        }
        let report = self.run(batch, now).await?;
        if after == AfterRun::Fail {
            return Err(failed_after_run(Stage::Persist));
        }
        Ok(report)
    }
}

fn record_report(report: &PersistReport) {
    let c = &report.counts;
    metrics::counter!(metric::PERSISTED).increment(c.persisted as u64);
    metrics::counter!(metric::DUPLICATES).increment(c.duplicate as u64);
    metrics::counter!(metric::UPDATED).increment(c.updated as u64);
    metrics::counter!(metric::STALE).increment(c.stale as u64);
    metrics::counter!(metric::CONFLICTS).increment(c.conflict as u64);
    metrics::counter!(metric::ANOMALIES).increment(c.anomalies as u64);
    for (reason, n) in &report.quarantined_by_reason {
        metrics::counter!(metric::QUARANTINED_BY_REASON, "Reason" => reason.clone())
            .increment(*n as u64);
    }
    for o in report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Conflict)
    {
        warn!(
            event_id = o.event_id.as_deref().unwrap_or(""),
            "conflict: same event_id and version, other content; quarantined"
        );
    }
    info!(batch_id = %report.batch_id, input = c.input, persisted = c.persisted, duplicate = c.duplicate,
          updated = c.updated, stale = c.stale, conflict = c.conflict, quarantined = c.quarantined,
          anomalies = c.anomalies, "persist done");
}

impl<S: Store> Handler for Persist<S> {
    const STAGE: Stage = Stage::Persist;
    type Output = PersistReport;

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<PersistReport, FunctionError> {
        let span = invocation_span(Self::STAGE, &event.context);
        let inner = span.clone();
        super::correlate(&span, &event.payload);
        super::logged(async move {
            let started = Instant::now();
            let now = Utc::now();
            let report = if FailedBatch::is_failed_batch(&event.payload) {
                self.handle_failed(event.payload, &inner, now).await?
            } else {
                self.handle_scored(event.payload, &inner, now).await?
            };
            record_latency(started);
            record_report(&report);
            Ok(report)
        })
        .instrument(span)
        .await
    }
}
