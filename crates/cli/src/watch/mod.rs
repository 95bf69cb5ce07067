//! `pipeline watch`: a refreshing terminal view of the deployed pipeline, or one JSON snapshot
//! of it for scripts.
//!
//! - **State machine** (Step Functions): its type and status (`DescribeStateMachine`), and the
//!   most recent executions with their status, duration, the stage that failed and its error.
//!   Standard executions come from the API (`ListExecutions`, `GetExecutionHistory`). Express
//!   executions cannot be listed through the API, so they are read from the state machine's
//!   CloudWatch Logs log group (`FilterLogEvents`; see `history`). Either way, the event counts
//!   of an execution come from persist's summary line (`persist done`) in its log group. The
//!   `AWS/States` metrics (`ExecutionsStarted`, `ExecutionsSucceeded`, `ExecutionsFailed`, …)
//!   are shown for either type.
//! - **Pipeline metrics** (CloudWatch `GetMetricData`, one call): the functions' EMF metrics
//!   in the metrics namespace with the dimension `Function` = the stage name, the contract of
//!   the dashboard in template.yaml and of docs/deploy.md. Counts are summed over the last
//!   `--minutes` and over the five stages; the end-to-end lag (`EndToEndLagMs` of `persist`) is
//!   given as p99, average and maximum.
//!
//! The interactive view clears the screen with ANSI codes and redraws every `--interval`
//! seconds until Ctrl-C, each line cut to the terminal's width as it is then (so a resized
//! window gets a fitting view at the next refresh); an AWS error is shown in place of the view
//! and the next refresh tries again. `--once` prints one view (or with `--json` one JSON
//! object) and exits. It stays plain text rather than a TUI (ratatui): the same table reads
//! the same piped to a file or printed once, and an alternate screen would take the last view
//! away on exit.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use aws_sdk_cloudwatch::config::retry::RetryConfig;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_sfn::types::StateMachineType;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::CliError;

use pipeline_handlers::Stage;
/// The metric namespace when neither `--namespace` nor `METRICS_NAMESPACE` is given: the
/// default of the template's `MetricsNamespace` parameter, which the functions write to.
pub use pipeline_handlers::telemetry::DEFAULT_NAMESPACE;
use pipeline_handlers::telemetry::metric;
/// The stages, i.e. the values of the `Function` dimension.
pub const STAGES: [&str; 5] = [
    Stage::Ingest.as_str(),
    Stage::Validate.as_str(),
    Stage::Enrich.as_str(),
    Stage::Detect.as_str(),
    Stage::Persist.as_str(),
];
/// Count metrics, each summed over the window and the stages. `EventsQuarantined` comes from
/// every stage that quarantines; the others from one stage each, but asking every stage for
/// every count costs nothing (one call takes 500 queries) and keeps the totals right if a
/// metric moves to another stage.
pub const COUNTS: [&str; 9] = [
    metric::EVENTS_IN,
    metric::EVENTS_VALID,
    metric::EVENTS_QUARANTINED,
    metric::ANOMALIES,
    metric::PERSISTED,
    metric::DUPLICATES,
    metric::UPDATED,
    metric::STALE,
    metric::CONFLICTS,
];
/// Event time to persisted, per event, emitted by `persist`.
pub const LAG: &str = metric::END_TO_END_LAG_MS;
/// The `AWS/States` execution metrics of the state machine (dimension `StateMachineArn`).
pub const EXECUTION_METRICS: [&str; 6] = [
    "ExecutionsStarted",
    "ExecutionsSucceeded",
    "ExecutionsFailed",
    "ExecutionsTimedOut",
    "ExecutionsAborted",
    "ExecutionThrottled",
];
/// What the view says for an Express state machine that logs nowhere.
pub const EXPRESS_NOTE: &str = "Express executions are not listable through the Step Functions API (ListExecutions) \
     and this state machine logs to no CloudWatch Logs log group; set its logging (the template's \
     StateMachineLogLevel, ALL by default) to list them here; the counts come from the AWS/States metrics";

