//! The batch document that stages exchange.
//!
//! A [`Batch`] carries the events that are still in flight and the [`Quarantined`] entries of
//! every event that failed a stage so far. Each stage consumes one `Batch<T>` and returns the
//! next `Batch<U>`; the quarantine list only grows, so `input_count` always equals
//! `events.len() + quarantine.len()` and nothing can disappear between stages.
//!
//! A document names the stage it is for (`"stage": "validate"` … `"persist"`), written from its
//! event type ([`ForStage`]): a tool reading a document (`pipeline stage`, `pipeline run`) is
//! told what it is instead of guessing from the keys of its first event, and a stage refuses a
//! document meant for another. Documents without the field (written before it existed) still
//! decode.
//!
//! Size: Step Functions limits a state to 256 KB. Ingest cuts batches at
//! [`MAX_BATCH_EVENTS`] events and [`MAX_BATCH_BYTES`] bytes of raw payload, which leaves room
//! for what enrichment and detection add (a few hundred bytes per event).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Event, Provenance};

/// The most events ingest puts in one batch.
pub const MAX_BATCH_EVENTS: usize = 100;
/// The most bytes of raw event payload ingest puts in one batch.
pub const MAX_BATCH_BYTES: usize = 128 * 1024;
/// The Step Functions state size limit the batch documents must stay under.
pub const STATE_LIMIT_BYTES: usize = 256 * 1024;

/// A batch document. `T` is the stage's event type.
///
/// A document read from outside (a Lambda input, a file given to `pipeline run`) must account
/// for every event it says entered it: `input_count = events + quarantine`. One that does not
/// has lost events before this point, which no stage could put right, so it does not decode
/// (a fatal `BadBatch` in a stage) instead of being processed as if nothing were missing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    try_from = "Unchecked<T>",
    bound(deserialize = "T: serde::de::DeserializeOwned + ForStage")
)]
pub struct Batch<T> {
    /// Deterministic id of the batch (a hash of its provenance or content).
    pub batch_id: String,
    /// When ingest received the batch: "now" for the future-skew check and ingestion lag.
    pub received_at: DateTime<Utc>,
    /// How many events entered the batch at ingest.
    pub input_count: usize,
    /// Events still in flight.
    pub events: Vec<T>,
    /// Events that failed a stage, with every reason and the original payload.
    #[serde(default)]
    pub quarantine: Vec<Quarantined>,
}

/// The stage a batch of this event type is for: what a document of it says in `"stage"`.
pub trait ForStage {
    /// That stage; `None` for a batch read without knowing its stage (`Batch<Value>`), which
    /// takes a document for any stage.
    const STAGE: Option<Stage>;
}

impl ForStage for RawEvent {
    const STAGE: Option<Stage> = Some(Stage::Validate);
}

impl ForStage for ValidEvent {
    const STAGE: Option<Stage> = Some(Stage::Enrich);
}

impl ForStage for Value {
    const STAGE: Option<Stage> = None;
}

impl<T: Serialize + ForStage> Serialize for Batch<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Document<'a, T> {
            #[serde(skip_serializing_if = "Option::is_none")]
            stage: Option<Stage>,
            batch_id: &'a str,
            received_at: &'a DateTime<Utc>,
            input_count: usize,
            events: &'a [T],
            quarantine: &'a [Quarantined],
        }
        Document {
            stage: T::STAGE,
            batch_id: &self.batch_id,
            received_at: &self.received_at,
            input_count: self.input_count,
            events: &self.events,
            quarantine: &self.quarantine,
        }
        .serialize(serializer)
    }
}

/// [`Batch`] as written, before its counts and its stage are checked.
#[derive(Deserialize)]
struct Unchecked<T> {
    #[serde(default)]
    stage: Option<Stage>,
    batch_id: String,
    received_at: DateTime<Utc>,
    input_count: usize,
    events: Vec<T>,
    #[serde(default)]
    quarantine: Vec<Quarantined>,
}

impl<T: ForStage> TryFrom<Unchecked<T>> for Batch<T> {
    type Error = String;

