//! `pipeline report`: one self-contained HTML file showing what a run stored and what the
//! detector made of it.
//!
//! Anomaly detection is judged by looking at a series with its flags on it, so the report
//! draws, per entity, the value over event time with the range the detector expected, every
//! anomaly marked (reasons on hover and in a table beside the chart) and the non-value flags
//! (failure and event bursts, new countries and merchants, late events) on a track of their
//! own; with `--labels`, the labelled windows behind the series and the evaluation figures.
//!
//! It reads a store (the embedded file or DynamoDB), not a run's output, so it also shows
//! what several runs or a deployment accumulated. This module gathers the figures
//! ([`build`]); `html` draws them. The expected range is not stored with each record (it would
//! cost every record bytes at every boundary), so it is recomputed by running the entity's
//! records through a fresh detector in the order they were processed (input line order for a
//! local run, event time otherwise): the same code and configuration give the same range the
//! detector used, which a test checks against the ranges stored in value-outlier reasons.

mod chart;
mod format;
mod html;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;

use pipeline_core::detect::{
    DetectConfig, DetectReason, EntityState, Observation, ObservationOf, observe,
};
use pipeline_core::evaluate::{Evaluation, Label, Outcome, Prepared, parse_labels};
use pipeline_core::event::Provenance;
use pipeline_core::store::{EventRecord, QuarantineRecord, RecordStatus, Store};
use pipeline_handlers::Config;

use crate::error::CliError;
use crate::records::{Records, Streamed};
use crate::stores::{StoreArgs, StoreKind};

/// Arguments of `pipeline report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Draw this entity (repeat for several). Default: the most anomalous ones.
    #[arg(long = "entity", value_name = "ID")]
    entities: Vec<String>,
    /// How many entities to draw when none is named.
    #[arg(long, default_value_t = 6)]
    top: usize,
    /// Labels (as for `pipeline evaluate`): windows drawn behind the series, and the
    /// evaluation figures in the summary.
    #[arg(long, value_name = "FILE")]
    labels: Option<String>,
    /// The HTML file to write.
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
    /// Which store to read.
    #[command(flatten)]
    target: StoreArgs,
}

