//! pipeline-backfill: loading history through the backfill state machine
//! (statemachines/backfill.asl.json, a Step Functions Distributed Map; docs/backfill.md).
//!
//! [`plan()`] turns JSON Lines inputs into shards (a stable hash of the entity), each ordered by
//! event time and cut into the batch documents ingest cuts, and a manifest listing every shard's
//! objects in the order its child execution runs them; no AWS. With feature `aws`, [`aws`]
//! uploads them, starts and follows the execution, and reconciles the shards' reports against
//! the plan. The `pipeline backfill` command (crates/cli) parses, shows progress and prints.

#[cfg(feature = "aws")]
pub mod aws;
pub mod plan;

pub use plan::{MAX_BATCHES_PER_SHARD, ManifestBatch, ManifestShard, Objects, Plan, plan, plan_id};

/// What can stop a backfill.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading an input or a spill file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A document could not be encoded or decoded (a manifest, a batch, a shard's reports).
    #[error("{what}: {source}")]
    Json {
        /// What it was.
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// One shard would hold more batches than one child execution can run.
    #[error(
        "shard {shard} would hold {batches} batches, more than the {MAX_BATCHES_PER_SHARD} one child execution can run: use more --shards (about {suggested} for this input)"
    )]
    ShardTooLarge {
        /// The shard.
        shard: u32,
        /// Its batches.
        batches: usize,
        /// Shards that would do.
        suggested: usize,
    },
    /// An AWS call failed for good (after the SDK's own retries); the cause chain carries the
    /// service's error code and message.
    #[error("{operation} failed")]
    Call {
        /// The call and what it was about, e.g. `PutObject s3://bucket/key`.
        operation: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    #[cfg(feature = "aws")]
    pub(crate) fn call(
        operation: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Call {
            operation: operation.into(),
            source: Box::new(source),
        }
    }
}
