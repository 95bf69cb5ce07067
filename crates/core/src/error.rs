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
    /// Ingest could not fetch a schema version from the AWS Glue Schema Registry (throttled,
    /// unreachable, a 5xx): the invocation fails so that the batch is delivered again.
    #[error("could not fetch Glue schema version {version_id}: {detail}")]
    SchemaUnavailable {
        /// The schema version id the records name.
        version_id: String,
        /// What the service said.
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
    /// An AWS service other than the store (Step Functions, EventBridge) refused a request for a
    /// reason retrying will not fix: access denied, validation, a missing resource.
    #[error("{service} rejected the request: {message}")]
    ServiceRejected {
        /// The service.
        service: &'static str,
        /// What was being done, and the service's error code and message.
        message: String,
        /// The SDK error.
        #[source]
        source: Option<BoxError>,
    },
    /// Another writer kept changing an event's record between our read and our conditional
    /// write.
    #[error("record {event_id} changed concurrently in {rounds} write rounds in a row; try again")]
    RecordContended {
        /// The contended event.
        event_id: String,
        /// How many write rounds were made.
        rounds: u32,
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

/// Declares [`ErrorKind`], its [`ErrorKind::ALL`] and its names from one list, so that a kind
/// cannot be added without a name or be left out of the list.
macro_rules! error_kinds {
    ($($kind:ident => $name:literal,)*) => {
        /// Every kind of [`Error`], without its data: the one place each kind's stable name
        /// (and, through its prefix, its class) is written down.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $(
                #[doc = concat!("[`Error::", stringify!($kind), "`]: `", $name, "`.")]
                $kind,
            )*
        }

        impl ErrorKind {
            /// Every kind, retryable first.
            pub const ALL: [ErrorKind; [$(stringify!($kind)),*].len()] = [$(ErrorKind::$kind),*];

            /// The stable `error_type` reported to Lambda and matched by the state machine:
            /// retryable names start with `Pipeline.Retryable.`, fatal ones with
            /// `Pipeline.Fatal.`; the full list is in `docs/errors.md`.
            pub const fn error_type(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $name,)*
                }
            }
        }
    };
}

error_kinds! {
    StoreThrottled => "Pipeline.Retryable.StoreThrottled",
    StoreUnavailable => "Pipeline.Retryable.StoreUnavailable",
    EntityContended => "Pipeline.Retryable.EntityContended",
    RecordContended => "Pipeline.Retryable.RecordContended",
    InjectedFault => "Pipeline.Retryable.InjectedFault",
    ExecutionFailed => "Pipeline.Retryable.ExecutionFailed",
    AnnounceFailed => "Pipeline.Retryable.AnnounceFailed",
    SchemaUnavailable => "Pipeline.Retryable.SchemaUnavailable",
    BadBatch => "Pipeline.Fatal.BadBatch",
    UnrecognisedInput => "Pipeline.Fatal.UnrecognisedInput",
    Config => "Pipeline.Fatal.Config",
    StoreRejected => "Pipeline.Fatal.StoreRejected",
    StoreCorrupt => "Pipeline.Fatal.StoreCorrupt",
    ServiceRejected => "Pipeline.Fatal.ServiceRejected",
}

impl ErrorKind {
    /// Whether retrying the same batch may help: read off the name, so the two cannot disagree.
    pub const fn class(self) -> ErrorClass {
        let name = self.error_type().as_bytes();
        let prefix = b"Pipeline.Retryable.";
        let mut i = 0;
        while i < prefix.len() {
            if i >= name.len() || name[i] != prefix[i] {
                return ErrorClass::Fatal;
            }
            i += 1;
        }
        ErrorClass::Retryable
    }
}

