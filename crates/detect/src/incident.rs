//! Incidents: one alert per episode of anomalies, not one per event.
//!
//! Per entity, an anomalous event (score at or above the threshold) with no incident open
//! **opens** one, named after that event's id. Later anomalous events of the entity join it
//! while it is open: they **continue** it (no alert; they keep their score and reasons and
//! carry the incident's id) unless they **escalate** it, with a reason code the incident has
//! not had yet or odds `s / (1 − s)` at least [`ESCALATION_ODDS`] times its peak's, which is
//! an alert again. The incident closes once `quiet` of event time has passed since its last
//! anomalous event (with `quiet` 0, every anomalous event is an incident of its own); the entity's first event after that reports it closed (there is no wall
//! clock in detection, so an entity that falls silent keeps its incident open until it
//! speaks again). Everything is event time, so the decision does not depend on where batches
//! split.

use serde::{Deserialize, Serialize};

use super::{DetectReason, Observation};

/// An escalation needs odds this many times the incident's peak.
pub const ESCALATION_ODDS: f64 = 10.0;

/// The open incident an entity's state keeps: what its close will announce, and the reason
/// codes it has had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Its id, first and latest anomalous event, count and peak.
    #[serde(flatten)]
    pub summary: IncidentSummary,
    /// The reason codes it has had, one bit each (see [`codes`]).
    pub codes: u8,
}

/// An event's part in an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentRole {
    /// It opened the incident: an alert.
    Opens,
    /// It raised the incident with a new reason or a much higher score: an alert.
    Escalates,
    /// One more anomalous event of an open incident: not an alert.
    Continues,
}

/// Which incident an anomalous event belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRef {
    /// The incident's id (the id of the event that opened it).
    pub id: String,
    /// The event's part in it.
    pub role: IncidentRole,
}

/// An incident as announced when it closes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSummary {
    /// The incident's id (the id of the event that opened it).
    pub id: String,
    /// Event time (ms) of its first event.
    pub opened_ms: i64,
    /// Its latest anomalous event in event time.
    pub last_event: String,
    /// Event time (ms) of that event.
    pub last_ms: i64,
    /// Anomalous events in it, the opening one included.
    pub events: u32,
    /// Its highest score.
    pub peak: f64,
}

/// What the detectors said of an event, as the incident logic reads it.
#[derive(Debug, Clone, Copy)]
pub struct Signal {
    /// The score reached the threshold.
    pub anomalous: bool,
    /// The score.
    pub score: f64,
    /// The reason codes that fired.
    pub codes: u8,
}

/// The incident logic's answer for one event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Whether the event is an alert (`is_anomaly`).
    pub alert: bool,
    /// Its incident.
    pub incident: Option<IncidentRef>,
    /// The incident its time closed.
    pub closes: Option<IncidentSummary>,
}

/// One bit per anomaly reason code (`late_event` is a note, not an anomaly).
pub fn codes(reasons: &[DetectReason]) -> u8 {
    reasons
        .iter()
        .map(|r| match r {
            DetectReason::ValueOutlier { .. } => 1,
            DetectReason::FailureVelocity { .. } => 2,
            DetectReason::EventVelocity { .. } => 4,
            DetectReason::NewCountry { .. } => 8,
            DetectReason::NewMerchant { .. } => 16,
            DetectReason::LateEvent { .. } => 0,
        })
        .fold(0, |a, b| a | b)
}

fn odds(score: f64) -> f64 {
    let s = score.clamp(0.0, 0.9999);
    s / (1.0 - s)
}

