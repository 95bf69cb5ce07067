//! `pipeline evaluate`: backtest detection against labels.
//!
//! Runs the real chain (ingest → validate → enrich → detect → persist) over INPUT on a fresh
//! in-memory embedded store, or reads the verdicts of an earlier `pipeline run --output` file,
//! and scores them with [`pipeline_core::evaluate`]: point metrics, window metrics and the
//! windowed score under three cost profiles, per stream kind (the events' `source`) and in
//! total; per entity with `--per-entity`; and, with `--sweep`, for the best threshold over
//! `score` as well as for the product's own `is_anomaly`.

use std::collections::HashMap;
use std::process::ExitCode;

use pipeline_core::evaluate::{Evaluation, Figures, Outcome, Prepared, parse_labels};
use pipeline_core::persist::Status;
use pipeline_core::store::StoreDump;
use pipeline_handlers::{Config, Pipeline};
use pipeline_sqlite::SqliteStore;
use serde::Deserialize;
use serde_json::json;

use crate::error::CliError;
use pipeline_core::store::Inspect;

/// Arguments of `pipeline evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// The labelled stream (JSON Lines of events).
    #[arg(
        value_name = "INPUT",
        required_unless_present = "nab",
        conflicts_with = "nab"
    )]
    input: Option<String>,
    /// Labels: JSON Lines of `{"entity_id","start","end"}` windows or `{"event_id"}` points.
    #[arg(long, required_unless_present = "nab", conflicts_with = "nab")]
    labels: Option<String>,
    /// A corpus in the Numenta Anomaly Benchmark's layout (`data/<group>/*.csv`,
    /// `labels/combined_windows.json`): run every stream through the chain and score it as
    /// NAB v1.1's scorer does (probation, windows, the three profiles, normalised 0 … 100).
    #[arg(long, value_name = "DIR", conflicts_with = "output_of")]
    nab: Option<String>,
    /// Score the verdicts of an earlier `pipeline run INPUT --output FILE` instead of running
    /// the chain.
    #[arg(long, value_name = "RUN_OUTPUT")]
    output_of: Option<String>,
    /// Also score the best threshold over `score`.
    #[arg(long)]
    sweep: bool,
    /// Also print one row per entity.
    #[arg(long)]
    per_entity: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct RunLine {
    event_id: Option<String>,
    status: String,
    score: Option<f64>,
    #[serde(default)]
    is_anomaly: bool,
}