impl Error {
    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadBatch { .. } => ErrorKind::BadBatch,
            Error::UnrecognisedInput(_) => ErrorKind::UnrecognisedInput,
            Error::Config(_) => ErrorKind::Config,
            Error::StoreThrottled { .. } => ErrorKind::StoreThrottled,
            Error::StoreUnavailable { .. } => ErrorKind::StoreUnavailable,
            Error::StoreRejected { .. } => ErrorKind::StoreRejected,
            Error::StoreCorrupt { .. } => ErrorKind::StoreCorrupt,
            Error::InjectedFault { .. } => ErrorKind::InjectedFault,
            Error::ExecutionFailed { .. } => ErrorKind::ExecutionFailed,
            Error::AnnounceFailed { .. } => ErrorKind::AnnounceFailed,
            Error::SchemaUnavailable { .. } => ErrorKind::SchemaUnavailable,
            Error::ServiceRejected { .. } => ErrorKind::ServiceRejected,
            Error::RecordContended { .. } => ErrorKind::RecordContended,
            Error::EntityContended { .. } => ErrorKind::EntityContended,
        }
    }

    /// Whether retrying the same batch may help.
    pub fn class(&self) -> ErrorClass {
        self.kind().class()
    }

    /// The stable `error_type` reported to Lambda and matched by the state machine.
    pub fn error_type(&self) -> &'static str {
        self.kind().error_type()
    }

    /// Every `error_type` name with its class, retryable first; the docs and the state machine
    /// are checked against this list by the tests.
    pub const ALL_ERROR_TYPES: [(&'static str, ErrorClass); ErrorKind::ALL.len()] = {
        let mut out = [("", ErrorClass::Fatal); ErrorKind::ALL.len()];
        let mut i = 0;
        while i < out.len() {
            out[i] = (ErrorKind::ALL[i].error_type(), ErrorKind::ALL[i].class());
            i += 1;
        }
        out
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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

    /// One error of each kind. The match has no wildcard: a new kind does not compile until
    /// it is added here; [`Error::kind`] likewise for a new variant.
    fn sample(kind: ErrorKind) -> Error {
        let source = || serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        match kind {
            ErrorKind::BadBatch => Error::BadBatch {
                expected: "batch",
                source: source(),
            },
            ErrorKind::UnrecognisedInput => Error::UnrecognisedInput("x".into()),
            ErrorKind::Config => Error::Config("x".into()),
            ErrorKind::StoreThrottled => Error::StoreThrottled {
                message: "x".into(),
                source: None,
            },
            ErrorKind::StoreUnavailable => Error::StoreUnavailable {
                message: "x".into(),
                source: None,
            },
            ErrorKind::StoreRejected => Error::StoreRejected {
                message: "x".into(),
                source: None,
            },
            ErrorKind::StoreCorrupt => Error::StoreCorrupt {
                key: "k".into(),
                message: "m".into(),
            },
            ErrorKind::InjectedFault => Error::InjectedFault {
                stage: "enrich",
                event_id: "e".into(),
            },
            ErrorKind::ExecutionFailed => Error::ExecutionFailed {
                execution: "x".into(),
                status: "FAILED".into(),
                detail: "d".into(),
            },
            ErrorKind::AnnounceFailed => Error::AnnounceFailed {
                failed: 1,
                detail: "d".into(),
            },
            ErrorKind::SchemaUnavailable => Error::SchemaUnavailable {
                version_id: "v".into(),
                detail: "d".into(),
            },
            ErrorKind::ServiceRejected => Error::ServiceRejected {
                service: "eventbridge",
                message: "m".into(),
                source: None,
            },
            ErrorKind::RecordContended => Error::RecordContended {
                event_id: "e".into(),
                rounds: 3,
            },
            ErrorKind::EntityContended => Error::EntityContended {
                entity_id: "e".into(),
                attempts: 3,
            },
        }
    }

    #[test]
    fn every_kind_is_listed_once_with_a_name_that_matches_its_class() {
        let mut names = std::collections::BTreeSet::new();
        for kind in ErrorKind::ALL {
            let e = sample(kind);
            assert_eq!(e.kind(), kind);
            assert!(names.insert(e.error_type()), "{} twice", e.error_type());
            let prefix = match e.class() {
                ErrorClass::Retryable => "Pipeline.Retryable.",
                ErrorClass::Fatal => "Pipeline.Fatal.",
            };
            assert!(e.error_type().starts_with(prefix), "{}", e.error_type());
        }
        // Retryable first, as the docs list them.
        let first_fatal = Error::ALL_ERROR_TYPES
            .iter()
            .position(|(_, c)| *c == ErrorClass::Fatal)
            .unwrap_or(Error::ALL_ERROR_TYPES.len());
        assert!(
            Error::ALL_ERROR_TYPES[first_fatal..]
                .iter()
                .all(|(_, c)| *c == ErrorClass::Fatal)
        );
        assert!(
            ErrorKind::ALL
                .iter()
                .any(|k| k.class() == ErrorClass::Retryable)
        );
        assert!(
            ErrorKind::ALL
                .iter()
                .any(|k| k.class() == ErrorClass::Fatal)
        );
    }
}
