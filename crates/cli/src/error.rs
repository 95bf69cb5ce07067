//! The `pipeline` command's error type.

/// Everything that can stop a `pipeline` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The embedded database could not be opened or read.
    #[error("database {path}: {source}")]
    Db {
        /// The database file.
        path: String,
        /// The store error.
        #[source]
        source: pipeline_sqlite::Error,
    },
    /// A stage or store failed for the whole batch.
    #[error(transparent)]
    Pipeline(#[from] pipeline_core::Error),
    /// The input is a JSON document of a shape the command does not know.
    #[error("{path}: {message}")]
    Input {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Nothing found.
    #[error("{0}")]
    NotFound(String),
    /// A setting the command needs is missing or out of range; the message says which flag or
    /// environment variable to set.
    #[error("{0}")]
    Config(String),
    /// An AWS API call failed for good (after the SDK's own retries). The cause chain carries
    /// the service's error code and message.
    // Built only from `pipeline_aws::Error` (feature `aws`); kept without it for the report.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    #[error("{operation} failed")]
    Aws {
        /// The call and what it was about, e.g. `ListExecutions on arn:...`.
        operation: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// What the operator commands' AWS calls (`pipeline_aws::watch`, `logs`, `send`) fail with:
/// the call and its cause chain, as [`CliError::Aws`] keeps them.
#[cfg(feature = "aws")]
impl From<pipeline_aws::Error> for CliError {
    fn from(e: pipeline_aws::Error) -> Self {
        match e {
            pipeline_aws::Error::Call { operation, source } => CliError::Aws { operation, source },
            other => CliError::Aws {
                operation: "AWS".into(),
                source: Box::new(other),
            },
        }
    }
}

impl From<pipeline_backfill::Error> for CliError {
    fn from(e: pipeline_backfill::Error) -> Self {
        match e {
            pipeline_backfill::Error::Io { path, source } => CliError::Io { path, source },
            pipeline_backfill::Error::ShardTooLarge { .. } => CliError::Config(e.to_string()),
            pipeline_backfill::Error::Call { operation, source } => {
                CliError::Aws { operation, source }
            }
            pipeline_backfill::Error::Json { what, source } => CliError::Input {
                path: what,
                message: source.to_string(),
            },
        }
    }
}

impl From<pipeline_corpus::nab::Error> for CliError {
    fn from(e: pipeline_corpus::nab::Error) -> Self {
        match e {
            pipeline_corpus::nab::Error::Io { path, source } => CliError::Io { path, source },
            pipeline_corpus::nab::Error::Bad { path, message } => CliError::Input { path, message },
        }
    }
}

// Reading a dump already in memory cannot fail (`pipeline_report::Records for StoreDump`).
impl From<std::convert::Infallible> for CliError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl CliError {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            path: path.into(),
            source,
        }
    }
}
