//! One type per stage, each holding only what its stage needs, and implementing
//! [`Handler`](crate::Handler):
//! - [`Ingest`]: split limits, concurrency and a [`BatchSink`](pipeline_ingest::BatchSink).
//! - [`Validate`]: the compiled contract and validate settings.
//! - [`Enrich`]: the FX table and validate settings (it reads no store).
//! - [`Detect`]: detection settings and an [`EntityStore`] (entity state, and from it each
//!   event's entity profile).
//! - [`Persist`]: persist settings, a store and an announcer.
//!
//! Each has a typed method (what the local runner chains in process, [`crate::Pipeline`]) and
//! `Handler::run` around it (what the Lambda runs): the method, then the stage's own logs and
//! metrics; quarantined events and anomalies get one line each with their `event_id` (never
//! their payload).

mod detect;
mod enrich;
mod ingest;
mod persist;
mod validate;

use std::collections::HashMap;

use pipeline_core::Error;
use pipeline_core::batch::{Batch, Quarantined};
use pipeline_core::detect::EntityState;
use pipeline_core::store::EntityStore;
use tracing::{info, warn};

pub use detect::Detect;
pub use enrich::Enrich;
pub use ingest::{BatchItemFailure, BatchReceipt, Ingest, IngestResponse};
pub use persist::{Persist, PersistInput};
pub use validate::Validate;

use crate::telemetry::metric;

/// The summary of validate, enrich and detect: the quarantine entries the stage added (from
/// `before` on), one line each and counted, then one `stage done` line.
fn stage_done<E>(stage: pipeline_core::batch::Stage, before: usize, out: &Batch<E>) {
    report_quarantine(out.quarantine.get(before..).unwrap_or_default(), None);
    let (stage, batch_id) = (stage.as_str(), &out.batch_id);
    let (events, quarantined) = (out.events.len(), out.quarantine.len());
    info!(stage, batch_id, events, quarantined, "stage done");
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

/// The entity states for the entities of a batch: one batched read, none for an empty batch.
async fn entities<'a, S: EntityStore>(
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
