//! Who is at fault when an AWS call fails, decided once for every service the pipeline calls
//! (DynamoDB, Step Functions, EventBridge), from the SDK error's kind and the service's error
//! code: throttled and unavailable are worth retrying, rejected is not.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Service error codes that mean "slow down".
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    // Too many concurrent control-plane operations (CreateTable): also transient.
    "LimitExceededException",
];

/// Service error codes that mean "the service failed, try again", whatever the HTTP status.
const SERVER_CODES: &[&str] = &[
    "InternalServerError",
    "InternalException",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Whether a failed call is worth repeating, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The service shed load: retry with backoff.
    Throttled,
    /// The service could not be reached, timed out or failed internally: retry with backoff.
    Unavailable,
    /// The request itself is refused (access denied, validation, a missing resource, a
    /// request that cannot be built or sent): the same request fails the same way again.
    Rejected,
}

impl Cause {
    /// Classifies an SDK error.
    pub fn of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Cause {
        match err {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or_default();
                if THROTTLING_CODES.contains(&code) {
                    Cause::Throttled
                } else if SERVER_CODES.contains(&code) || se.raw().status().is_server_error() {
                    Cause::Unavailable
                } else {
                    Cause::Rejected
                }
            }
            // Built but not sendable: the same request fails the same way again.
            SdkError::ConstructionFailure(_) => Cause::Rejected,
            // A misconfigured client (no credentials, a bad endpoint) is the caller's to fix;
            // broken connections, timeouts and anything unclassified are transient.
            SdkError::DispatchFailure(d) if d.is_user() => Cause::Rejected,
            SdkError::DispatchFailure(_)
            | SdkError::TimeoutError(_)
            | SdkError::ResponseError(_) => Cause::Unavailable,
            // SdkError is non-exhaustive: a kind added later is assumed transient, like the
            // unclassified ones above.
            _ => Cause::Unavailable,
        }
    }

    /// Whether retrying may help.
    pub fn is_transient(self) -> bool {
        !matches!(self, Cause::Rejected)
    }
}

/// The service's error code and message, or the whole error chain for a failure without a
/// service response.
pub fn detail<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: &SdkError<E, HttpResponse>,
) -> String {
    match err {
        SdkError::ServiceError(se) => format!(
            "{}: {}",
            se.err().code().unwrap_or("unknown error"),
            se.err().message().unwrap_or("no message")
        ),
        other => DisplayErrorContext(other).to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use aws_sdk_dynamodb::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_dynamodb::operation::put_item::PutItemError;

    use super::*;

    type Err = SdkError<PutItemError, HttpResponse>;

    fn service(code: &str, status: u16) -> Err {
        let meta = ErrorMetadata::builder().code(code).message("m").build();
        let raw = HttpResponse::new(status.try_into().expect("status"), "".into());
        SdkError::service_error(PutItemError::generic(meta), raw)
    }

    fn raw() -> HttpResponse {
        HttpResponse::new(200u16.try_into().expect("status"), "".into())
    }

    /// One error of every kind the SDK has, with the fault each must get.
    fn every_kind() -> Vec<(&'static str, Err, Cause)> {
        vec![
            (
                "construction",
                SdkError::construction_failure("no region"),
                Cause::Rejected,
            ),
            (
                "timeout",
                SdkError::timeout_error("slow"),
                Cause::Unavailable,
            ),
            (
                "dispatch io",
                SdkError::dispatch_failure(ConnectorError::io("reset".into())),
                Cause::Unavailable,
            ),
            (
                "dispatch timeout",
                SdkError::dispatch_failure(ConnectorError::timeout("slow".into())),
                Cause::Unavailable,
            ),
            (
                "dispatch user",
                SdkError::dispatch_failure(ConnectorError::user("bad endpoint".into())),
                Cause::Rejected,
            ),
            (
                "dispatch other",
                SdkError::dispatch_failure(ConnectorError::other("?".into(), None)),
                Cause::Unavailable,
            ),
            (
                "response",
                SdkError::response_error("garbled", raw()),
                Cause::Unavailable,
            ),
            (
                "throttled",
                service("ThrottlingException", 400),
                Cause::Throttled,
            ),
            (
                "capacity",
                service("ProvisionedThroughputExceededException", 400),
                Cause::Throttled,
            ),
            (
                "eventbridge internal",
                service("InternalException", 400),
                Cause::Unavailable,
            ),
            ("5xx", service("Whatever", 503), Cause::Unavailable),
            (
                "access",
                service("AccessDeniedException", 400),
                Cause::Rejected,
            ),
            (
                "validation",
                service("ValidationException", 400),
                Cause::Rejected,
            ),
            (
                "not found",
                service("ResourceNotFoundException", 400),
                Cause::Rejected,
            ),
            (
                "sfn missing machine",
                service("StateMachineDoesNotExist", 400),
                Cause::Rejected,
            ),
        ]
    }

    #[test]
    fn every_sdk_error_kind_gets_its_fault() {
        for (what, err, want) in every_kind() {
            assert_eq!(Cause::of(&err), want, "{what}");
            assert_eq!(
                Cause::of(&err).is_transient(),
                want != Cause::Rejected,
                "{what}"
            );
            assert!(!detail(&err).is_empty(), "{what}");
        }
        // The cases cover every variant SdkError has today (the wildcard is the one its
        // non-exhaustive declaration requires; a new variant would land there).
        let kinds: std::collections::BTreeSet<usize> = every_kind()
            .into_iter()
            .map(|(_, err, _)| match err {
                SdkError::ConstructionFailure(_) => 0,
                SdkError::TimeoutError(_) => 1,
                SdkError::DispatchFailure(_) => 2,
                SdkError::ResponseError(_) => 3,
                SdkError::ServiceError(_) => 4,
                _ => 5,
            })
            .collect();
        assert_eq!(kinds, (0..5).collect());
    }
}