    fn try_from(u: Unchecked<T>) -> Result<Self, Self::Error> {
        if let (Some(is), Some(wanted)) = (u.stage, T::STAGE)
            && is != wanted
        {
            return Err(format!(
                "this is a batch document for {}, not for {}",
                is.as_str(),
                wanted.as_str()
            ));
        }
        let held = u.events.len().saturating_add(u.quarantine.len());
        if held != u.input_count {
            return Err(format!(
                "input_count is {} but the document holds {} events and {} quarantine entries: \
                 events were lost or added on the way here",
                u.input_count,
                u.events.len(),
                u.quarantine.len()
            ));
        }
        Ok(Batch {
            batch_id: u.batch_id,
            received_at: u.received_at,
            input_count: u.input_count,
            events: u.events,
            quarantine: u.quarantine,
        })
    }
}

impl<T> Batch<T> {
    /// The Step Functions execution name ingest gives this batch: `<batch_id>-<received ms>`
    /// (`[A-Za-z0-9-_]`, at most 80 characters). The batch id is a hash of the batch's
    /// provenance and content, so a redelivered batch is a second execution with the same
    /// prefix. Every stage can derive it, so logs carry it without the state machine passing it.
    pub fn execution_name(&self) -> String {
        let clean: String = self
            .batch_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        format!("{clean}-{}", self.received_at.timestamp_millis())
    }

    /// Moves the quarantine and identity of `self` into a batch of another event type.
    pub fn map_events<U>(self, events: Vec<U>, extra_quarantine: Vec<Quarantined>) -> Batch<U> {
        let mut quarantine = self.quarantine;
        quarantine.extend(extra_quarantine);
        Batch {
            batch_id: self.batch_id,
            received_at: self.received_at,
            input_count: self.input_count,
            events,
            quarantine,
        }
    }
}

/// An event as ingest decoded it: JSON that has not been validated yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    /// The payload as the producer sent it (a JSON string when it was not JSON at all).
    pub payload: Value,
    /// Where it came from.
    #[serde(default)]
    pub provenance: Provenance,
}

/// An event that passed validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidEvent {
    /// The typed event.
    pub event: Event,
    /// Where it came from.
    #[serde(default)]
    pub provenance: Provenance,
}

/// The stage an event was quarantined in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Decoding the transport envelope (Kafka record, EventBridge detail, JSON line).
    Ingest,
    /// Schema and semantic checks.
    Validate,
    /// FX normalisation and reference data.
    Enrich,
    /// Anomaly scoring.
    Detect,
    /// Writing the record (a `conflict` ends here).
    Persist,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 5] = [
        Stage::Ingest,
        Stage::Validate,
        Stage::Enrich,
        Stage::Detect,
        Stage::Persist,
    ];

    /// The snake_case name used in documents and metrics, and the function's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Validate => "validate",
            Stage::Enrich => "enrich",
            Stage::Detect => "detect",
            Stage::Persist => "persist",
        }
    }
}

/// Why an event was quarantined: a stable machine-readable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable code, e.g. `schema`, `malformed_json`, `unknown_currency`.
    pub code: String,
    /// What is wrong, for a person.
    pub message: String,
    /// JSON pointer to the offending field, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The longest reason message and path kept, in bytes. Messages may quote the offending value,
/// which a producer controls: unbounded, one 10 MB attribute would make a 10 MB reason, and a
/// quarantine item DynamoDB refuses (400 KB), wedging its batch in retries.
pub const MAX_REASON_BYTES: usize = 1024;

/// `text` cut to at most [`MAX_REASON_BYTES`] at a character boundary, saying how long it was.
fn bounded(text: String) -> String {
    if text.len() <= MAX_REASON_BYTES {
        return text;
    }
    let mut end = MAX_REASON_BYTES - 40;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

impl Reason {
    /// A reason without a path.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Reason {
            code: code.to_owned(),
            message: bounded(message.into()),
            path: None,
        }
    }

    /// A reason about one field.
    pub fn at(code: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Reason {
            code: code.to_owned(),
            message: bounded(message.into()),
            path: Some(bounded(path.into())),
        }
    }
}

/// An event that failed a stage. Nothing is dropped: the payload is kept as it was received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    /// The event's id when one could be read from the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The stage that rejected it.
    pub stage: Stage,
    /// Every reason, not just the first.
    pub reasons: Vec<Reason>,
    /// The original payload.
    pub payload: Value,
    /// Where it came from.
    #[serde(default)]
    pub provenance: Provenance,
}

