//! Announcing new anomalies to consumers (EventBridge in the Lambda): the announcement's
//! shape and the [`Announcer`] boundary.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::Status;
use crate::Error;
use crate::detect::ScoredEvent;

/// An anomaly to announce to consumers (the Lambda publishes it on EventBridge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    /// Consumers de-duplicate on this.
    pub event_id: String,
    /// The entity.
    pub entity_id: String,
    /// The event's type.
    pub event_type: String,
    /// Event time, UTC.
    pub occurred_at: String,
    /// The event's version.
    pub version: u32,
    /// `persisted` or `updated`.
    pub status: Status,
    /// The score.
    pub score: f64,
    /// What fired.
    pub reasons: Vec<crate::detect::DetectReason>,
    /// The value as sent.
    pub value: f64,
    /// Its currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The value in the base currency.
    pub base_value: f64,
}

/// Where new anomalies are announced.
#[async_trait::async_trait]
pub trait Announcer: Send + Sync {
    /// Publishes the anomalies; an error fails the batch before any record is written, so a
    /// retry announces again (consumers de-duplicate on `event_id`).
    async fn announce(&self, anomalies: &[Announcement]) -> Result<(), Error>;
}

/// Announces nothing (the CLI, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAnnouncer;

#[async_trait::async_trait]
impl Announcer for NoAnnouncer {
    async fn announce(&self, _: &[Announcement]) -> Result<(), Error> {
        Ok(())
    }
}

pub(super) fn announcement(e: &ScoredEvent, status: Status) -> Announcement {
    Announcement {
        event_id: e.event.event_id.clone(),
        entity_id: e.event.entity_id.clone(),
        event_type: e.event.event_type.clone(),
        occurred_at: e
            .event
            .occurred_at
            .with_timezone(&Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        version: e.event.version,
        status,
        score: e.detection.score,
        reasons: e.detection.reasons.clone(),
        value: e.event.value,
        currency: e.event.currency.clone(),
        base_value: e.enrichment.base_value,
    }
}
