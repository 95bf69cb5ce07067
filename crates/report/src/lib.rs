//! pipeline-report: the figures and the one self-contained HTML page of `pipeline report`,
//! showing what a run stored and what the detector made of it.
//!
//! Anomaly detection is judged by looking at a series with its flags on it, so the report
//! draws, per entity, the value over event time with the range the detector expected, every
//! anomaly marked (reasons on hover and in a table beside the chart) and the non-value flags
//! (failure and event bursts, new countries and merchants, late events) on a track of their
//! own; with `--labels`, the labelled windows behind the series and the evaluation figures.
//!
//! It reads a store (the embedded file or DynamoDB), not a run's output, so it also shows
//! what several runs or a deployment accumulated. [`build`] gathers the figures from any
//! [`Records`]; [`render`] draws them; [`incidents`] folds stored records into incidents (also
//! for `anomalies --incidents`). The expected range is not stored with each record (it would
//! cost every record bytes at every boundary), so it is recomputed by running the entity's
//! records through a fresh detector in the order they were processed (input line order for a
//! local run, event time otherwise): the same code and configuration give the same range the
//! detector used, which a test checks against the ranges stored in value-outlier reasons.

mod chart;
mod format;
mod html;
pub mod incidents;

use std::collections::{BTreeMap, HashMap};

use pipeline_core::detect::{
    DetectConfig, DetectReason, EntityState, Observation, ObservationOf, observe,
};
use pipeline_core::evaluate::{Evaluation, Label, Outcome, Prepared};
use pipeline_core::event::Provenance;
use pipeline_core::store::{EventRecord, QuarantineRecord, RecordStatus, StoreDump};

pub use html::render;

/// Where a report reads its records: every one once for the figures, then those of the
/// entities it draws. One record at a time, so that a store of millions is never held whole.
pub trait Records {
    /// What reading can fail with.
    type Error;

    /// Calls `f` with every record, or with those of `only`.
    fn each_event(
        &self,
        only: Option<&[String]>,
        f: &mut dyn FnMut(&EventRecord),
    ) -> Result<(), Self::Error>;
}

impl Records for StoreDump {
    type Error = std::convert::Infallible;

    fn each_event(
        &self,
        only: Option<&[String]>,
        f: &mut dyn FnMut(&EventRecord),
    ) -> Result<(), Self::Error> {
        for r in &self.events {
            if only.is_none_or(|ids| ids.contains(&r.entity_id)) {
                f(r);
            }
        }
        Ok(())
    }
}

/// Which entities to draw.
#[derive(Debug, Clone)]
pub enum Choice {
    /// These, in this order.
    Named(Vec<String>),
    /// The n with most anomalies (then highest score, then most events).
    MostAnomalous(usize),
}

/// Everything the page shows.
#[derive(Debug)]
pub struct Report {
    /// Whole-store figures.
    pub summary: Summary,
    /// With labels: the product's `is_anomaly` scored against them.
    pub evaluation: Option<Evaluation>,
    /// The entities drawn.
    pub entities: Vec<EntityView>,
    /// Named entities with no record.
    pub missing: Vec<String>,
    /// Every incident of the store, newest first.
    pub incidents: Vec<incidents::IncidentRow>,
}

/// Figures over the whole store.
#[derive(Debug, Default)]
pub struct Summary {
    /// Stored records.
    pub records: usize,
    /// Records written once.
    pub persisted: usize,
    /// Records replaced by a correction.
    pub updated: usize,
    /// Entities with records.
    pub entities: usize,
    /// Records flagged `is_anomaly`.
    pub anomalies: usize,
    /// Flagged records per reason code (a record counts once per code).
    pub anomaly_reasons: BTreeMap<String, usize>,
    /// Quarantine entries.
    pub quarantine: usize,
    /// Entries replayed successfully since.
    pub replayed: usize,
    /// Entries per reason code (an entry counts once per code).
    pub quarantine_reasons: BTreeMap<String, usize>,
    /// Entries per stage.
    pub quarantine_stages: BTreeMap<String, usize>,
    /// `received − occurred`: how late events reached the pipeline.
    pub ingestion_lag: Option<Lag>,
    /// `first persisted − received`: how long the pipeline took.
    pub pipeline_lag: Option<Lag>,
}

/// Percentiles of a lag, ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Median.
    pub p50_ms: i64,
    /// 95th percentile.
    pub p95_ms: i64,
    /// Largest.
    pub max_ms: i64,
}