/// Runs the command.
pub fn evaluate(args: EvaluateArgs) -> Result<ExitCode, CliError> {
    let (input, labels_path) = match (&args.nab, &args.input, &args.labels) {
        (Some(dir), _, _) => return evaluate_nab(dir, args.sweep, args.json),
        (None, Some(input), Some(labels)) => (input.clone(), labels.clone()),
        _ => {
            return Err(CliError::Config(
                "evaluate needs INPUT and --labels, or --nab DIR".into(),
            ));
        }
    };
    let text = crate::input::read_text(&input)?;
    let labels =
        parse_labels(&crate::input::read_text(&labels_path)?).map_err(|e| CliError::Input {
            path: labels_path.clone(),
            message: e.to_string(),
        })?;
    // Where each event sits (its entity, event time and stream kind) is read from the event
    // the chain stored, never from the first raw line with its id: that line may be invalid,
    // or a different event under the same id.
    let (verdicts, meta) = match &args.output_of {
        Some(path) => (read_run_output(path)?, valid_events(&input, &text)?),
        None => run_chain(&input, &text, true)?,
    };
    let outcomes: Vec<Outcome> = verdicts
        .into_iter()
        .filter_map(|(id, score, is_anomaly)| {
            let (entity, t_ms, kind) = meta.get(&id)?.clone();
            Some(Outcome {
                event_id: id,
                entity_id: entity,
                kind,
                t_ms,
                score,
                is_anomaly,
            })
        })
        .collect();
    let prepared = Prepared::new(&outcomes, &labels);
    let own = prepared.evaluate(|o| o.is_anomaly);
    let swept = if args.sweep { prepared.sweep() } else { None };
    if args.json {
        let out = json!({
            "input": input,
            "labels": labels_path,
            "is_anomaly": own,
            // A threshold of null: no threshold scores above flagging nothing.
            "sweep": swept.as_ref().map(|(th, ev)| json!({
                "threshold": th.is_finite().then_some(*th),
                "evaluation": ev,
            })),
        });
        println!("{out}");
    } else {
        let distinct = outcomes
            .iter()
            .map(|o| o.event_id.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len();
        let repeats = match outcomes.len() - distinct {
            0 => String::new(),
            r => format!(" ({distinct} distinct: {r} repeats count once)"),
        };
        println!(
            "pipeline evaluate: {} scored events{repeats}, {} labels ({} matched no event)",
            outcomes.len(),
            labels.len(),
            own.unmatched_labels
        );
        println!("\nverdict: the product's is_anomaly");
        print_table(&own, args.per_entity);
        match &swept {
            Some((th, ev)) if th.is_finite() => {
                println!("\nverdict: score >= {th} (the best threshold for the standard score)");
                print_table(ev, args.per_entity);
            }
            Some(_) => println!(
                "\nverdict over score: no threshold scores above flagging nothing (standard score 0)"
            ),
            None => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--nab DIR`: the chain over every stream of the corpus, scored as NAB scores.
fn evaluate_nab(dir: &str, sweep: bool, as_json: bool) -> Result<ExitCode, CliError> {
    let corpus = pipeline_corpus::nab::read(std::path::Path::new(dir))?;
    let (text, ids) = pipeline_corpus::nab::events(&corpus);
    let mut flags: Vec<Vec<bool>> = corpus.values.iter().map(|v| vec![false; v.len()]).collect();
    let mut scores: Vec<Vec<f64>> = corpus.values.iter().map(|v| vec![0.0; v.len()]).collect();
    let mut scored = 0;
    for (id, score, is_anomaly) in run_chain(dir, &text, false)?.0 {
        if let Some(&(s, i)) = ids.get(&id) {
            flags[s][i] = is_anomaly;
            scores[s][i] = score;
            scored += 1;
        }
    }
    let result = pipeline_core::evaluate::nab::score(&corpus.streams, &flags);
    let best = sweep.then(|| pipeline_core::evaluate::nab::sweep(&corpus.streams, &scores));
    let unscored = ids.len().saturating_sub(scored);
    if as_json {
        println!(
            "{}",
            crate::nab::to_json(dir, &result, unscored, best.as_ref())
        );
    } else {
        crate::nab::print(&result, unscored, best.as_ref());
    }
    Ok(ExitCode::SUCCESS)
}

/// Where an event sits: its entity, event time (ms) and stream kind (`source`).
type Meta = HashMap<String, (String, i64, String)>;

/// Each event's verdict (id, score, `is_anomaly`), in order.
type Verdicts = Vec<(String, f64, bool)>;

/// Runs the chain over `text` (the input, read once: stdin cannot be read twice) on a fresh
/// in-memory store and returns each event's verdict, in order, and (`with_meta`) the stored
/// events' places.
fn run_chain(input: &str, text: &str, with_meta: bool) -> Result<(Verdicts, Meta), CliError> {
    let runtime = crate::input::runtime()?;
    let store = SqliteStore::in_memory().map_err(|source| CliError::Db {
        path: ":memory:".into(),
        source,
    })?;
    let pipeline = Pipeline::new(Config::from_env()?, store)?;
    let jobs = crate::jobs::load_text(input, text, &pipeline)?;
    let mut out = Vec::new();
    let dump = runtime.block_on(async {
        for job in jobs {
            let (report, _) = crate::jobs::run_job(&pipeline, job).await?;
            for o in report.outcomes {
                if matches!(o.status, Status::Quarantined) {
                    continue;
                }
                if let Some(id) = o.event_id {
                    out.push((id, o.score.unwrap_or(0.0), o.is_anomaly));
                }
            }
        }
        Ok::<_, CliError>(if with_meta {
            pipeline.store().dump().await?
        } else {
            StoreDump::default()
        })
    })?;
    let meta = dump
        .events
        .into_iter()
        .map(|r| {
            let place = (r.entity_id, r.event.occurred_ms(), r.event.source);
            (r.event_id, place)
        })
        .collect();
    Ok((out, meta))
}

/// The places of the events of `text` that pass ingest and validate (the first valid one of
/// an id): what a run of `text` stored, for `--output-of`, which does not run the chain.
fn valid_events(input: &str, text: &str) -> Result<Meta, CliError> {
    let store = SqliteStore::in_memory().map_err(|source| CliError::Db {
        path: ":memory:".into(),
        source,
    })?;
    let pipeline = Pipeline::new(Config::from_env()?, store)?;
    let mut meta = Meta::new();
    for job in crate::jobs::load_text(input, text, &pipeline)? {
        let crate::jobs::Job::Raw(batch) = job else {
            continue;
        };
        for v in pipeline.validate(batch).events {
            let e = v.event;
            meta.entry(e.event_id.clone())
                .or_insert_with(|| (e.entity_id.clone(), e.occurred_ms(), e.source.clone()));
        }
    }
    Ok(meta)
}

fn read_run_output(path: &str) -> Result<Verdicts, CliError> {
    let text = crate::input::read_text(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l: RunLine = serde_json::from_str(line).map_err(|e| CliError::Input {
            path: path.to_owned(),
            message: format!("line {}: not a `pipeline run --output` line: {e}", i + 1),
        })?;
        if l.status == "quarantined" {
            continue;
        }
        if let Some(id) = l.event_id {
            out.push((id, l.score.unwrap_or(0.0), l.is_anomaly));
        }
    }
    Ok(out)
}

fn print_table(ev: &Evaluation, per_entity: bool) {
    println!(
        "{:<22} {:>7} {:>9} {:>6} {:>6} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "streams",
        "events",
        "windows",
        "prec",
        "recall",
        "F1",
        "latency",
        "FP/1k",
        "standard",
        "low_fp",
        "low_fn"
    );
    let mut rows: Vec<(String, &Figures)> =
        ev.by_kind.iter().map(|(k, f)| (k.clone(), f)).collect();
    if per_entity {
        rows.extend(ev.by_entity.iter().map(|(k, f)| (format!("  {k}"), f)));
    }
    rows.push(("total".into(), &ev.total));
    for (name, f) in rows {
        let opt = |x: Option<f64>, p: usize| x.map_or("-".to_owned(), |v| format!("{v:.p$}"));
        println!(
            "{:<22} {:>7} {:>9} {:>6} {:>6} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8}",
            truncate(&crate::text::printable(&name), 22),
            f.events,
            format!("{}/{}", f.windows_detected, f.windows),
            opt(f.precision, 2),
            opt(f.recall, 2),
            opt(f.f1, 2),
            f.median_latency_s
                .map_or("-".to_owned(), |s| format!("{s:.0}s")),
            opt(f.fp_per_1000, 2),
            opt(f.score_standard, 1),
            opt(f.score_low_fp, 1),
            opt(f.score_low_fn, 1),
        );
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}