/// Arguments of `pipeline watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The pipeline's state machine; the stack output `StateMachineArn`.
    #[arg(long, env = "STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,
    /// The functions' metric namespace (the template parameter `MetricsNamespace`).
    #[arg(long, env = "METRICS_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Print one view and exit.
    #[arg(long)]
    once: bool,
    /// Print JSON instead of the view: one object per refresh, or exactly one with `--once`.
    #[arg(long)]
    json: bool,
    /// The metrics window: the last M minutes.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=1440))]
    minutes: u32,
    /// How many recent executions to list.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=1000))]
    executions: i32,
    /// The stack name, which names the functions' log groups (`/aws/lambda/<stack>-<stage>`)
    /// for the event counts; by default read off the state machine's log group.
    #[arg(long, env = "PIPELINE_STACK")]
    stack: Option<String>,
}

/// One view of the pipeline (`--json` prints exactly this).
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// When it was taken (RFC 3339, UTC).
    pub at: String,
    /// The metrics window, minutes.
    pub window_minutes: u32,
    /// The metric namespace read.
    pub namespace: String,
    /// The state machine.
    pub state_machine: MachineView,
    /// The most recent executions, newest first (empty for Express: see `executions_note`).
    pub executions: Vec<ExecutionView>,
    /// Why `executions` is empty although executions ran (Express).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executions_note: Option<String>,
    /// Totals over the window: every count in [`COUNTS`], and `EndToEndLagMsP99`,
    /// `EndToEndLagMsAverage`, `EndToEndLagMsMax` (null without data).
    pub metrics: BTreeMap<String, Value>,
    /// The non-zero counts per stage.
    pub by_function: BTreeMap<String, BTreeMap<String, Value>>,
    /// Set when CloudWatch returned no data point at all for the window, so the zeros in
    /// `metrics` mean "unknown", not "nothing happened"; says what the likely causes are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_note: Option<String>,
    /// Parts of the view that could not be fetched, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The state machine as `DescribeStateMachine` and `AWS/States` see it.
#[derive(Debug, Serialize)]
pub struct MachineView {
    /// Its ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// `STANDARD` or `EXPRESS`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `ACTIVE` or `DELETING`.
    pub status: Option<String>,
    /// [`EXECUTION_METRICS`] summed over the window.
    pub metrics: BTreeMap<String, Value>,
}

