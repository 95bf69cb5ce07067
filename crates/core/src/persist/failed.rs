//! The quarantine path: a batch that failed a stage for good, as the state machine's `Catch`
//! hands it over, is quarantined whole, so nothing is lost.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{PersistConfig, PersistReport};
use crate::Error;
use crate::batch::{Batch, Quarantined, Reason, Stage};
use crate::detect::ScoredEvent;
use crate::store::Store;

/// The error a state reported, as Step Functions' `Catch` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateError {
    /// The error name (e.g. `Pipeline.Fatal.BadBatch`, `States.Timeout`).
    #[serde(rename = "Error")]
    pub error: String,
    /// The cause (often the function's error JSON).
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

/// A batch that failed a stage for good, as the state machine hands it to the quarantine path:
/// the failing state's input document plus `error` and `failed_stage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedBatch {
    /// The batch.
    pub batch_id: String,
    /// When ingest received it.
    pub received_at: DateTime<Utc>,
    /// Events that entered at ingest.
    pub input_count: usize,
    /// The in-flight events, in whatever stage shape they had.
    #[serde(default)]
    pub events: Vec<Value>,
    /// Earlier quarantine entries.
    #[serde(default)]
    pub quarantine: Vec<Quarantined>,
    /// Why the stage failed.
    pub error: StateError,
    /// Which stage failed.
    #[serde(default)]
    pub failed_stage: Option<Stage>,
}

impl FailedBatch {
    /// Whether a JSON document is a failed batch (rather than a scored batch).
    pub fn is_failed_batch(doc: &Value) -> bool {
        doc.get("error").is_some_and(|e| e.get("Error").is_some())
    }
}

/// The quarantine path: every in-flight event of a failed batch is quarantined with the error,
/// together with the batch's earlier quarantine entries. Nothing is lost.
pub async fn quarantine_failed_batch<S: Store + ?Sized>(
    store: &S,
    failed: FailedBatch,
    cfg: &PersistConfig,
    now: DateTime<Utc>,
) -> Result<PersistReport, Error> {
    let stage = failed.failed_stage.unwrap_or(Stage::Persist);
    let mut cause: String = failed.error.cause.chars().take(2000).collect();
    if cause.len() < failed.error.cause.len() {
        cause.push('…');
    }
    let reason = Reason::new(
        "stage_failed",
        format!(
            "stage {} failed for the whole batch: {}: {cause}",
            stage.as_str(),
            failed.error.error
        ),
    );
    let mut quarantine = failed.quarantine;
    for v in failed.events {
        let (payload, provenance) = match (v.get("payload"), v.get("event")) {
            (Some(p), _) => (p.clone(), v.get("provenance").cloned()),
            (None, Some(e)) => (e.clone(), v.get("provenance").cloned()),
            _ => (v.clone(), None),
        };
        quarantine.push(Quarantined {
            event_id: payload
                .get("event_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            stage,
            reasons: vec![reason.clone()],
            payload,
            provenance: provenance
                .and_then(|p| serde_json::from_value(p).ok())
                .unwrap_or_default(),
        });
    }
    let batch: Batch<ScoredEvent> = Batch {
        batch_id: failed.batch_id,
        received_at: failed.received_at,
        input_count: failed.input_count,
        events: Vec::new(),
        quarantine,
    };
    super::persist(store, batch, cfg, now).await
}
