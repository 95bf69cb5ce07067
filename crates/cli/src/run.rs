//! `pipeline run`: the main job. Reads inputs, cuts them into batch documents exactly as the
//! ingest function does, and runs every batch through validate → enrich → detect → persist on
//! the embedded store with the handlers' own [`Pipeline`].

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pipeline_core::persist::{Counts, PersistReport};
use pipeline_core::store::Store;
use pipeline_handlers::{Config, Pipeline, Validate};
use pipeline_ingest::SplitLimits;
use serde::Serialize;
use serde_json::Value;

use crate::error::CliError;
use crate::feed::{Fed, Source};
use crate::jobs::run_job_retrying;
pub use crate::stores::DEFAULT_DB;
use crate::stores::{StoreArgs, StoreKind};

/// Arguments of `pipeline run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Input files (`-` for stdin).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// Where records go.
    #[command(flatten)]
    target: StoreArgs,
    /// Write one JSON line per input event: event_id, status, score, is_anomaly, reasons, and
    /// the incident of an anomalous event.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print the summary as one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Events per batch document (ingest's default keeps documents under 256 KB).
    #[arg(long, default_value_t = pipeline_core::batch::MAX_BATCH_EVENTS)]
    batch_size: usize,
    /// With `--store dynamodb`: create missing tables (same keys as the SAM template).
    #[arg(long)]
    create_tables: bool,
    /// Allow `--create-tables` against real AWS (no endpoint override set).
    #[arg(long)]
    yes_real_aws: bool,
    /// Refuse an input (exit code 4, nothing written) when more than this share of its
    /// lines are not JSON at all: it is probably not a JSON Lines file of events. `1` turns
    /// the check off; ordinary bad lines are quarantined as always.
    #[arg(long, default_value_t = 0.5, value_name = "SHARE", value_parser = share)]
    max_undecodable: f64,
}

/// A share between 0 and 1 (NaN, negative and larger values are refused by name).
fn share(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is not a share between 0 and 1")),
        Err(e) => Err(format!("{text:?} is not a number: {e}")),
    }
}

/// How long the embedded store lets consecutive batches share one transaction: long enough
/// that a commit's fixed cost (rewriting the touched index pages into the WAL) is spread over
/// thousands of events, short enough that another writer on the same file waits little and a
/// crash loses little work (none of it half-done: the lost group is redone by a rerun).
const GROUP_COMMIT: Duration = Duration::from_millis(250);

/// Exit code of `pipeline run` when an input is mostly not JSON.
pub const EXIT_NOT_JSON_LINES: u8 = 4;

/// The run's summary (`--json` prints exactly this).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Events read.
    pub input: usize,
    /// Events that passed validation.
    pub valid: usize,
    /// Events quarantined (any stage).
    pub quarantined: usize,
    /// Quarantined events per reason code.
    pub quarantined_by_reason: BTreeMap<String, usize>,
    /// Anomalies newly persisted or updated.
    pub anomalies: usize,
    /// New records.
    pub persisted: usize,
    /// Already stored, unchanged.
    pub duplicate: usize,
    /// Replaced by a higher version.
    pub updated: usize,
    /// Older than what is stored.
    pub stale: usize,
    /// Same version, other content.
    pub conflict: usize,
    /// Batch documents processed.
    pub batches: usize,
    /// Wall time, seconds.
    pub elapsed_s: f64,
    /// Events per second.
    pub events_per_s: f64,
    /// Whether input = persisted + duplicate + updated + stale + conflict + quarantined.
    pub reconciled: bool,
    /// The database written.
    pub db: String,
}

/// Runs the command.
pub fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    let runtime = crate::input::runtime()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> Result<ExitCode, CliError> {
    if args.target.store == StoreKind::Embedded && args.target.db.as_os_str() == ":memory:" {
        // SQLite takes the name for a database that lives only as long as the process: the
        // run would report events persisted and keep none of them.
        return Err(CliError::Config(
            "--db :memory: would keep nothing after the run; pass a file (`pipeline evaluate` \
             and `pipeline bench` are the commands that run on a throwaway store)"
                .into(),
        ));
    }
    if let Some(out) = &args.output {
        let store_files = args.target.files();
        let reads: Vec<(&str, &std::path::Path)> = args
            .inputs
            .iter()
            .map(|i| ("input", std::path::Path::new(i)))
            .chain(store_files.iter().map(|p| ("the store", p.as_path())))
            .collect();
        crate::output::refuse_aliases(&[("--output", out)], &reads)?;
    }
    let config = Config::from_env()?;
    let label = args.target.label();
    match args.target.store {
        StoreKind::Embedded => {
            let store = args.target.sqlite()?.with_group_commit(GROUP_COMMIT);
            run_with(Pipeline::new(config, store)?, args, label).await
        }
        StoreKind::Dynamodb => run_dynamodb(config, args, label).await,
    }
}