/// One execution.
#[derive(Debug, Serialize)]
pub struct ExecutionView {
    /// Execution name (`<batch_id>-<received ms>` for ingest's executions).
    pub name: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`, …
    pub status: String,
    /// Start (RFC 3339, UTC).
    pub start: Option<String>,
    /// Stop (RFC 3339, UTC); null while running.
    pub stop: Option<String>,
    /// The stage that failed (`validate` … `persist`, `quarantine`), also when the state
    /// machine caught the failure and quarantined the batch (the execution then succeeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_stage: Option<String>,
    /// The error that stage failed with (its `error_type`, or `States.Timeout` …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Persist's counts for the batch, when its summary line was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<BTreeMap<String, u64>>,
}

/// What the view says when CloudWatch has no data point at all for the window.
pub fn no_metrics_note(minutes: u32) -> String {
    format!(
        "no metric data in the last {minutes} min: either nothing ran in that window, or the \
         endpoint is an emulator that keeps no metrics of its own (moto returns only what was \
         put into it), or the credentials lack cloudwatch:GetMetricData; the counts below are \
         unknown, not zero"
    )
}

/// Runs the command.
pub fn watch(args: WatchArgs) -> Result<ExitCode, CliError> {
    let runtime = crate::input::runtime()?;
    runtime.block_on(watch_async(args))
}

async fn watch_async(args: WatchArgs) -> Result<ExitCode, CliError> {
    let arn = args
        .state_machine_arn
        .clone()
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| {
            CliError::Config(
                "no state machine: pass --state-machine-arn ARN or set STATE_MACHINE_ARN \
                 (the stack output StateMachineArn)"
                    .into(),
            )
        })?;
    let sdk = crate::send::aws_config().await?;
    let watcher = Watcher {
        sfn: aws_sdk_sfn::Client::new(&sdk),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
        logs: aws_sdk_cloudwatchlogs::Client::new(&sdk),
        stack: args.stack.clone().filter(|s| !s.trim().is_empty()),
        arn,
        namespace: args.namespace.clone(),
        minutes: args.minutes,
        executions: args.executions,
        finished: Default::default(),
    };
    if args.once {
        let snapshot = watcher.snapshot().await?;
        if args.json {
            println!("{}", serde_json::to_string(&snapshot).unwrap_or_default());
        } else {
            print!("{}", render(&snapshot, None));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let interval = Duration::from_secs(args.interval);
    let clear = !args.json && std::io::stdout().is_terminal();
    // Runs until Ctrl-C: the default SIGINT handling ends the process, and nothing here needs
    // undoing (no alternate screen, no hidden cursor).
    loop {
        let result = watcher.snapshot().await;
        let frame = match (&result, args.json) {
            (Ok(s), true) => format!("{}\n", serde_json::to_string(s).unwrap_or_default()),
            (Ok(s), false) => render(s, Some(args.interval)),
            (Err(e), _) => {
                eprintln!("error: {}", describe(e));
                String::new()
            }
        };
        let frame = if clear {
            let width = console::Term::stdout()
                .size_checked()
                .map(|(_, w)| usize::from(w));
            fit(&frame, width)
        } else {
            frame
        };
        let mut out = std::io::stdout().lock();
        if clear {
            // Home, then clear the screen: the fresh view replaces the old one.
            let _ = write!(out, "\x1b[H\x1b[2J");
        }
        let _ = out.write_all(frame.as_bytes());
        let _ = out.flush();
        drop(out);
        tokio::time::sleep(interval).await;
    }
}

/// The view fitted to a terminal `width` wide: rows of the executions table are cut (marked
/// with `…`) so that the columns stay aligned; prose (notes, warnings) is wrapped at word
/// boundaries under its label, so that none of it is lost.
fn fit(frame: &str, width: Option<usize>) -> String {
    let Some(width) = width.filter(|w| *w > 20) else {
        return frame.to_owned();
    };
    let mut out = String::with_capacity(frame.len());
    for line in frame.lines() {
        let table_row = line.starts_with("  ") && !line.trim_start().starts_with("note:");
        if line.chars().count() <= width {
            out.push_str(line);
        } else if table_row {
            out.extend(line.chars().take(width - 1));
            out.push('…');
        } else {
            // Continuation lines start under the text after the label column.
            let indent = " ".repeat(15.min(width / 3));
            let mut current = String::new();
            for word in line.split(' ') {
                let len = current.chars().count();
                if len > 0 && len + 1 + word.chars().count() > width {
                    out.push_str(current.trim_end());
                    out.push('\n');
                    current = indent.clone();
                } else if len > 0 {
                    current.push(' ');
                }
                current.push_str(word);
            }
            out.push_str(current.trim_end());
        }
        out.push('\n');
    }
    out
}

/// An error and its causes on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

mod fetch;
pub(crate) mod history;
mod metrics;
mod render;

use fetch::Watcher;
#[cfg(test)]
use fetch::{Finished, number, slices, window};
use render::render;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_window_is_read_newest_first_in_doubling_slices() {
        let m = 60_000;
        let got: Vec<(i64, i64)> = slices(0, 15 * m).collect();
        assert_eq!(
            got,
            [
                (14 * m, 15 * m),
                (12 * m, 14 * m),
                (8 * m, 12 * m),
                (0, 8 * m)
            ]
        );
        assert_eq!(slices(5, 5).count(), 0);
        assert_eq!(slices(0, 30_000).collect::<Vec<_>>(), [(0, 30_000)]);
    }

    #[test]
    fn finished_histories_are_kept_while_listed_and_running_ones_never() {
        let failed = history::Summary {
            status: Some("SUCCEEDED"),
            failed_stage: Some("enrich".into()),
            error: Some("Pipeline.Retryable.InjectedFault".into()),
            ..Default::default()
        };
        let mut f = Finished::default();
        f.remember("arn:a", false, &failed);
        f.remember("arn:b", true, &history::Summary::default());
        assert_eq!(f.get("arn:a"), Some(failed.clone()));
        assert_eq!(
            f.get("arn:b"),
            None,
            "a running execution's history still grows"
        );
        f.keep_only(["arn:a", "arn:c"]);
        assert_eq!(f.get("arn:a"), Some(failed));
        f.keep_only(["arn:c"]);
        assert_eq!(f.get("arn:a"), None, "no longer listed: forgotten");
    }

    #[test]
    fn the_window_is_whole_minutes_ending_after_now() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T04:40:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let (start, end) = window(now, 15);
        assert_eq!(end - start, 900);
        assert_eq!(end % 60, 0);
        assert!(end > now.timestamp() && end - now.timestamp() <= 60);
    }

    #[test]
    fn table_rows_are_cut_and_prose_is_wrapped_to_the_terminal_width() {
        let frame = "short\n  SUCCEEDED  2026-11-28 03:38:18  4.4 s  enrich  name\n\
                     metrics        no metric data in the last 15 min: the counts are unknown\n";
        let fitted = fit(frame, Some(30));
        let lines: Vec<&str> = fitted.lines().collect();
        assert_eq!(lines[0], "short");
        assert_eq!(lines[1], "  SUCCEEDED  2026-11-28 03:38…");
        assert_eq!(lines[2], "metrics        no metric data");
        assert!(
            lines[3..].iter().all(|l| l.starts_with("          ")),
            "{fitted}"
        );
        assert!(lines.iter().all(|l| l.chars().count() <= 30), "{fitted}");
        // Nothing of the prose is lost.
        let words: Vec<&str> = lines[2..]
            .iter()
            .flat_map(|l| l.split_whitespace())
            .collect();
        assert_eq!(
            words.join(" "),
            "metrics no metric data in the last 15 min: the counts are unknown"
        );
        assert_eq!(fit(frame, None), frame);
    }

    #[test]
    fn counts_are_integers_and_other_values_are_rounded() {
        assert_eq!(number(42.0), Value::from(42));
        assert_eq!(number(12.345), serde_json::json!(12.35));
    }

    #[test]
    fn the_view_shows_counts_lag_and_the_express_note() {
        let mut metrics: BTreeMap<String, Value> = COUNTS
            .iter()
            .map(|m| (m.to_string(), Value::from(0)))
            .collect();
        metrics.insert("EventsIn".into(), Value::from(42));
        metrics.insert(format!("{LAG}P99"), Value::Null);
        let s = Snapshot {
            at: "2026-11-22T04:40:05Z".into(),
            window_minutes: 15,
            namespace: "EventPipeline".into(),
            state_machine: MachineView {
                arn: "arn:aws:states:us-east-1:123456789012:stateMachine:p".into(),
                name: "p".into(),
                kind: "EXPRESS".into(),
                status: Some("ACTIVE".into()),
                metrics: BTreeMap::new(),
            },
            executions: Vec::new(),
            executions_note: Some(EXPRESS_NOTE.into()),
            metrics,
            by_function: BTreeMap::new(),
            metrics_note: None,
            warnings: vec!["p99 unavailable".into()],
        };
        let text = render(&s, Some(5));
        assert!(text.contains("in 42"), "{text}");
        assert!(text.contains("not listable"), "{text}");
        assert!(text.contains("p99 - ms"), "{text}");
        assert!(text.contains("warning: p99 unavailable"), "{text}");

        // Without any data point the view says so instead of printing zeros.
        let s = Snapshot {
            metrics_note: Some(no_metrics_note(15)),
            ..s
        };
        let text = render(&s, None);
        assert!(text.contains("no metric data in the last 15 min"), "{text}");
        assert!(text.contains("(AWS/States, no data)"), "{text}");
        assert!(!text.contains("throughput"), "{text}");
        assert!(text.contains("warning: p99 unavailable"), "{text}");
        let json = serde_json::to_value(&s).unwrap_or_default();
        assert!(
            json["metrics_note"]
                .as_str()
                .is_some_and(|n| n.contains("unknown, not zero"))
        );
    }
}