/// One entity's series.
#[derive(Debug)]
pub struct EntityView {
    /// The entity.
    pub entity_id: String,
    /// Its records, in the order the detector saw them.
    pub points: Vec<Point>,
    /// Labelled windows (ms, inclusive), when labels were given.
    pub windows: Vec<(i64, i64)>,
}

impl EntityView {
    /// Records flagged `is_anomaly`.
    pub fn anomalies(&self) -> usize {
        self.points.iter().filter(|p| p.is_anomaly).count()
    }
}

/// One record as drawn.
#[derive(Debug, Clone)]
pub struct Point {
    /// The event.
    pub event_id: String,
    /// Event time, ms.
    pub t_ms: i64,
    /// Base-currency value (what the detector scored).
    pub value: f64,
    /// The range the detector expected before it saw this value; `None` while it warms up.
    pub band: Option<[f64; 2]>,
    /// The stored verdict.
    pub score: f64,
    /// The stored verdict.
    pub is_anomaly: bool,
    /// The stored reasons.
    pub reasons: Vec<DetectReason>,
}

/// What the first pass keeps of one entity: enough to rank it.
#[derive(Default)]
struct EntityTally {
    flagged: usize,
    top: f64,
    records: usize,
}

/// Gathers the figures of `records` (and of `quarantine`) and the series of the chosen
/// entities, in two passes over the records.
pub fn build<R: Records + ?Sized>(
    records: &R,
    quarantine: &[QuarantineRecord],
    cfg: &DetectConfig,
    labels: Option<&[Label]>,
    choice: &Choice,
) -> Result<Report, R::Error> {
    let mut summary = Summary {
        quarantine: quarantine.len(),
        ..Summary::default()
    };
    let mut tallies: HashMap<String, EntityTally> = HashMap::new();
    let mut lags = (Vec::new(), Vec::new());
    let mut incidents = incidents::Incidents::default();
    let mut outcomes: Vec<Outcome> = Vec::new();
    records.each_event(None, &mut |r| {
        count(&mut summary, &mut lags, r);
        let t = tallies.entry(r.entity_id.clone()).or_default();
        t.flagged += usize::from(r.detection.is_anomaly);
        t.top = t.top.max(r.detection.score);
        t.records += 1;
        incidents.add(r);
        if labels.is_some() {
            outcomes.push(Outcome {
                event_id: r.event_id.clone(),
                entity_id: r.entity_id.clone(),
                kind: r.event.source.clone(),
                t_ms: r.event.occurred_ms(),
                score: r.detection.score,
                is_anomaly: r.detection.is_anomaly,
            });
        }
    })?;
    summary.entities = tallies.len();
    summary.ingestion_lag = percentiles(lags.0);
    summary.pipeline_lag = percentiles(lags.1);
    count_quarantine(&mut summary, quarantine);

    let (chosen, missing) = match choice {
        Choice::Named(ids) => {
            // An entity named twice is drawn once, where it was first named.
            let mut named = std::collections::HashSet::new();
            let (found, missing): (Vec<&String>, Vec<&String>) = ids
                .iter()
                .filter(|id| named.insert(id.as_str()))
                .partition(|id| tallies.contains_key(id.as_str()));
            (
                found.into_iter().cloned().collect::<Vec<_>>(),
                missing.into_iter().cloned().collect(),
            )
        }
        Choice::MostAnomalous(n) => {
            let mut ranked: Vec<(&str, &EntityTally)> =
                tallies.iter().map(|(id, t)| (id.as_str(), t)).collect();
            ranked.sort_by(|(a, x), (b, y)| {
                y.flagged
                    .cmp(&x.flagged)
                    .then(y.top.total_cmp(&x.top))
                    .then(y.records.cmp(&x.records))
                    .then(a.cmp(b))
            });
            (
                ranked
                    .into_iter()
                    .take(*n)
                    .map(|(id, _)| id.to_owned())
                    .collect(),
                Vec::new(),
            )
        }
    };

    let (evaluation, windows) = match labels {
        Some(labels) => {
            let prepared = Prepared::new(&outcomes, labels);
            let windows: HashMap<String, Vec<(i64, i64)>> = prepared
                .windows_ms()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            (Some(prepared.evaluate(|o| o.is_anomaly)), windows)
        }
        None => (None, HashMap::new()),
    };
    drop(outcomes);

    // Second pass: the drawn entities' records only.
    let mut by_entity: HashMap<String, Vec<EventRecord>> = HashMap::new();
    if !chosen.is_empty() {
        records.each_event(Some(&chosen), &mut |r| {
            by_entity
                .entry(r.entity_id.clone())
                .or_default()
                .push(r.clone());
        })?;
    }
    let entities = chosen
        .into_iter()
        .map(|id| {
            let records = by_entity.remove(id.as_str()).unwrap_or_default();
            EntityView {
                points: series(&id, records.iter().collect(), cfg),
                windows: windows.get(&id).cloned().unwrap_or_default(),
                entity_id: id,
            }
        })
        .collect();
    Ok(Report {
        summary,
        evaluation,
        entities,
        missing,
        incidents: incidents.finish(),
    })
}

