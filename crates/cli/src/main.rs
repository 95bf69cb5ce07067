//! `pipeline`: run the event pipeline locally on an embedded database, inspect what it stored,
//! generate realistic streams, and measure stage throughput; send events to the deployed
//! pipeline and watch it.
//!
//! The commands call the same stage code as the Lambda functions (`pipeline_handlers`), so a
//! local run is the product, not a simulation of it.
//!
//! # Layout
//! - `run`: `pipeline run` and `pipeline stage`; `input` reads what they read.
//! - `stores`: the store flags shared by `run`, `show` and `anomalies` (embedded or DynamoDB).
//! - `inspect`: `show` and `anomalies`.
//! - `generate`: writes the streams of `pipeline-corpus` (the sample, or a labelled benchmark).
//! - `evaluate`: `pipeline evaluate`, scoring detection against labels.
//! - `bench`: stage throughput.
//! - `replay`: quarantined events through the chain again.
//! - `report`: `pipeline report`, one self-contained HTML page of what a store holds.
//! - `send`: `PutEvents` to the ingest bus; `watch` (fetching and rendering): the deployed
//!   pipeline's executions and metrics; `logs`: its log lines of one
//!   execution, batch or event.
//! - `error`: the CLI's error type and exit codes.

// The local run allocates and frees small strings and maps per event on two threads; mimalloc
// keeps per-thread free lists, which glibc's malloc spent a fifth of the run's time managing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod backfill;
mod error;
mod evaluate;
mod feed;
mod input;
mod inspect;
mod jobs;
#[cfg(feature = "aws")]
mod logs;
mod nab;
mod output;
mod records;
mod replay;
mod report;
mod run;
#[cfg(feature = "aws")]
mod send;
mod stage;
mod stores;
mod text;
mod throughput;
#[cfg(feature = "aws")]
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pipeline_corpus::{benchmark as corpus, stream};

use crate::error::CliError;

/// Validate, enrich, score and store business events — locally.
#[derive(Debug, Parser)]
#[command(name = "pipeline", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run ingest → validate → enrich → detect → persist over input files.
    ///
    /// INPUT is a JSON Lines file of events, or a JSON file holding an MSK KafkaEvent, an
    /// EventBridge event or a stage batch document; `-` reads stdin.
    Run(run::RunArgs),
    /// Run one stage on one document and print the stage's output document (JSON).
    ///
    /// `ingest` takes what `run` takes and prints the batch documents; the other stages take
    /// the previous stage's output, e.g. the files under `events/<stage>/`.
    Stage {
        /// ingest, validate, enrich, detect or persist.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(
            pipeline_core::batch::Stage::ALL.map(|s| s.as_str())
        ))]
        stage: String,
        /// The input document (`-` for stdin).
        input: String,
        /// The embedded database (enrich, detect and persist read or write it).
        #[arg(long, default_value = run::DEFAULT_DB, env = "PIPELINE_DB")]
        db: PathBuf,
    },
    /// Show what the store holds for one event id (record or quarantine entries).
    Show {
        /// The event id.
        event_id: String,
        /// Which store to read.
        #[command(flatten)]
        target: stores::StoreArgs,
    },
    /// List stored anomalies, newest event time first.
    Anomalies {
        /// Only this entity.
        #[arg(long)]
        entity: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// List incidents (episodes: first and last event, events, alerts, peak, open or
        /// closed) instead of alerts; reads every record (a scan on DynamoDB).
        #[arg(long)]
        incidents: bool,
        /// Which store to read.
        #[command(flatten)]
        target: stores::StoreArgs,
    },
    /// Write a realistic, deterministic transaction stream as JSON Lines.
    Generate {
        /// Number of events (lines).
        #[arg(long, default_value_t = 5000)]
        events: usize,
        /// Number of entities (accounts).
        #[arg(long, default_value_t = 50)]
        entities: usize,
        /// Seed: the same seed gives the same stream.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the stream here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Write the ground-truth labels of injected cases here (JSON Lines).
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Write a labelled benchmark corpus instead (`--events` and `--entities` do not
        /// apply): metric streams, business streams, or clean streams without anomalies.
        #[arg(long, value_parser = benchmark_kind())]
        benchmark: Option<corpus::Kind>,
    },
    /// Backtest detection against labels: point and window metrics and the windowed score.
    Evaluate(evaluate::EvaluateArgs),
    /// Measure events/s per stage and for the whole chain, beside a plain serde round trip.
    Bench(throughput::BenchArgs),
    /// Run quarantined events through the chain again, after the cause was fixed.
    ///
    /// Each entry runs alone from its original payload; one that now passes is stored and its
    /// entry marked `replayed` with the outcome; one that fails again keeps (or takes) its new
    /// reasons. Replaying twice changes nothing the second time; `--dry-run` writes nothing.
    Replay(replay::ReplayArgs),
    /// Write one self-contained HTML report of what the store holds.
    ///
    /// A summary (outcomes, quarantine and anomaly reasons, lag) and, per entity (the most
    /// anomalous by default), its value series with the expected range, every anomaly marked
    /// with its reasons and the other flags on their own track; with `--labels`, the labelled
    /// windows and the evaluation figures. Opens in a browser without network access.
    Report(report::ReportArgs),
    /// Load history into the deployed pipeline: a Step Functions Distributed Map over shards.
    ///
    /// INPUT is JSON Lines. Events are sharded by entity and ordered by event time, uploaded to
    /// the backfill bucket as batch documents, and run by the backfill state machine (each
    /// shard's batches in order, through the pipeline state machine); the shards' reports are
    /// then reconciled against the plan. `--dry-run` prints the plan and uploads nothing.
    Backfill(backfill::BackfillArgs),
    /// Publish events to the deployed pipeline's ingest bus (EventBridge PutEvents).
    ///
    /// INPUT is what `run` takes. Each entry's detail is `{"events": [...]}`; entries refused
    /// by EventBridge are retried with backoff, and those still refused are listed and make
    /// the exit code 3.
    #[cfg(feature = "aws")]
    Send(send::SendArgs),
    /// Publish events to the deployed pipeline (needs a build with `--features aws`).
    #[cfg(not(feature = "aws"))]
    Send(WithoutAws),
    /// Watch the deployed pipeline: recent executions and live CloudWatch figures.
    ///
    /// Redraws every --interval seconds until Ctrl-C; `--once --json` prints one JSON object.
    #[cfg(feature = "aws")]
    Watch(watch::WatchArgs),
    /// Watch the deployed pipeline (needs a build with `--features aws`).
    #[cfg(not(feature = "aws"))]
    Watch(WithoutAws),
    /// Print the deployed functions' log lines of one execution, batch or event, in time order.
    ///
    /// Reads all five functions' log groups and the state machine's (CloudWatch Logs), keeps
    /// the lines whose correlation fields name the execution, batch or event, and prints them
    /// readably on a terminal, as JSON Lines otherwise. `--follow` keeps printing new ones.
    #[cfg(feature = "aws")]
    Logs(logs::LogsArgs),
    /// Print the deployed functions' log lines (needs a build with `--features aws`).
    #[cfg(not(feature = "aws"))]
    Logs(WithoutAws),
}