#[cfg(not(feature = "aws"))]
async fn run_dynamodb(_: Config, _: RunArgs, _: String) -> Result<ExitCode, CliError> {
    Err(crate::stores::without_aws("--store dynamodb"))
}

#[cfg(feature = "aws")]
async fn run_dynamodb(config: Config, args: RunArgs, label: String) -> Result<ExitCode, CliError> {
    if args.create_tables && config.loopback_endpoint().is_none() && !args.yes_real_aws {
        return Err(CliError::Input {
            path: "--create-tables".into(),
            message: "AWS_ENDPOINT_URL does not point at this machine (127.0.0.1, localhost), so this could create tables in your real AWS account; \
                      deploy the SAM template for that, or add --yes-real-aws if you really mean it"
                .into(),
        });
    }
    let store = args.target.dynamodb().await;
    if args.create_tables {
        store
            .create_tables()
            .await
            .map_err(|e| CliError::Pipeline(e.into()))?;
    }
    run_with(Pipeline::new(config, store)?, args, label).await
}

async fn run_with<S: Store>(
    pipeline: Pipeline<S>,
    args: RunArgs,
    db: String,
) -> Result<ExitCode, CliError> {
    let started = Instant::now();
    // Installed first, so that a signal while the inputs are judged is not fatal either (it
    // is then taken before the first batch: nothing is written).
    let mut interrupt = Interrupt::new()?;
    let pipeline = pipeline.with_limits(SplitLimits {
        max_events: args.batch_size.max(1),
        ..SplitLimits::default()
    });

    // Every input is opened and judged before anything is written.
    let mut sources = Vec::with_capacity(args.inputs.len());
    for input in &args.inputs {
        let source = Source::open(input, &pipeline)?;
        let (items, undecodable) = source.judged();
        if items > 0 && undecodable as f64 > args.max_undecodable * items as f64 {
            eprintln!(
                "error: {input}: {undecodable} of {items} lines{} are not JSON, so this does not look \
                 like a JSON Lines file of events; nothing was written. Check the file, or pass \
                 --max-undecodable 1 to quarantine them anyway.",
                if items >= crate::feed::JUDGED_ITEMS {
                    " (of the first ones)"
                } else {
                    ""
                }
            );
            return Ok(ExitCode::from(EXIT_NOT_JSON_LINES));
        }
        sources.push(source);
    }
    let total_bytes: Option<u64> = sources.iter().map(|s| s.len).sum();

    let bar = if std::io::stderr().is_terminal() {
        progress_bar(total_bytes)
    } else {
        ProgressBar::hidden()
    };

    let mut out = args
        .output
        .as_deref()
        .map(crate::output::Atomic::create)
        .transpose()?;

    // Reading, decoding, cutting and validating on one thread; enrich, detect and persist
    // (which depend on what earlier batches stored) here, in input order. The channel's
    // capacity is what bounds memory.
    let (tx, mut rx) = tokio::sync::mpsc::channel(FEED_DEPTH);
    let validate = Validate::new(pipeline.config())?;
    let limits = pipeline.limits();
    let reader = std::thread::Builder::new()
        .name("pipeline-read".into())
        .spawn(move || crate::feed::feed(sources, validate, limits, tx))
        .map_err(|e| CliError::io("reader thread", e))?;

    let mut counts = Counts::default();
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut valid = 0usize;
    let mut batches = 0usize;
    // SIGINT or SIGTERM ends the run between batches: the batch in flight finishes, the store
    // commits, and --output lists exactly what is stored (a signal's default action would cut
    // both mid-way).
    let mut interrupted = None;
    loop {
        let fed = tokio::select! {
            biased;
            name = interrupt.next() => {
                interrupted = Some(name);
                break;
            }
            fed = rx.recv() => match fed {
                Some(fed) => fed,
                None => break,
            },
        };
        let Fed { job, bytes_read } = fed?;
        batches += 1;
        let (report, v) = run_job_retrying(&pipeline, job).await?;
        valid += v;
        counts.merge(&report.counts);
        for (k, c) in &report.quarantined_by_reason {
            *by_reason.entry(k.clone()).or_default() += c;
        }
        if let Some(w) = out.as_mut() {
            let path = w.path().to_path_buf();
            write_outcomes(w.writer(), &report).map_err(|e| crate::output::io(&path, e))?;
        }
        if total_bytes.is_some() {
            bar.set_position(bytes_read);
        }
        bar.set_message(format!("{} events", counts.input));
    }
    drop(rx);
    // An interrupted reader may be blocked on stdin: it is left to end with the process.
    if interrupted.is_none() && reader.join().is_err() {
        return Err(CliError::io(
            "reader thread",
            std::io::Error::other("the input reader stopped unexpectedly"),
        ));
    }
    pipeline.store().flush().await?;
    bar.finish_and_clear();
    if let Some(w) = out {
        w.commit()?;
    }

    let elapsed = started.elapsed().as_secs_f64();
    let summary = Summary {
        input: counts.input,
        valid,
        quarantined: counts.quarantined,
        quarantined_by_reason: by_reason,
        anomalies: counts.anomalies,
        persisted: counts.persisted,
        duplicate: counts.duplicate,
        updated: counts.updated,
        stale: counts.stale,
        conflict: counts.conflict,
        batches,
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        events_per_s: if elapsed > 0.0 {
            (counts.input as f64 / elapsed).round()
        } else {
            0.0
        },
        reconciled: counts.input == counts.accounted(),
        db,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        print_summary(&summary, args.inputs.len());
    }
    if let Some((name, code)) = interrupted {
        eprintln!(
            "pipeline run: stopped by {name} after {batches} batch(es): what they held is stored{} \
             and the rest was not read; running the same input again finishes it (events already \
             stored are duplicates)",
            if args.output.is_some() {
                " and listed in --output"
            } else {
                ""
            }
        );
        return Ok(ExitCode::from(code));
    }
    Ok(if summary.reconciled {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// SIGINT and SIGTERM as a stream of (name, exit code): 128 + the signal's number, as a shell
/// reports a process the signal ended.
struct Interrupt {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Interrupt {
    fn new() -> Result<Self, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let io = |e| CliError::io("signal handler", e);
            Ok(Interrupt {
                int: signal(SignalKind::interrupt()).map_err(io)?,
                term: signal(SignalKind::terminate()).map_err(io)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Interrupt {})
    }

    async fn next(&mut self) -> (&'static str, u8) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => ("SIGINT", 130),
                _ = self.term.recv() => ("SIGTERM", 143),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            ("Ctrl-C", 130)
        }
    }
}

/// Batches read ahead of the one being persisted: enough to keep both threads busy, few enough
/// that memory does not grow with the input (each holds at most 100 events).
const FEED_DEPTH: usize = 8;

/// A bar over the input's bytes when its size is known (files), else a spinner; both show
/// the events processed so far.
fn progress_bar(total_bytes: Option<u64>) -> ProgressBar {
    match total_bytes {
        Some(len) => {
            let b = ProgressBar::new(len);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {bar:40} {percent:>3}%  {msg}  {binary_bytes_per_sec}  eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        }
        None => {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg}  {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        }
    }
}

#[derive(Serialize)]
struct OutLine<'a> {
    event_id: &'a Option<String>,
    status: &'a str,
    score: Option<f64>,
    is_anomaly: bool,
    reasons: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    incident: &'a Option<pipeline_core::detect::IncidentRef>,
}

fn write_outcomes(w: &mut impl Write, report: &PersistReport) -> std::io::Result<()> {
    for o in &report.outcomes {
        let line = OutLine {
            event_id: &o.event_id,
            status: o.status.as_str(),
            score: o.score,
            is_anomaly: o.is_anomaly,
            reasons: &o.reasons,
            incident: &o.incident,
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

fn print_summary(s: &Summary, inputs: usize) {
    let reasons: Vec<String> = {
        let mut r: Vec<_> = s.quarantined_by_reason.iter().collect();
        r.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        r.into_iter().map(|(k, v)| format!("{k} {v}")).collect()
    };
    println!(
        "pipeline run: {} events from {} input(s) in {:.2} s ({} events/s), {} batch(es), database {}",
        s.input, inputs, s.elapsed_s, s.events_per_s, s.batches, s.db
    );
    println!("  valid        {:>8}", s.valid);
    if reasons.is_empty() {
        println!("  quarantined  {:>8}", s.quarantined);
    } else {
        println!(
            "  quarantined  {:>8}   by reason: {}",
            s.quarantined,
            reasons.join(", ")
        );
    }
    println!(
        "  anomalies    {:>8}   (newly persisted or updated)",
        s.anomalies
    );
    println!("  persisted    {:>8}", s.persisted);
    println!("  duplicate    {:>8}", s.duplicate);
    println!("  updated      {:>8}", s.updated);
    println!("  stale        {:>8}", s.stale);
    println!("  conflict     {:>8}", s.conflict);
    if s.reconciled {
        println!(
            "  reconciled: input = persisted + duplicate + updated + stale + conflict + quarantined"
        );
    } else {
        println!(
            "  NOT RECONCILED: input {} but outcomes account for a different number",
            s.input
        );
    }
}