/// The entity's records in processing order, each with the range a fresh detector expected
/// just before it.
fn series(entity_id: &str, mut records: Vec<&EventRecord>, cfg: &DetectConfig) -> Vec<Point> {
    // A local run processes lines in input order, which is not event time when the input is
    // out of order; the provenance keeps the line. Anything else is ordered by event time.
    let line = |r: &EventRecord| match &r.provenance {
        Provenance::File { path, line } => Some((path.clone(), *line)),
        _ => None,
    };
    let one_file = records
        .first()
        .and_then(|r| line(r))
        .is_some_and(|(p, _)| records.iter().all(|r| line(r).is_some_and(|(q, _)| q == p)));
    if one_file {
        records.sort_by_key(|r| match &r.provenance {
            Provenance::File { line, .. } => *line,
            _ => 0,
        });
    } else {
        records.sort_by(|a, b| {
            (a.event.occurred_ms(), &a.event_id).cmp(&(b.event.occurred_ms(), &b.event_id))
        });
    }
    let mut state = EntityState::new(entity_id);
    records
        .into_iter()
        .map(|r| {
            let obs = Observation::of(&r.event, r.enrichment.base_value, cfg);
            let a = state
                .value
                .assess(obs.value, obs.ctx, None, cfg.value_probability);
            let band = (a.low.is_finite() && a.high.is_finite() && a.low < a.high)
                .then_some([a.low, a.high]);
            observe(&mut state, &obs, cfg, true);
            Point {
                event_id: r.event_id.clone(),
                t_ms: obs.t_ms,
                value: obs.value,
                band,
                score: r.detection.score,
                is_anomaly: r.detection.is_anomaly,
                reasons: r.detection.reasons.clone(),
            }
        })
        .collect()
}

/// Folds one record into the summary (and its two lags into `lags`).
fn count(s: &mut Summary, lags: &mut (Vec<i64>, Vec<i64>), r: &EventRecord) {
    s.records += 1;
    match r.status {
        RecordStatus::Persisted => s.persisted += 1,
        RecordStatus::Updated => s.updated += 1,
    }
    if r.detection.is_anomaly {
        s.anomalies += 1;
        let mut codes: Vec<&str> = r.detection.reasons.iter().map(|x| x.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        for c in codes {
            *s.anomaly_reasons.entry(c.to_owned()).or_default() += 1;
        }
    }
    let lag = r.enrichment.ingestion_lag_ms;
    lags.0.push(lag);
    let received = r.event.occurred_ms() + lag;
    lags.1
        .push(r.first_persisted_at.timestamp_millis() - received);
}

fn count_quarantine(s: &mut Summary, quarantine: &[QuarantineRecord]) {
    for q in quarantine {
        if q.replayed
            .as_ref()
            .is_some_and(|r| !matches!(r.status, pipeline_core::persist::Status::Quarantined))
        {
            s.replayed += 1;
        }
        *s.quarantine_stages
            .entry(q.item.stage.as_str().to_owned())
            .or_default() += 1;
        let mut codes: Vec<&str> = q.item.reasons.iter().map(|x| x.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        for c in codes {
            *s.quarantine_reasons.entry(c.to_owned()).or_default() += 1;
        }
    }
}

fn percentiles(mut xs: Vec<i64>) -> Option<Lag> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_unstable();
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    Some(Lag {
        p50_ms: at(0.5),
        p95_ms: at(0.95),
        max_ms: at(1.0),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn percentiles_of_a_known_list() {
        let lag = percentiles((1..=100).collect()).unwrap();
        assert_eq!((lag.p50_ms, lag.p95_ms, lag.max_ms), (51, 95, 100));
        assert_eq!(percentiles(Vec::new()), None);
    }
}