/// The arguments of a command this build has no AWS support for: taken as they come, so the
/// command can say how to get a build that has it.
#[cfg(not(feature = "aws"))]
#[derive(Debug, clap::Args)]
struct WithoutAws {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of stdout goes away
    // (`pipeline anomalies | head`): Rust ignores SIGPIPE, so every print would panic instead.
    sigpipe::reset();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Backfill(args) => backfill::backfill(args),
        Command::Stage { stage, input, db } => stage::stage(&stage, &input, &db),
        Command::Show { event_id, target } => inspect::show(&target, &event_id),
        Command::Anomalies {
            entity,
            limit,
            json,
            incidents: true,
            target,
        } => inspect::list_incidents(&target, entity.as_deref(), limit, json),
        Command::Anomalies {
            entity,
            limit,
            json,
            incidents: false,
            target,
        } => inspect::anomalies(&target, entity.as_deref(), limit, json),
        Command::Generate {
            events,
            entities,
            seed,
            output,
            labels,
            benchmark,
        } => generate_cmd(events, entities, seed, output, labels, benchmark),
        Command::Evaluate(args) => evaluate::evaluate(args),
        Command::Bench(args) => throughput::bench(args),
        Command::Replay(args) => replay::run(args),
        Command::Report(args) => report::report(args),
        #[cfg(feature = "aws")]
        Command::Send(args) => send::send(args),
        #[cfg(feature = "aws")]
        Command::Watch(args) => watch::watch(args),
        #[cfg(not(feature = "aws"))]
        Command::Send(_) => Err(stores::without_aws("`pipeline send`")),
        #[cfg(not(feature = "aws"))]
        Command::Watch(_) => Err(stores::without_aws("`pipeline watch`")),
        #[cfg(feature = "aws")]
        Command::Logs(args) => logs::logs(args),
        #[cfg(not(feature = "aws"))]
        Command::Logs(_) => Err(stores::without_aws("`pipeline logs`")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let causes = distinct_causes(&e);
            for cause in &causes {
                eprintln!("  caused by: {cause}");
            }
            let endpoint = pipeline_handlers::Config::from_env()
                .ok()
                .and_then(|c| c.endpoint_override);
            if let Some(h) = hint(&e.to_string(), &causes, endpoint.as_deref()) {
                eprintln!("hint: {h}");
            }
            ExitCode::from(2)
        }
    }
}