/// Runs the command.
pub fn report(args: ReportArgs) -> Result<ExitCode, CliError> {
    let store_files = args.target.files();
    let mut reads: Vec<(&str, &std::path::Path)> = store_files
        .iter()
        .map(|p| ("the store", p.as_path()))
        .collect();
    if let Some(l) = &args.labels {
        reads.push(("--labels", std::path::Path::new(l)));
    }
    crate::output::refuse_aliases(&[("-o", &args.output)], &reads)?;
    let labels =
        match &args.labels {
            Some(path) => Some(parse_labels(&crate::input::read_text(path)?).map_err(|e| {
                CliError::Input {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?),
            None => None,
        };
    let config = Config::from_env()?;
    let choice = if args.entities.is_empty() {
        Choice::MostAnomalous(args.top)
    } else {
        Choice::Named(args.entities.clone())
    };
    let runtime = crate::input::runtime()?;
    let report = match args.target.store {
        // Streamed: two passes over the file, one record in memory at a time.
        StoreKind::Embedded => {
            let store = args.target.readable_sqlite()?;
            let quarantine = runtime.block_on(store.list_quarantine())?;
            let records = Streamed::new(&store);
            let report = build(
                &records,
                &quarantine,
                &config.detect,
                labels.as_deref(),
                &choice,
            )?;
            crate::text::warn_unreadable(&records.unreadable.borrow());
            report
        }
        #[cfg(feature = "aws")]
        StoreKind::Dynamodb => {
            let dump = runtime.block_on(async { args.target.dynamodb().await.dump().await })?;
            crate::text::warn_unreadable(&dump.unreadable);
            build(
                &dump,
                &dump.quarantine,
                &config.detect,
                labels.as_deref(),
                &choice,
            )?
        }
        #[cfg(not(feature = "aws"))]
        StoreKind::Dynamodb => return Err(crate::stores::without_aws("--store dynamodb")),
    };
    for missing in &report.missing {
        eprintln!("pipeline report: no records for entity {missing}");
    }
    if !args.entities.is_empty() && report.entities.is_empty() {
        return Err(CliError::NotFound(format!(
            "none of the entities named has records in {}; nothing written",
            args.target.label()
        )));
    }
    let page = html::render(&report, &args.target.label());
    crate::output::write(&args.output, page.as_bytes())?;
    println!(
        "pipeline report: {} records, {} anomalies, {} quarantine entries; {} entities drawn → {}",
        report.summary.records,
        report.summary.anomalies,
        report.summary.quarantine,
        report.entities.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
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
    pub incidents: Vec<crate::incidents::IncidentRow>,
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
pub fn build(
    records: &dyn Records,
    quarantine: &[QuarantineRecord],
    cfg: &DetectConfig,
    labels: Option<&[Label]>,
    choice: &Choice,
) -> Result<Report, CliError> {
    let mut summary = Summary {
        quarantine: quarantine.len(),
        ..Summary::default()
    };
    let mut tallies: HashMap<String, EntityTally> = HashMap::new();
    let mut lags = (Vec::new(), Vec::new());
    let mut incidents = crate::incidents::Incidents::default();
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
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    use pipeline_handlers::Pipeline;
    use pipeline_sqlite::SqliteStore;

    /// The sample stream run through the real chain on a fresh in-memory store.
    fn sample() -> pipeline_core::store::StoreDump {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/streams/transactions.jsonl"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let pipeline = Pipeline::new(
            Config::defaults().unwrap(),
            SqliteStore::in_memory().unwrap(),
        )
        .unwrap();
        let runtime = crate::input::runtime().unwrap();
        runtime.block_on(async {
            for job in crate::jobs::load_text(path, &text, &pipeline).unwrap() {
                crate::jobs::run_job(&pipeline, job).await.unwrap();
            }
            pipeline.store().dump().await.unwrap()
        })
    }

    #[test]
    fn a_streamed_store_gives_the_report_of_its_dump() {
        let dump = sample();
        let store = SqliteStore::in_memory().unwrap();
        let runtime = crate::input::runtime().unwrap();
        runtime.block_on(async {
            let writes = dump
                .events
                .iter()
                .map(|r| pipeline_core::store::EventWrite {
                    record: r.clone(),
                    condition: pipeline_core::store::WriteCondition::Absent,
                })
                .collect();
            store.write_events(writes).await.unwrap();
            store.flush().await.unwrap();
        });
        let cfg = Config::defaults().unwrap().detect;
        for choice in [
            Choice::MostAnomalous(3),
            Choice::Named(vec!["acct-0027".into(), "nobody".into()]),
        ] {
            let a = build(&dump, &dump.quarantine, &cfg, None, &choice).unwrap();
            let streamed = Streamed::new(&store);
            let b = build(&streamed, &dump.quarantine, &cfg, None, &choice).unwrap();
            assert!(streamed.unreadable.borrow().is_empty());
            assert_eq!(a.summary.records, b.summary.records);
            assert_eq!(a.summary.anomalies, b.summary.anomalies);
            assert_eq!(a.incidents, b.incidents);
            assert_eq!(a.missing, b.missing);
            let drawn = |r: &Report| -> Vec<(String, usize, usize)> {
                r.entities
                    .iter()
                    .map(|e| (e.entity_id.clone(), e.points.len(), e.anomalies()))
                    .collect()
            };
            assert_eq!(drawn(&a), drawn(&b));
            assert!(!drawn(&b).is_empty());
        }
    }

    #[test]
    fn incidents_account_for_every_alert_and_every_event_in_them() {
        let dump = sample();
        let cfg = Config::defaults().unwrap().detect;
        let report = build(
            &dump,
            &dump.quarantine,
            &cfg,
            None,
            &Choice::MostAnomalous(0),
        )
        .unwrap();
        let rows = &report.incidents;
        let alerts: usize = rows.iter().map(|r| r.alerts).sum();
        assert_eq!(
            alerts, report.summary.anomalies,
            "every alert is in an incident"
        );
        let in_incidents = dump
            .events
            .iter()
            .filter(|r| r.detection.incident.is_some())
            .count();
        assert_eq!(rows.iter().map(|r| r.events).sum::<usize>(), in_incidents);
        assert!(
            rows.iter()
                .all(|r| r.alerts >= 1 && r.first_at <= r.last_at)
        );
        // The sample's failure bursts go on after their alert, and its stream is long enough
        // for the quiet period to close some incidents while others are still open.
        assert!(rows.iter().any(|r| r.events > r.alerts), "{rows:?}");
        assert!(rows.iter().any(|r| r.closed) && rows.iter().any(|r| !r.closed));
        assert!(rows.windows(2).all(|w| w[0].last_at >= w[1].last_at));
        let page = html::render(&report, "test");
        assert_eq!(
            page.matches("<tr data-incident=").count(),
            rows.len().min(100)
        );
    }

    #[test]
    fn the_drawn_range_is_the_one_the_detector_used() {
        let dump = sample();
        let cfg = Config::defaults().unwrap().detect;
        let report = build(
            &dump,
            &dump.quarantine,
            &cfg,
            None,
            &Choice::MostAnomalous(usize::MAX),
        )
        .unwrap();
        assert_eq!(report.summary.records, dump.events.len());
        let drawn: usize = report.entities.iter().map(|e| e.points.len()).sum();
        assert_eq!(drawn, dump.events.len(), "every record is drawn");
        let marks: usize = report.entities.iter().map(EntityView::anomalies).sum();
        assert_eq!(marks, report.summary.anomalies);

        // A correction is stored in place of the version the detector first saw, so an
        // entity with one is replayed from a slightly different history: leave those out.
        let corrected: std::collections::HashSet<&str> = dump
            .events
            .iter()
            .filter(|r| r.status == RecordStatus::Updated)
            .map(|r| r.entity_id.as_str())
            .collect();
        let mut compared = 0;
        for e in report
            .entities
            .iter()
            .filter(|e| !corrected.contains(e.entity_id.as_str()))
        {
            for p in &e.points {
                for r in &p.reasons {
                    if let DetectReason::ValueOutlier { range, .. } = r {
                        let band = p.band.expect("an outlier has a range");
                        for (drawn, stored) in band.iter().zip(range) {
                            let tolerance = 0.01 * stored.abs().max(1e-6);
                            assert!(
                                (drawn - stored).abs() <= tolerance,
                                "{}: drawn {band:?}, stored {range:?}",
                                p.event_id
                            );
                        }
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared >= 3, "only {compared} outliers compared");
    }

    #[test]
    fn named_entities_come_in_order_and_unknown_ones_are_reported() {
        let dump = sample();
        let cfg = Config::defaults().unwrap().detect;
        // Named twice: drawn once, where first named (the second used to draw empty).
        let choice = Choice::Named(vec![
            "acct-0002".into(),
            "nobody".into(),
            "acct-0001".into(),
            "acct-0002".into(),
        ]);
        let report = build(&dump, &dump.quarantine, &cfg, None, &choice).unwrap();
        let ids: Vec<&str> = report
            .entities
            .iter()
            .map(|e| e.entity_id.as_str())
            .collect();
        assert_eq!(ids, ["acct-0002", "acct-0001"]);
        assert!(report.entities.iter().all(|e| !e.points.is_empty()));
        assert_eq!(report.missing, ["nobody"]);
    }

    #[test]
    fn percentiles_of_a_known_list() {
        let lag = percentiles((1..=100).collect()).unwrap();
        assert_eq!((lag.p50_ms, lag.p95_ms, lag.max_ms), (51, 95, 100));
        assert_eq!(percentiles(Vec::new()), None);
    }
}
