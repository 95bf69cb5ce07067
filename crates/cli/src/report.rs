//! `pipeline report`: one self-contained HTML file showing what a store holds and what the
//! detector made of it. The figures and the page are `pipeline-report`'s; this command opens
//! the store (the embedded file streamed row by row, or DynamoDB), reads the labels and writes
//! the page.

use std::path::PathBuf;
use std::process::ExitCode;

use pipeline_core::evaluate::parse_labels;
use pipeline_handlers::Config;
use pipeline_report::{Choice, build};

use crate::error::CliError;
use crate::records::Streamed;
use crate::stores::{StoreArgs, StoreKind};
#[cfg(feature = "aws")]
use pipeline_core::store::Inspect;
use pipeline_core::store::QuarantineStore;

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
    let page = pipeline_report::render(&report, &args.target.label());
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use pipeline_core::detect::DetectReason;
    use pipeline_core::store::RecordStatus;
    use pipeline_core::store::{Batching, EventStore, Inspect};
    use pipeline_report::{EntityView, Report};

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
        let page = pipeline_report::render(&report, "test");
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
}
