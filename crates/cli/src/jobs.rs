//! The inputs of the chain as batch documents ([`Job`]): reading an input read whole into
//! them (a trigger payload, a stage batch document, or JSON Lines), telling a whole document
//! from an event line, and running one through the stages it still has to pass (with the
//! retries a deployed batch would get). `run`, `stage`, `evaluate` and the report's tests use
//! it; `feed` streams large inputs into the same documents.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use pipeline_core::ErrorClass;
use pipeline_core::batch::{Batch, RawEvent, Stage, ValidEvent};
use pipeline_core::detect::ScoredEvent;
use pipeline_core::enrich::EnrichedEvent;
use pipeline_core::persist::PersistReport;
use pipeline_core::store::Store;
use pipeline_handlers::Pipeline;
use pipeline_ingest as ingest;
use serde_json::Value;

use crate::error::CliError;

/// A batch document entering the chain at some stage.
#[derive(Clone)]
pub(crate) enum Job {
    Raw(Batch<RawEvent>),
    Valid(Batch<ValidEvent>),
    Enriched(Batch<EnrichedEvent>),
    Scored(Batch<ScoredEvent>),
}

impl Job {
    /// The stage this job's document is for.
    pub(crate) fn stage(&self) -> Stage {
        match self {
            Job::Raw(_) => Stage::Validate,
            Job::Valid(_) => Stage::Enrich,
            Job::Enriched(_) => Stage::Detect,
            Job::Scored(_) => Stage::Persist,
        }
    }

    pub(crate) fn input_count(&self) -> usize {
        match self {
            Job::Raw(b) => b.input_count,
            Job::Valid(b) => b.input_count,
            Job::Enriched(b) => b.input_count,
            Job::Scored(b) => b.input_count,
        }
    }
}

/// Items in `jobs`, and how many of them could not be decoded as JSON at all.
pub(crate) fn undecodable(jobs: &[Job]) -> (usize, usize) {
    let items = jobs.iter().map(Job::input_count).sum();
    let bad = jobs
        .iter()
        .filter_map(|j| match j {
            Job::Raw(b) => Some(&b.quarantine),
            _ => None,
        })
        .flatten()
        .filter(|q| q.reasons.iter().any(|r| not_json(&r.code)))
        .count();
    (items, bad)
}

/// Attempts at a batch whose failure is retryable (a second writer on the same database kept
/// changing one of its entities, or held the database past the busy timeout) before the error
/// stands: what the state machine's Retry does for a deployed batch.
const BATCH_ATTEMPTS: usize = 8;

/// [`run_job`], retrying a retryable failure after a jittered exponential pause (`backon`:
/// 50 ms doubling to 5 s). A retried batch is decided again against what is stored, so a retry
/// never counts anything twice.
pub(crate) async fn run_job_retrying<S: Store>(
    p: &Pipeline<S>,
    job: Job,
) -> Result<(PersistReport, usize), CliError> {
    let mut pauses = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(BATCH_ATTEMPTS - 1)
        .with_jitter()
        .build();
    loop {
        match run_job(p, job.clone()).await {
            Err(CliError::Pipeline(e)) if e.class() == ErrorClass::Retryable => {
                match pauses.next() {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => return Err(CliError::Pipeline(e)),
                }
            }
            other => return other,
        }
    }
}

pub(crate) async fn run_job<S: Store>(
    p: &Pipeline<S>,
    job: Job,
) -> Result<(PersistReport, usize), CliError> {
    let now = Utc::now();
    Ok(match job {
        Job::Raw(b) => {
            let v = p.validate(b);
            let n = v.events.len();
            (p.persist(p.detect(p.enrich(v)).await?, now).await?, n)
        }
        Job::Valid(b) => {
            let n = b.events.len();
            (p.persist(p.detect(p.enrich(b)).await?, now).await?, n)
        }
        Job::Enriched(b) => {
            let n = b.events.len();
            (p.persist(p.detect(b).await?, now).await?, n)
        }
        Job::Scored(b) => {
            let n = b.events.len();
            (p.persist(b, now).await?, n)
        }
    })
}

/// Whether a quarantine reason says the line was not JSON text at all.
pub fn not_json(code: &str) -> bool {
    code == "malformed_json" || code == "invalid_utf8"
}

/// What a line is when it is a whole trigger payload or batch document, not an event. Only
/// lines that name one of their keys are parsed a second time.
pub(crate) fn document_line(line: &[u8]) -> Option<(&'static str, Value)> {
    let text = std::str::from_utf8(line).ok()?;
    if !["\"eventSource\"", "\"detail-type\"", "\"batch_id\""]
        .iter()
        .any(|k| text.contains(k))
    {
        return None;
    }
    let doc: Value = serde_json::from_str(text.trim()).ok()?;
    document_kind(&doc).map(|what| (what, doc))
}

/// What a JSON value is when it is a whole document (a trigger payload or a batch document)
/// rather than an event: the one rule `run`, `stage` and the streaming reader all apply.
pub(crate) fn document_kind(doc: &Value) -> Option<&'static str> {
    match ingest::kind_of(doc) {
        Some(ingest::InputKind::Kafka) => Some("an MSK (Kafka) trigger payload"),
        Some(ingest::InputKind::EventBridge) => Some("an EventBridge event"),
        None if doc.get("batch_id").is_some() && doc.get("events").is_some() => {
            Some("a batch document")
        }
        None => None,
    }
}

