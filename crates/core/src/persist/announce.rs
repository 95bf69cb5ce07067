//! Announcing new anomalies to consumers (EventBridge in the Lambda): the announcement's
//! shape and the [`Announcer`] boundary.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::Status;
use crate::Error;
use crate::detect::{IncidentRole, ScoredEvent};

/// What an announcement says happened to an incident (`docs/detection.md`, "Incidents").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnouncementKind {
    /// The event opened an incident.
    Opened,
    /// The event escalated an open incident (a new reason, or a much higher score).
    Escalated,
    /// The incident closed: the event is the entity's first after the quiet period.
    Closed,
}

/// An anomaly to announce to consumers (the Lambda publishes it on EventBridge): an
/// incident opened or escalated by the event, or an incident that the event's time closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    /// Consumers de-duplicate on this: the event id for `opened` and `escalated`,
    /// `<incident id>/closed` for `closed`.
    pub id: String,
    /// What happened.
    pub kind: AnnouncementKind,
    /// The incident's id (the id of the event that opened it).
    pub incident: String,
    /// For `closed`: the incident's first and last event, count and peak score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<crate::detect::IncidentSummary>,
    /// The event: the one that opened or escalated the incident, or for `closed` the
    /// entity's event whose time closed it.
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

/// The announcements the event makes once its record is written with `status` (`persisted`
/// or `updated`): the alert it raises (an incident opened or escalated), and the close of the
/// incident its time ended.
pub(super) fn announcements(e: &ScoredEvent, status: Status) -> Vec<Announcement> {
    let mut out = Vec::new();
    if e.detection.is_anomaly {
        let (kind, incident) = match &e.detection.incident {
            Some(r) if r.role == IncidentRole::Escalates => {
                (AnnouncementKind::Escalated, r.id.clone())
            }
            Some(r) => (AnnouncementKind::Opened, r.id.clone()),
            None => (AnnouncementKind::Opened, e.event.event_id.clone()),
        };
        out.push(announcement(
            e,
            status,
            e.event.event_id.clone(),
            kind,
            incident,
        ));
    }
    // A close is told once, by the new record whose time ended the incident (an update of
    // that record would tell it again).
    let new = status == Status::Persisted;
    if let Some(closed) = e.detection.closes.as_ref().filter(|_| new) {
        let mut a = announcement(
            e,
            status,
            format!("{}/closed", closed.id),
            AnnouncementKind::Closed,
            closed.id.clone(),
        );
        a.summary = Some(closed.clone());
        out.push(a);
    }
    out
}

fn announcement(
    e: &ScoredEvent,
    status: Status,
    id: String,
    kind: AnnouncementKind,
    incident: String,
) -> Announcement {
    Announcement {
        id,
        kind,
        incident,
        summary: None,
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
