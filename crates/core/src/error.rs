//! The core crate's error type.
//!
//! Each variant knows whether retrying can help ([`ErrorClass`]) and has a stable
//! `error_type` name. Lambda functions report that name, and the state machine's `Retry` and
//! `Catch` blocks match it, so the names are part of the public contract: never rename one.
//! Bad *events* are never errors: they become quarantine entries. An [`Error`] means the whole
//! batch could not be processed.

use std::error::Error as StdError;

/// A boxed cause kept by store errors, so adapters can keep the SDK's error as the source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Whether a failed batch may succeed when tried again unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A transient condition (throttling, contention, an unavailable dependency).
    Retryable,
    /// Retrying the same input gives the same failure: route the batch to quarantine.
    Fatal,
}

/// Everything that can stop a batch in the core or in a store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stage input is not the batch document the stage expects.
    #[error("input is not a valid {expected} document: {source}")]
    BadBatch {
        /// Which document shape was expected.
        expected: &'static str,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// The input could not be recognised at all (neither Kafka, EventBridge nor a batch).
    #[error("unrecognised input: {0}")]
    UnrecognisedInput(String),
    /// Configuration that the stage cannot run with (bad FX table, bad schema file, bad env).
    #[error("configuration error: {0}")]
    Config(String),
    /// The store is shedding load; the same request should succeed later.
    #[error("store is throttling requests: {message}")]
    StoreThrottled {
        /// What was being done.
        message: String,
        /// The adapter's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The store could not be reached or failed internally.
    #[error("store is unavailable: {message}")]
    StoreUnavailable {
        /// What was being done.
        message: String,
        /// The adapter's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The store refused the request for a reason retrying will not fix (permissions, schema).
    #[error("store rejected the request: {message}")]
    StoreRejected {
        /// What was being done.
        message: String,
        /// The adapter's error.
        #[source]
        source: Option<BoxError>,
    },
    /// A stored item could not be decoded.
    #[error("stored item {key} is corrupt: {message}")]
    StoreCorrupt {
        /// The item's key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A failure injected on purpose (`PIPELINE_FAULT_INJECTION=1` and an event whose
    /// `attributes.fault_inject` names the stage): lets tests drive a batch through the state
    /// machine's Retry and Catch paths. Never raised unless enabled.
    #[error("fault injected in stage {stage} for event {event_id}")]
    InjectedFault {
        /// The stage that failed.
        stage: &'static str,
        /// The event that asked for it.
        event_id: String,
    },
    /// A Step Functions execution of a batch did not succeed (or could not be started): ingest
    /// fails so the trigger redelivers the batch.
    #[error("execution {execution} of the state machine ended {status}: {detail}")]
    ExecutionFailed {
        /// The execution name.
        execution: String,
        /// Its final status (or `NOT_STARTED`).
        status: String,
        /// The error and cause, or the API error.
        detail: String,
    },
    /// Publishing anomalies on EventBridge kept failing for some entries.
    #[error("could not announce {failed} anomalies on EventBridge: {detail}")]
    AnnounceFailed {
        /// Entries that could not be published.
        failed: usize,
        /// The last error codes seen.
        detail: String,
    },
    /// Optimistic concurrency on an entity's state kept failing.
    #[error("entity {entity_id} state changed concurrently {attempts} times in a row; try again")]
    EntityContended {
        /// The contended entity.
        entity_id: String,
        /// How many attempts were made.
        attempts: u32,
    },
}

impl Error {
    /// Whether retrying the same batch may help.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::StoreThrottled { .. }
            | Error::StoreUnavailable { .. }
            | Error::EntityContended { .. }
            | Error::InjectedFault { .. }
            | Error::ExecutionFailed { .. }
            | Error::AnnounceFailed { .. } => ErrorClass::Retryable,
            Error::BadBatch { .. }
            | Error::UnrecognisedInput(_)
            | Error::Config(_)
            | Error::StoreRejected { .. }
            | Error::StoreCorrupt { .. } => ErrorClass::Fatal,
        }
    }

    /// The stable `error_type` reported to Lambda and matched by the state machine.
    ///
    /// Retryable names start with `Pipeline.Retryable.`, fatal ones with `Pipeline.Fatal.`;
    /// the full list is in `docs/errors.md`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::BadBatch { .. } => "Pipeline.Fatal.BadBatch",
            Error::UnrecognisedInput(_) => "Pipeline.Fatal.UnrecognisedInput",
            Error::Config(_) => "Pipeline.Fatal.Config",
            Error::StoreThrottled { .. } => "Pipeline.Retryable.StoreThrottled",
            Error::StoreUnavailable { .. } => "Pipeline.Retryable.StoreUnavailable",
            Error::StoreRejected { .. } => "Pipeline.Fatal.StoreRejected",
            Error::StoreCorrupt { .. } => "Pipeline.Fatal.StoreCorrupt",
            Error::EntityContended { .. } => "Pipeline.Retryable.EntityContended",
            Error::InjectedFault { .. } => "Pipeline.Retryable.InjectedFault",
            Error::ExecutionFailed { .. } => "Pipeline.Retryable.ExecutionFailed",
            Error::AnnounceFailed { .. } => "Pipeline.Retryable.AnnounceFailed",
        }
    }

    /// Every `error_type` name, retryable first; the docs and the state machine are checked
    /// against this list by the tests.
    pub const ALL_ERROR_TYPES: &'static [(&'static str, ErrorClass)] = &[
        ("Pipeline.Retryable.StoreThrottled", ErrorClass::Retryable),
        ("Pipeline.Retryable.StoreUnavailable", ErrorClass::Retryable),
        ("Pipeline.Retryable.EntityContended", ErrorClass::Retryable),
        ("Pipeline.Retryable.InjectedFault", ErrorClass::Retryable),
        ("Pipeline.Retryable.ExecutionFailed", ErrorClass::Retryable),
        ("Pipeline.Retryable.AnnounceFailed", ErrorClass::Retryable),
        ("Pipeline.Fatal.BadBatch", ErrorClass::Fatal),
        ("Pipeline.Fatal.UnrecognisedInput", ErrorClass::Fatal),
        ("Pipeline.Fatal.Config", ErrorClass::Fatal),
        ("Pipeline.Fatal.StoreRejected", ErrorClass::Fatal),
        ("Pipeline.Fatal.StoreCorrupt", ErrorClass::Fatal),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_type_prefix_matches_class() {
        let samples = [
            Error::Config("x".into()),
            Error::StoreThrottled {
                message: "x".into(),
                source: None,
            },
            Error::EntityContended {
                entity_id: "e".into(),
                attempts: 3,
            },
            Error::StoreCorrupt {
                key: "k".into(),
                message: "m".into(),
            },
        ];
        for e in samples {
            let prefix = match e.class() {
                ErrorClass::Retryable => "Pipeline.Retryable.",
                ErrorClass::Fatal => "Pipeline.Fatal.",
            };
            assert!(e.error_type().starts_with(prefix), "{}", e.error_type());
            assert!(
                Error::ALL_ERROR_TYPES
                    .iter()
                    .any(|(n, c)| *n == e.error_type() && *c == e.class())
            );
        }
    }
}