/// The batch documents of a whole document: a trigger payload cut as ingest cuts it, or a
/// batch document as it is. `None` when `doc` is not a document (see [`document_kind`]).
pub(crate) fn document_jobs<S: Store>(
    input: &str,
    doc: Value,
    p: &Pipeline<S>,
) -> Result<Option<Vec<Job>>, CliError> {
    if ingest::kind_of(&doc).is_some() {
        return Ok(Some(
            p.ingest(&doc, Utc::now())?
                .into_iter()
                .map(Job::Raw)
                .collect(),
        ));
    }
    if document_kind(&doc).is_some() {
        return batch_job(input, doc).map(|j| Some(vec![j]));
    }
    Ok(None)
}

/// The error for a document found among other lines; `before_any_write` when it is found
/// before anything was written.
pub(crate) fn document_among_lines(
    name: &str,
    line_no: usize,
    what: &str,
    before_any_write: bool,
) -> CliError {
    CliError::Input {
        path: name.to_owned(),
        message: format!(
            "line {line_no} is {what}, not an event, and the input holds more than that one \
             document; an input is either one document or JSON Lines of events, so put each \
             document in a file of its own{}",
            if before_any_write {
                ". Nothing was written".to_owned()
            } else {
                format!(
                    ". The events before line {line_no} may have been processed: running the \
                     corrected input again is safe (it is idempotent)"
                )
            }
        ),
    }
}

/// Reads one input into batch documents.
pub(crate) fn load<S: Store>(input: &str, p: &Pipeline<S>) -> Result<Vec<Job>, CliError> {
    load_bytes(input, crate::input::read_bytes(input)?, p)
}

/// Cuts an input read whole (`input` names it) into batch documents.
pub(crate) fn load_bytes<S: Store>(
    input: &str,
    bytes: Vec<u8>,
    p: &Pipeline<S>,
) -> Result<Vec<Job>, CliError> {
    match String::from_utf8(bytes) {
        Ok(text) => load_text(input, &text, p),
        // Not UTF-8 as a whole, so not one JSON document: JSON Lines with some lines that are
        // not text, each quarantined on its own while the others are processed.
        Err(e) => {
            let items = ingest::decode_byte_lines(input, e.as_bytes());
            Ok(p.split(items, Utc::now())
                .into_iter()
                .map(Job::Raw)
                .collect())
        }
    }
}

/// Cuts an input already read (`input` names it) into batch documents.
pub(crate) fn load_text<S: Store>(
    input: &str,
    text: &str,
    p: &Pipeline<S>,
) -> Result<Vec<Job>, CliError> {
    // A single JSON document that is a trigger payload or a batch; anything else is JSON Lines.
    if let Ok(doc) = serde_json::from_str::<Value>(text)
        && let Some(jobs) = document_jobs(input, doc, p)?
    {
        return Ok(jobs);
    }
    for (i, line) in text.lines().enumerate() {
        if let Some((what, _)) = document_line(line.as_bytes()) {
            // Read whole, so nothing has been written yet.
            return Err(document_among_lines(input, i + 1, what, true));
        }
    }
    let items = ingest::decode_lines(input, text.lines().enumerate().map(|(i, l)| (i + 1, l)));
    Ok(p.split(items, Utc::now())
        .into_iter()
        .map(Job::Raw)
        .collect())
}

/// A batch document as the job of the stage it names in `"stage"`; a document written before
/// that field existed is told by the keys of its first event.
fn batch_job(path: &str, doc: Value) -> Result<Job, CliError> {
    let bad = |e: serde_json::Error| CliError::Input {
        path: path.to_owned(),
        message: format!("not a valid batch document: {e}"),
    };
    if let Some(named) = doc.get("stage") {
        let stage: Stage = serde_json::from_value(named.clone()).map_err(bad)?;
        return Ok(match stage {
            Stage::Validate => Job::Raw(serde_json::from_value(doc).map_err(bad)?),
            Stage::Enrich => Job::Valid(serde_json::from_value(doc).map_err(bad)?),
            Stage::Detect => Job::Enriched(serde_json::from_value(doc).map_err(bad)?),
            Stage::Persist => Job::Scored(serde_json::from_value(doc).map_err(bad)?),
            Stage::Ingest => {
                return Err(CliError::Input {
                    path: path.to_owned(),
                    message: "a batch document is for validate, enrich, detect or persist; \
                              ingest takes trigger events or JSON Lines"
                        .into(),
                });
            }
        });
    }
    let first = doc.get("events").and_then(|e| e.get(0));
    let has = |k: &str| first.is_some_and(|f| f.get(k).is_some());
    Ok(if has("detection") {
        Job::Scored(serde_json::from_value(doc).map_err(bad)?)
    } else if has("enrichment") {
        Job::Enriched(serde_json::from_value(doc).map_err(bad)?)
    } else if has("event") {
        Job::Valid(serde_json::from_value(doc).map_err(bad)?)
    } else {
        Job::Raw(serde_json::from_value(doc).map_err(bad)?)
    })
}
