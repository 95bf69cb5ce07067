//! The error every handler returns.
//!
//! Lambda reports an error's `error_type`; by default that is a Rust type name no state machine
//! can match. [`FunctionError`] reports the core's stable names instead
//! (`Pipeline.Retryable.*` / `Pipeline.Fatal.*`, listed in `docs/errors.md`).

use lambda_runtime::Diagnostic;

/// A handler failure: the whole invocation failed (bad events never cause one).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct FunctionError(#[from] pub pipeline_core::Error);

impl FunctionError {
    /// The stable `error_type`.
    pub fn error_type(&self) -> &'static str {
        self.0.error_type()
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Diagnostic {
        Diagnostic {
            error_type: e.error_type().to_owned(),
            error_message: e.0.to_string(),
        }
    }
}
