//! Incidents as the stored records tell them: every record of an incident carries its id and
//! the event whose time closed it carries its summary, so folding the records one at a time
//! gives each incident's events, alerts, peak and state. `anomalies --incidents` and the report
//! list them.

use std::collections::HashMap;

use pipeline_core::store::EventRecord;

/// One incident as the stored records tell it: every record of the incident carries its id,
/// and the event whose time closed it carries its summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IncidentRow {
    /// The incident's id: the id of the event that opened it.
    pub id: String,
    /// Its entity.
    pub entity_id: String,
    /// Event time of its earliest stored event.
    pub first_at: String,
    /// Its latest stored event in event time.
    pub last_event: String,
    /// Event time of that event.
    pub last_at: String,
    /// Stored events in it (the opening one, escalations and continuations).
    pub events: usize,
    /// Of those, the alerts (`is_anomaly`: the opening event and the escalations).
    pub alerts: usize,
    /// Its highest stored score.
    pub peak: f64,
    /// Whether a later event closed it (its quiet period passed); else it is still open.
    pub closed: bool,
}

/// The incidents of the records folded in, newest first (by their latest event, then id).
/// A record carries its incident's id, so the counts are exact for what the store holds; an
/// incident is closed when some record says it closed it. One record at a time, so that a
/// read can stream the store.
#[derive(Default)]
pub struct Incidents {
    rows: HashMap<(String, String), IncidentRow>,
    closed: std::collections::HashSet<(String, String)>,
}

impl Incidents {
    /// Folds in one record.
    pub fn add(&mut self, r: &EventRecord) {
        if let Some(c) = &r.detection.closes {
            self.closed.insert((r.entity_id.clone(), c.id.clone()));
        }
        let Some(i) = &r.detection.incident else {
            return;
        };
        let row = self
            .rows
            .entry((r.entity_id.clone(), i.id.clone()))
            .or_insert_with(|| IncidentRow {
                id: i.id.clone(),
                entity_id: r.entity_id.clone(),
                first_at: r.occurred_at.clone(),
                last_event: r.event_id.clone(),
                last_at: r.occurred_at.clone(),
                events: 0,
                alerts: 0,
                peak: 0.0,
                closed: false,
            });
        row.events += 1;
        row.alerts += usize::from(r.detection.is_anomaly);
        row.peak = row.peak.max(r.detection.score);
        // Stored times are RFC 3339 with milliseconds in UTC: they order as text.
        if r.occurred_at < row.first_at {
            row.first_at.clone_from(&r.occurred_at);
        }
        if r.occurred_at > row.last_at
            || (r.occurred_at == row.last_at && r.event_id > row.last_event)
        {
            row.last_at.clone_from(&r.occurred_at);
            row.last_event.clone_from(&r.event_id);
        }
    }

    /// The incidents, newest first.
    pub fn finish(self) -> Vec<IncidentRow> {
        let closed = self.closed;
        let mut out: Vec<IncidentRow> = self
            .rows
            .into_iter()
            .map(|(key, mut row)| {
                row.closed = closed.contains(&key);
                row
            })
            .collect();
        out.sort_by(|a, b| {
            b.last_at
                .cmp(&a.last_at)
                .then_with(|| a.entity_id.cmp(&b.entity_id))
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }
}