/// The error's causes, each once: a cause whose text the message above it already shows (many
/// messages end with their source's) is not printed again.
fn distinct_causes(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut shown = e.to_string();
    let mut out = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !shown.contains(&text) {
            out.push(text.clone());
        }
        shown = text;
        source = s.source();
    }
    out
}

/// One line that says how to fix the two failures every AWS command hits first: no
/// credentials, and an endpoint that does not answer.
fn hint(message: &str, causes: &[String], endpoint: Option<&str>) -> Option<String> {
    let text = std::iter::once(message)
        .chain(causes.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    if text.contains("credentials") || text.contains("IMDS") {
        return Some(
            "no AWS credentials were found: for the local stack run `eval \"$(scripts/local-aws env)\"`; \
             for AWS set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and AWS_REGION"
                .into(),
        );
    }
    let unreachable = [
        "dispatch failure",
        "onnection refused",
        "error trying to connect",
        "timed out",
    ];
    if unreachable.iter().any(|u| text.contains(u)) {
        return Some(match endpoint {
            Some(e) => format!(
                "the endpoint {e} (AWS_ENDPOINT_URL) did not answer: is the local stack up \
                 (`scripts/local-aws up`, then `eval \"$(scripts/local-aws env)\"`)?"
            ),
            None => {
                "AWS did not answer: check the network and AWS_REGION, or set AWS_ENDPOINT_URL \
                     for a local stack"
                    .into()
            }
        });
    }
    None
}

/// `--benchmark`'s parser: the names are `corpus::Kind::ALL`'s, listed in `--help`.
fn benchmark_kind() -> impl clap::builder::TypedValueParser<Value = corpus::Kind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(corpus::Kind::ALL.map(|(name, _)| name))
        .try_map(|name| name.parse::<corpus::Kind>())
}

fn generate_cmd(
    events: usize,
    entities: usize,
    seed: u64,
    output: Option<PathBuf>,
    labels: Option<PathBuf>,
    benchmark: Option<corpus::Kind>,
) -> Result<ExitCode, CliError> {
    let Some(kind) = benchmark else {
        let lines = stream::generate(&stream::GenerateConfig::new(events, entities, seed));
        return write_lines(&lines, output, labels);
    };
    // Benchmark labels are windows, not per-line labels, so they are written here.
    let mut corpus = corpus::generate(kind, seed);
    let lines: Vec<stream::Line> = corpus
        .lines()
        .map(|text| stream::Line { text, label: None })
        .collect();
    if let (Some(o), Some(l)) = (&output, &labels) {
        output::refuse_aliases(&[("-o", o), ("--labels", l)], &[])?;
    }
    if let Some(p) = &labels {
        let text: String = corpus.labels.iter().map(|l| format!("{l}\n")).collect();
        output::write(p, text.as_bytes())?;
    }
    write_lines(&lines, output, None)
}

fn write_lines(
    lines: &[stream::Line],
    output: Option<PathBuf>,
    labels: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    use std::io::{BufWriter, Write};
    if let (Some(o), Some(l)) = (&output, &labels) {
        output::refuse_aliases(&[("-o", o), ("--labels", l)], &[])?;
    }
    let mut label_file = labels.as_deref().map(output::Atomic::create).transpose()?;
    let label_w = label_file.as_mut().map(|w| w.writer() as &mut dyn Write);
    match &output {
        Some(p) => {
            let mut w = output::Atomic::create(p)?;
            stream::write(lines, w.writer(), label_w).map_err(|e| output::io(p, e))?;
            w.commit()?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            stream::write(lines, &mut w, label_w).map_err(|e| CliError::io("stdout", e))?;
            w.flush().map_err(|e| CliError::io("stdout", e))?;
        }
    }
    if let Some(w) = label_file {
        w.commit()?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = CliError::io("in.jsonl", io);
        assert_eq!(e.to_string(), "in.jsonl: no such file");
        assert!(distinct_causes(&e).is_empty());
        let aws = CliError::Aws {
            operation: "ListExecutions".into(),
            source: Box::new(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "access denied",
            )),
        };
        assert_eq!(distinct_causes(&aws), ["access denied"]);
    }

    #[test]
    fn credential_and_endpoint_failures_get_a_one_line_fix() {
        let no_creds = hint(
            "ListExecutions on arn:x failed",
            &["failed to load credentials: request forbidden: IMDS is disabled".into()],
            None,
        );
        assert!(
            no_creds
                .is_some_and(|h| h.contains("scripts/local-aws env") && h.contains("AWS_PROFILE"))
        );
        let down = hint(
            "GetMetricData failed",
            &["dispatch failure: io error: Connection refused".into()],
            Some("http://127.0.0.1:4566"),
        );
        assert!(
            down.is_some_and(|h| h.contains("http://127.0.0.1:4566") && h.contains("local-aws up"))
        );
        assert_eq!(hint("database p.db: disk full", &[], None), None);
    }
}
