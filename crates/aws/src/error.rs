//! The DynamoDB adapter's error type, and how it maps onto the core's [`pipeline_core::Error`].
//!
//! Every SDK failure is classified once, where it happens, by who is at fault and whether a
//! retry can help; the SDK error itself is kept as the `source`, so logs show the service's
//! error code, message and request id. The SDK has already retried throttling and transient
//! failures (see [`crate::dynamodb_config`]) by the time one of these is built, so
//! [`Error::Throttled`] and [`Error::Unavailable`] mean "still failing after the retries":
//! the core reports them as retryable and the state machine retries the batch later.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BoxError, ProvideErrorMetadata, SdkError};
use pipeline_core::Error as CoreError;

use crate::cause::{self, Cause};

/// What can go wrong talking to DynamoDB or decoding what it holds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// DynamoDB kept throttling the request through every SDK retry; try again later, or raise
    /// the table's capacity.
    #[error("dynamodb {operation} on {table} was throttled after all retries: {detail}")]
    Throttled {
        /// The API operation.
        operation: &'static str,
        /// The table.
        table: String,
        /// The service's error code and message.
        detail: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// DynamoDB could not be reached, timed out or failed internally; try again later.
    #[error(
        "dynamodb {operation} on {table} failed (unreachable, timed out or a server error): {detail}"
    )]
    Unavailable {
        /// The API operation.
        operation: &'static str,
        /// The table.
        table: String,
        /// What happened.
        detail: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// DynamoDB refused the request (validation, permissions, missing table); retrying the same
    /// request will not help: check the table names, the IAM policy and the table schema.
    #[error("dynamodb {operation} on {table} was rejected: {detail}")]
    Rejected {
        /// The API operation.
        operation: &'static str,
        /// The table.
        table: String,
        /// The service's error code and message.
        detail: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// A batch read still had unprocessed keys after the bounded retries; try again later.
    #[error(
        "dynamodb BatchGetItem on {table} left {remaining} keys unprocessed after {attempts} attempts"
    )]
    Unprocessed {
        /// The table.
        table: String,
        /// Keys still unread.
        remaining: usize,
        /// Requests made.
        attempts: usize,
    },
    /// A stored item's JSON document does not decode; inspect the item, it was not written by
    /// this version of the pipeline.
    #[error("item {key} of table {table} does not decode: {source}")]
    Decode {
        /// The table.
        table: String,
        /// The item's key.
        key: String,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored item lacks an attribute every item of its table has.
    #[error("item {key} of table {table} has no string attribute {attribute}")]
    MissingAttribute {
        /// The table.
        table: String,
        /// The item's key.
        key: String,
        /// The missing attribute.
        attribute: &'static str,
    },
    /// A document could not be encoded as JSON (a bug: the pipeline's types always encode).
    #[error("cannot encode a {what} as JSON: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encode error.
        #[source]
        source: serde_json::Error,
    },
    /// A request could not be built (a bug: a required field is missing).
    #[error("cannot build a dynamodb {what}: {source}")]
    Build {
        /// What was being built.
        what: &'static str,
        /// The builder's error.
        #[source]
        source: aws_sdk_dynamodb::error::BuildError,
    },
    /// A call of the operator commands (`pipeline send`, `watch`, `logs`: Step Functions,
    /// CloudWatch, CloudWatch Logs, EventBridge) failed for good, after the SDK's own retries.
    /// The cause chain carries the service's error code and message.
    #[error("{operation} failed")]
    Call {
        /// The call and what it was about, e.g. `ListExecutions on arn:...`.
        operation: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// A created table did not become ACTIVE in time; check it in the console and run again.
    #[error("table {table} did not become active: {source}")]
    NotActive {
        /// The table.
        table: String,
        /// The waiter's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Wraps a failed call of an operator command with what it was about.
    pub fn call(
        operation: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Call {
            operation: operation.into(),
            source: Box::new(source),
        }
    }

    /// Classifies an SDK error of `operation` on `table`, keeping it as the source.
    pub(crate) fn sdk<E>(
        operation: &'static str,
        table: &str,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let cause = Cause::of(&err);
        let detail = cause::detail(&err);
        let table = table.to_owned();
        let source: BoxError = Box::new(err);
        match cause {
            Cause::Throttled => Error::Throttled {
                operation,
                table,
                detail,
                source,
            },
            Cause::Unavailable => Error::Unavailable {
                operation,
                table,
                detail,
                source,
            },
            Cause::Rejected => Error::Rejected {
                operation,
                table,
                detail,
                source,
            },
        }
    }
}

impl From<Error> for CoreError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Throttled { .. } | Error::Unprocessed { .. } => CoreError::StoreThrottled {
                message,
                source: Some(Box::new(e)),
            },
            Error::Unavailable { .. } | Error::NotActive { .. } => CoreError::StoreUnavailable {
                message,
                source: Some(Box::new(e)),
            },
            Error::Rejected { .. }
            | Error::Encode { .. }
            | Error::Build { .. }
            | Error::Call { .. } => CoreError::StoreRejected {
                message,
                source: Some(Box::new(e)),
            },
            Error::Decode { key, .. } | Error::MissingAttribute { key, .. } => {
                CoreError::StoreCorrupt { key, message }
            }
        }
    }
}

/// An error and its causes on one line, as the operator commands print them.
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use pipeline_core::ErrorClass;

    fn service_error(code: &str, status: u16) -> SdkError<PutItemError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("m").build();
        let raw = HttpResponse::new(status.try_into().expect("status"), "".into());
        SdkError::service_error(PutItemError::generic(meta), raw)
    }

    fn core(e: Error) -> CoreError {
        e.into()
    }

    #[test]
    fn classifies_service_errors() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
        ] {
            let e = core(Error::sdk("PutItem", "t", service_error(code, 400)));
            assert_eq!(
                e.error_type(),
                "Pipeline.Retryable.StoreThrottled",
                "{code}"
            );
        }
        let e = core(Error::sdk(
            "PutItem",
            "t",
            service_error("InternalServerError", 500),
        ));
        assert_eq!(e.error_type(), "Pipeline.Retryable.StoreUnavailable");
        let e = core(Error::sdk("PutItem", "t", service_error("Whatever", 503)));
        assert_eq!(e.error_type(), "Pipeline.Retryable.StoreUnavailable");
        for code in [
            "ValidationException",
            "AccessDeniedException",
            "ResourceNotFoundException",
        ] {
            let e = core(Error::sdk("PutItem", "t", service_error(code, 400)));
            assert_eq!(e.error_type(), "Pipeline.Fatal.StoreRejected", "{code}");
            assert_eq!(e.class(), ErrorClass::Fatal);
        }
    }

    #[test]
    fn timeouts_are_unavailable_and_keep_the_source() {
        let err: SdkError<PutItemError, HttpResponse> = SdkError::timeout_error("slow");
        let e = core(Error::sdk("PutItem", "t", err));
        assert_eq!(e.error_type(), "Pipeline.Retryable.StoreUnavailable");
        let source = std::error::Error::source(&e)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(source.contains("PutItem"), "{source}");
    }

    #[test]
    fn bad_json_is_corrupt() {
        let source = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let e = core(Error::Decode {
            table: "t".into(),
            key: "k".into(),
            source,
        });
        assert_eq!(e.error_type(), "Pipeline.Fatal.StoreCorrupt");
    }
}
