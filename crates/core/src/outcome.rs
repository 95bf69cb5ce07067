//! The outcome of one input: what every stage and store reports and counts (`persisted`,
//! `duplicate`, `updated`, `stale`, `conflict`, `quarantined`). Its own module because both the
//! store (a replayed quarantine entry records it) and persistence (which decides it) name it.

use serde::{Deserialize, Serialize};

/// The outcome of one event, as reported per event and counted in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A new record was written.
    Persisted,
    /// The same event was already stored: nothing written.
    Duplicate,
    /// A higher version replaced the stored record.
    Updated,
    /// A higher version is already stored: nothing written.
    Stale,
    /// Same version, different content: quarantined, nothing overwritten.
    Conflict,
    /// Failed a stage: quarantined.
    Quarantined,
}

impl Status {
    /// All statuses, in report order.
    pub const ALL: [Status; 6] = [
        Status::Persisted,
        Status::Duplicate,
        Status::Updated,
        Status::Stale,
        Status::Conflict,
        Status::Quarantined,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Persisted => "persisted",
            Status::Duplicate => "duplicate",
            Status::Updated => "updated",
            Status::Stale => "stale",
            Status::Conflict => "conflict",
            Status::Quarantined => "quarantined",
        }
    }
}