/// Decides the event's part in the entity's incident; with `update`, records it in `open`.
/// Without `update` (an event the state already absorbed, seen again) nothing changes, and
/// the event that opened the open incident is told it opened it again.
pub fn decide(
    open: &mut Option<Incident>,
    obs: &Observation<'_>,
    signal: Signal,
    quiet_ms: i64,
    update: bool,
) -> Verdict {
    let mut verdict = Verdict::default();
    if !update {
        if let Some(i) = open.as_ref().filter(|i| i.summary.id == obs.event_id) {
            verdict.alert = true;
            verdict.incident = Some(IncidentRef {
                id: i.summary.id.clone(),
                role: IncidentRole::Opens,
            });
            return verdict;
        }
    }
    // Open while less than the quiet period has passed: a quiet period of 0 makes every
    // anomalous event an incident, and an alert, of its own.
    let still_open = open
        .as_ref()
        .is_some_and(|i| obs.t_ms < i.summary.last_ms.saturating_add(quiet_ms));
    if !still_open && update {
        verdict.closes = open.take().map(|i| i.summary);
    }
    if !signal.anomalous {
        return verdict;
    }
    match open.as_mut().filter(|_| still_open) {
        None => {
            verdict.alert = true;
            verdict.incident = Some(IncidentRef {
                id: obs.event_id.to_owned(),
                role: IncidentRole::Opens,
            });
            if update {
                *open = Some(Incident {
                    summary: IncidentSummary {
                        id: obs.event_id.to_owned(),
                        opened_ms: obs.t_ms,
                        last_event: obs.event_id.to_owned(),
                        last_ms: obs.t_ms,
                        events: 1,
                        peak: signal.score,
                    },
                    codes: signal.codes,
                });
            }
        }
        Some(i) => {
            let escalates = signal.codes & !i.codes != 0
                || odds(signal.score) >= ESCALATION_ODDS * odds(i.summary.peak);
            verdict.alert = escalates;
            verdict.incident = Some(IncidentRef {
                id: i.summary.id.clone(),
                role: if escalates {
                    IncidentRole::Escalates
                } else {
                    IncidentRole::Continues
                },
            });
            if update {
                let s = &mut i.summary;
                if obs.t_ms >= s.last_ms {
                    s.last_ms = obs.t_ms;
                    s.last_event = obs.event_id.to_owned();
                }
                s.events = s.events.saturating_add(1);
                s.peak = s.peak.max(signal.score);
                i.codes |= signal.codes;
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Context;

    fn obs(id: &str, t_s: i64) -> Observation<'_> {
        Observation {
            event_id: id,
            id_hash: crate::hash64(id.as_bytes()),
            t_ms: t_s * 1000,
            value: 0.0,
            failure: false,
            country: None,
            merchant: None,
            ctx: Context::default(),
        }
    }

    fn sig(score: f64, codes: u8) -> Signal {
        Signal {
            anomalous: score >= 0.5,
            score,
            codes,
        }
    }

    const QUIET: i64 = 3_600_000;

    #[test]
    fn an_episode_alerts_once_then_closes_after_the_quiet_period() {
        let mut open = None;
        let first = decide(&mut open, &obs("a", 0), sig(0.8, 1), QUIET, true);
        assert!(first.alert);
        assert_eq!(first.incident.as_ref().unwrap().role, IncidentRole::Opens);
        for (k, t) in [60, 600, 3000].into_iter().enumerate() {
            let v = decide(
                &mut open,
                &obs(&format!("c{k}"), t),
                sig(0.9, 1),
                QUIET,
                true,
            );
            assert!(!v.alert, "{v:?}");
            assert_eq!(
                v.incident.unwrap(),
                IncidentRef {
                    id: "a".into(),
                    role: IncidentRole::Continues
                }
            );
        }
        // An ordinary event within the quiet period changes nothing.
        let quiet = decide(&mut open, &obs("q", 3000 + 3599), sig(0.1, 0), QUIET, true);
        assert_eq!(quiet, Verdict::default());
        // The first event past it reports the incident closed; an anomaly there opens anew.
        let next = decide(&mut open, &obs("n", 3000 + 3601), sig(0.8, 1), QUIET, true);
        let closed = next.closes.unwrap();
        assert_eq!((closed.id.as_str(), closed.events), ("a", 4));
        assert_eq!(
            (closed.last_event.as_str(), closed.last_ms),
            ("c2", 3_000_000)
        );
        assert_eq!(closed.peak, 0.9);
        assert!(next.alert);
        assert_eq!(next.incident.unwrap().id, "n");
    }

    #[test]
    fn a_new_reason_or_a_much_higher_score_escalates() {
        let mut open = None;
        decide(&mut open, &obs("a", 0), sig(0.6, 1), QUIET, true);
        // Odds 0.6/0.4 = 1.5: odds 9 do not escalate, and become the peak; so do odds 19
        // (under 10 × 9); then odds 999 do (over 10 × 19).
        let below = decide(&mut open, &obs("b", 10), sig(0.9, 1), QUIET, true);
        assert!(!below.alert);
        let still = decide(&mut open, &obs("b2", 15), sig(0.95, 1), QUIET, true);
        assert!(!still.alert);
        let above = decide(&mut open, &obs("c", 20), sig(0.999, 1), QUIET, true);
        assert!(above.alert);
        assert_eq!(above.incident.unwrap().role, IncidentRole::Escalates);
        let new_reason = decide(&mut open, &obs("d", 30), sig(0.6, 2), QUIET, true);
        assert!(new_reason.alert);
        let again = decide(&mut open, &obs("e", 40), sig(0.6, 3), QUIET, true);
        assert!(!again.alert);
        assert_eq!(open.unwrap().summary.events, 6);
    }

    #[test]
    fn with_no_quiet_period_every_anomalous_event_is_an_alert() {
        let mut open = None;
        for (k, t) in [0, 0, 60].into_iter().enumerate() {
            let v = decide(&mut open, &obs(&format!("e{k}"), t), sig(0.8, 1), 0, true);
            assert!(v.alert, "{k}: {v:?}");
            assert_eq!(v.incident.unwrap().role, IncidentRole::Opens);
        }
    }

    #[test]
    fn an_event_seen_again_changes_nothing_and_opens_nothing_new() {
        let mut open = None;
        decide(&mut open, &obs("a", 0), sig(0.8, 1), QUIET, true);
        let before = open.clone();
        let again = decide(&mut open, &obs("a", 0), sig(0.8, 1), QUIET, false);
        assert!(again.alert);
        assert_eq!(again.incident.unwrap().role, IncidentRole::Opens);
        let later = decide(&mut open, &obs("b", 7200), sig(0.8, 1), QUIET, false);
        assert!(later.closes.is_none());
        assert_eq!(open, before);
    }
}
