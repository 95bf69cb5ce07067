//! The persist stage: scored batch → anomaly announcements → conditional writes → persist
//! report; or, on the state machine's quarantine path, a batch that failed a stage, whose
//! events are all quarantined with the error.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use pipeline_core::Error;
use pipeline_core::batch::{Batch, Stage};
use pipeline_core::detect::ScoredEvent;
use pipeline_core::persist::{
    Announcer, FailedBatch, NoAnnouncer, PersistConfig, PersistReport, Status,
};
use pipeline_core::store::Store;
use pipeline_core::validate::{ValidateConfig, recheck};
use serde_json::Value;
use tracing::{info, warn};

use crate::Handler;
use crate::config::Config;
use crate::error::FunctionError;
use crate::serve::parse;
use crate::telemetry::metric;

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
    pub async fn persist(
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

/// What persist takes: a scored batch from detect, or, on the state machine's quarantine path,
/// a batch that failed a stage (told apart by the failure's `error` object, which only the
/// quarantine path's document has).
#[derive(Debug)]
pub enum PersistInput {
    /// Detect's output.
    Scored(Batch<ScoredEvent>),
    /// A batch that failed a stage for good.
    Failed(FailedBatch),
}

// Decoded as `Handler::decode` does, for callers that deserialise it themselves.
impl<'de> serde::Deserialize<'de> for PersistInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let doc = Value::deserialize(d)?;
        if FailedBatch::is_failed_batch(&doc) {
            serde_json::from_value(doc).map(PersistInput::Failed)
        } else {
            serde_json::from_value(doc).map(PersistInput::Scored)
        }
        .map_err(D::Error::custom)
    }
}

impl<S: Store> Handler for Persist<S> {
    const STAGE: Stage = Stage::Persist;
    const EXPECTS: &'static str = "scored batch (detect output)";
    type Input = PersistInput;
    type Output = PersistReport;

    // The quarantine path must not fail on purpose: it is where failed batches land.
    fn injects_faults(&self, doc: &Value) -> bool {
        self.fault_injection && !FailedBatch::is_failed_batch(doc)
    }

    fn decode(doc: Value) -> Result<PersistInput, FunctionError> {
        if FailedBatch::is_failed_batch(&doc) {
            parse(doc, "failed batch (state machine quarantine path)").map(PersistInput::Failed)
        } else {
            parse(doc, Self::EXPECTS).map(PersistInput::Scored)
        }
    }

    async fn run(&self, input: PersistInput) -> Result<PersistReport, FunctionError> {
        let now = Utc::now();
        let report = match input {
            PersistInput::Scored(batch) => {
                // Event time to persisted, per event: the lag the on-call engineer watches.
                for e in &batch.events {
                    let lag = (now.timestamp_millis() - e.event.occurred_ms()).max(0);
                    metrics::histogram!(metric::END_TO_END_LAG_MS).record(lag as f64);
                }
                self.persist(batch, now).await?
            }
            PersistInput::Failed(failed) => {
                warn!(error = %failed.error.error, failed_stage = failed.failed_stage.map_or("unknown", Stage::as_str), events = failed.events.len(),
                      "quarantining a batch that failed a stage");
                metrics::counter!(metric::EVENTS_QUARANTINED).increment(failed.events.len() as u64);
                self.quarantine_failed(failed, now).await?
            }
        };
        record_report(&report);
        Ok(report)
    }
}