impl Quarantined {
    /// Quarantines an already typed event (later stages): its serialisation is the payload.
    pub fn typed(
        event: &Event,
        provenance: Provenance,
        stage: Stage,
        reasons: Vec<Reason>,
    ) -> Self {
        Quarantined {
            event_id: Some(event.event_id.clone()),
            stage,
            reasons,
            payload: serde_json::to_value(event).unwrap_or(Value::Null),
            provenance,
        }
    }

    /// A stable id for the quarantine record, so re-quarantining the same thing is idempotent.
    ///
    /// An event with an id is one entry per stage and content, wherever it came from (the same
    /// bad event delivered twice is one problem). Input that is not an event yet (an ingest
    /// failure) or has no id is one entry per origin as well: two identical bad lines, or
    /// empty Kafka values at two offsets, are two inputs, each to be found where it came
    /// from. The origin is the file's name and line (not the path as typed, so `./in.jsonl`
    /// and `in.jsonl` are one input), the topic, partition and offset, or the EventBridge id
    /// and position.
    pub fn quarantine_id(&self) -> String {
        let mut payload = serde_json::to_vec(&self.payload).unwrap_or_default();
        if self.stage == Stage::Ingest || self.event_id.is_none() {
            payload.extend_from_slice(origin(&self.provenance).as_bytes());
        }
        let h = crate::hash64(&payload);
        match &self.event_id {
            Some(id) => format!("{}#{}#{h:016x}", self.stage.as_str(), id),
            None => format!("{}#-#{h:016x}", self.stage.as_str()),
        }
    }
}

/// Where an input came from, as part of a quarantine id.
fn origin(p: &Provenance) -> String {
    match p {
        Provenance::Kafka {
            topic,
            partition,
            offset,
            ..
        } => format!("\u{0}kafka\u{0}{topic}\u{0}{partition}\u{0}{offset}"),
        Provenance::Eventbridge { id, index, .. } => {
            format!("\u{0}eventbridge\u{0}{id}\u{0}{index:?}")
        }
        Provenance::File { path, line } => {
            let name = std::path::Path::new(path)
                .file_name()
                .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
            format!("\u{0}file\u{0}{name}\u{0}{line}")
        }
        Provenance::Direct => String::new(),
    }
}

/// The length of `v` serialised as compact JSON, without allocating the text.
pub fn serialized_len<T: Serialize + ?Sized>(v: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to an infallible sink only fails for types that cannot be serialised at all.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_document_names_its_stage_and_a_stage_refuses_another_stages_document() {
        let at = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default();
        let raw = Batch::<RawEvent> {
            batch_id: "b-1".into(),
            received_at: at,
            input_count: 1,
            events: vec![RawEvent {
                payload: serde_json::json!({"event_id": "e-1"}),
                provenance: Provenance::Direct,
            }],
            quarantine: vec![],
        };
        let doc = serde_json::to_value(&raw).unwrap();
        assert_eq!(doc["stage"], "validate");
        assert_eq!(
            serde_json::from_value::<Batch<RawEvent>>(doc.clone()).unwrap(),
            raw
        );
        // Read without knowing its stage, it is taken as it is.
        assert!(serde_json::from_value::<Batch<Value>>(doc.clone()).is_ok());
        let mut for_enrich = doc.clone();
        for_enrich["stage"] = "enrich".into();
        let err = serde_json::from_value::<Batch<RawEvent>>(for_enrich)
            .unwrap_err()
            .to_string();
        assert!(err.contains("for enrich, not for validate"), "{err}");
        // Written before the field existed: still decodes.
        let mut old = doc;
        old.as_object_mut().unwrap().remove("stage");
        assert_eq!(serde_json::from_value::<Batch<RawEvent>>(old).unwrap(), raw);
    }

    #[test]
    fn execution_names_are_valid_and_keep_the_batch_prefix() {
        let at = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default();
        let b = |id: &str| Batch::<RawEvent> {
            batch_id: id.to_owned(),
            received_at: at,
            input_count: 0,
            events: vec![],
            quarantine: vec![],
        };
        assert_eq!(
            b("b-0123456789abcdef").execution_name(),
            "b-0123456789abcdef-1700000000000"
        );
        let odd = b(&format!("b/{}", "x".repeat(100))).execution_name();
        assert!(odd.len() <= 80 && odd.starts_with("b_x"), "{odd}");
    }
}
