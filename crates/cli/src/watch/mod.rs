//! `pipeline watch`: a refreshing terminal view of the deployed pipeline, or one JSON snapshot
//! of it for scripts.
//!
//! What it shows — the state machine, its recent executions with the stage that failed and
//! persist's counts, and the pipeline's metrics over the window — is fetched by
//! [`pipeline_aws::watch::Watcher`], whose docs say where each part comes from; this module
//! parses the arguments, draws the view and refreshes it.
//!
//! The interactive view clears the screen with ANSI codes and redraws every `--interval`
//! seconds until Ctrl-C, each line cut to the terminal's width as it is then (so a resized
//! window gets a fitting view at the next refresh); an AWS error is shown in place of the view
//! and the next refresh tries again. `--once` prints one view (or with `--json` one JSON
//! object) and exits. It stays plain text rather than a TUI (ratatui): the same table reads
//! the same piped to a file or printed once, and an alternate screen would take the last view
//! away on exit.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use pipeline_aws::error::describe;
/// The metric namespace when neither `--namespace` nor `METRICS_NAMESPACE` is given: the
/// default of the template's `MetricsNamespace` parameter, which the functions write to.
pub use pipeline_aws::watch::DEFAULT_NAMESPACE;
use pipeline_aws::watch::{Settings, Watcher};

use crate::error::CliError;

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
    let watcher = Watcher::new(
        &sdk,
        Settings {
            stack: args.stack.clone().filter(|s| !s.trim().is_empty()),
            arn,
            namespace: args.namespace.clone(),
            minutes: args.minutes,
            executions: args.executions,
        },
    );
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

mod render;

use render::render;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use pipeline_aws::watch::{COUNTS, EXPRESS_NOTE, LAG, MachineView, Snapshot, no_metrics_note};
    use serde_json::Value;

    use super::*;

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
