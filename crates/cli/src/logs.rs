//! `pipeline logs`: the log lines of one execution, batch or event, from all five functions
//! (and the state machine's execution events), in time order.
//!
//! Every function line carries its invocation's correlation fields in `span` (`function`,
//! `request_id`, `execution`, `batch_id`; see `pipeline_handlers::telemetry`), and per-event
//! lines an `event_id`, so one `FilterLogEvents` per log group with the id as a quoted term
//! finds the candidates, and the fields decide exactly. Printed readably on a terminal, as
//! JSON Lines otherwise (or with `--json`).

use std::collections::HashSet;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use pipeline_handlers::Stage;
use serde_json::{Value, json};

use crate::error::CliError;
use pipeline_aws::history;
use pipeline_aws::logs::{self as cwlogs, LogLine};

/// The most lines read per log group and poll.
const READ_CAP: usize = 100_000;

/// How far back from now each poll of `--follow` reads again, for lines delivered late.
const FOLLOW_LOOKBACK_MS: i64 = 5 * 60_000;

/// Arguments of `pipeline logs`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["execution", "batch", "event"])))]
pub struct LogsArgs {
    /// The lines of this execution (its name: `<batch_id>-<received ms>`).
    #[arg(long)]
    execution: Option<String>,
    /// The lines of every execution of this batch.
    #[arg(long)]
    batch: Option<String>,
    /// The lines that name this event.
    #[arg(long)]
    event: Option<String>,
    /// How far back to look: e.g. `30m`, `6h`, `2d`.
    #[arg(long, default_value = "1h", value_parser = parse_since)]
    since: Duration,
    /// Keep printing new lines as they arrive, until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Print JSON Lines even on a terminal.
    #[arg(long)]
    json: bool,
    /// The stack name, which names the log groups (`/aws/lambda/<stack>-<stage>`,
    /// `/aws/vendedlogs/states/<stack>-pipeline`); by default read off the state machine's
    /// logging configuration.
    #[arg(long, env = "PIPELINE_STACK")]
    stack: Option<String>,
    /// The state machine, to find the stack when `--stack` is not given.
    #[arg(long, env = "STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,
}

/// `30s`, `15m`, `6h`, `2d`; a bare number is minutes.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "m"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30m, 6h or 2d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err("the duration must be more than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

/// What the lines must belong to.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    /// One execution, by name.
    Execution(String),
    /// Every execution of one batch.
    Batch(String),
    /// One event.
    Event(String),
}

impl Wanted {
    fn term(&self) -> &str {
        match self {
            Wanted::Execution(s) | Wanted::Batch(s) | Wanted::Event(s) => s,
        }
    }

    /// Whether a log message belongs: a function's JSON line by its fields, a state machine
    /// execution event by its execution's name.
    pub fn matches(&self, message: &str) -> bool {
        if let Some(e) = history::parse_log_event(message, 0) {
            let name = history::execution_name(&e.execution_arn);
            return match self {
                Wanted::Execution(x) => name == x,
                // Ingest names executions `<batch_id>-<received ms>`.
                Wanted::Batch(b) => name
                    .strip_prefix(b.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|ms| !ms.is_empty() && ms.bytes().all(|c| c.is_ascii_digit())),
                Wanted::Event(_) => false,
            };
        }
        let Ok(doc) = serde_json::from_str::<Value>(message) else {
            return false;
        };
        let field = |p: &str| doc.pointer(p).and_then(Value::as_str);
        match self {
            // Ingest's lines name the execution they start at the top level.
            Wanted::Execution(x) => {
                field("/span/execution") == Some(x) || field("/execution") == Some(x)
            }
            Wanted::Batch(b) => field("/span/batch_id") == Some(b) || field("/batch_id") == Some(b),
            Wanted::Event(e) => field("/event_id") == Some(e),
        }
    }
}

/// Runs the command.
pub fn logs(args: LogsArgs) -> Result<ExitCode, CliError> {
    let runtime = crate::input::runtime()?;
    runtime.block_on(logs_async(args))
}

async fn logs_async(args: LogsArgs) -> Result<ExitCode, CliError> {
    let wanted = match (&args.execution, &args.batch, &args.event) {
        (Some(x), _, _) => Wanted::Execution(x.clone()),
        (_, Some(b), _) => Wanted::Batch(b.clone()),
        (_, _, Some(e)) => Wanted::Event(e.clone()),
        _ => {
            return Err(CliError::Config(
                "pass --execution, --batch or --event".into(),
            ));
        }
    };
    if wanted.term().is_empty() || wanted.term().contains('"') {
        return Err(CliError::Config(
            "the id must be non-empty and contain no double quote".into(),
        ));
    }
    let sdk = crate::send::aws_config().await?;
    let stack = match args.stack.clone().filter(|s| !s.trim().is_empty()) {
        Some(s) => s,
        None => stack_from_machine(&sdk, args.state_machine_arn.as_deref()).await?,
    };
    let client = cwlogs::Client::new(&sdk);
    let mut groups: Vec<(String, &'static str)> = Stage::ALL
        .iter()
        .map(|s| (cwlogs::function_group(&stack, s.as_str()), s.as_str()))
        .collect();
    groups.push((cwlogs::machine_group(&stack), "states"));
    let pretty = !args.json && std::io::stdout().is_terminal();
    let pattern = format!("\"{}\"", wanted.term());

    let since_ms = i64::try_from(args.since.as_millis()).unwrap_or(i64::MAX);
    let first_start = Utc::now().timestamp_millis().saturating_sub(since_ms);
    let mut start = first_start;
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut warned: HashSet<String> = HashSet::new();
    let mut printed = 0usize;
    let mut polls = 0usize;
    loop {
        polls += 1;
        let reads = futures::future::join_all(
            groups
                .iter()
                .map(|(g, _)| cwlogs::read(&client, g, start, None, Some(&pattern), READ_CAP)),
        )
        .await;
        let mut lines: Vec<(LogLine, &'static str)> = Vec::new();
        let mut missing = Vec::new();
        for (read, (group, source)) in reads.into_iter().zip(&groups) {
            let read = match read {
                Ok(read) => read,
                // Once following, a failed poll (throttling, a dropped connection) is said
                // and tried again at the next one instead of ending the command.
                Err(e) if polls > 1 => {
                    eprintln!(
                        "warning: {e}; trying again at the next poll (each poll reads the last \
                         5 minutes: a failure longer than that loses lines)"
                    );
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if read.missing {
                missing.push(group.as_str());
            }
            if read.truncated && warned.insert(group.clone()) {
                eprintln!(
                    "warning: more than {READ_CAP} lines of {group} matched {pattern}: only the \
                     oldest were read; a shorter --since reads newer ones"
                );
            }
            for l in read.lines {
                if wanted.matches(&l.message) && seen.insert((l.group.clone(), l.id.clone())) {
                    lines.push((l, *source));
                }
            }
        }
        if printed == 0 && missing.len() == groups.len() {
            return Err(CliError::NotFound(format!(
                "none of the log groups of stack {stack} exists ({}, …): is --stack right?",
                groups[0].0
            )));
        }
        // Time order; lines of one instant keep the pipeline's stage order.
        lines.sort_by_key(|(l, source)| (l.t_ms, stage_rank(source)));
        for (l, source) in &lines {
            println!("{}", format_line(l, source, pretty));
        }
        printed += lines.len();
        if !args.follow {
            break;
        }
        // CloudWatch can deliver a line well after its timestamp (the state machine's vended
        // logs especially): each poll looks back a few minutes from now, and what was printed
        // already is skipped by its event id.
        start = first_start.max(Utc::now().timestamp_millis() - FOLLOW_LOOKBACK_MS);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if printed == 0 {
        let what = match &wanted {
            Wanted::Execution(x) => format!("execution {x}"),
            Wanted::Batch(b) => format!("batch {b}"),
            Wanted::Event(e) => format!("event {e}"),
        };
        return Err(CliError::NotFound(format!(
            "no log line of {what} in the last {} in the log groups of stack {stack}",
            humantime(args.since)
        )));
    }
    Ok(ExitCode::SUCCESS)
}

async fn stack_from_machine(
    sdk: &aws_config::SdkConfig,
    arn: Option<&str>,
) -> Result<String, CliError> {
    let Some(arn) = arn.filter(|a| !a.trim().is_empty()) else {
        return Err(CliError::Config(
            "which stack? pass --stack NAME (or PIPELINE_STACK), or --state-machine-arn \
             (STATE_MACHINE_ARN) to read it off the state machine's log group"
                .into(),
        ));
    };
    cwlogs::stack_of_machine(sdk, arn).await?.ok_or_else(|| {
        CliError::Config(format!(
            "the state machine {arn} logs to no log group named after a stack; pass --stack"
        ))
    })
}

fn stage_rank(source: &str) -> usize {
    Stage::ALL
        .iter()
        .position(|s| s.as_str() == source)
        .unwrap_or(Stage::ALL.len())
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// One line as printed: readable text, or a JSON object with where it came from.
pub fn format_line(l: &LogLine, source: &str, pretty: bool) -> String {
    let time = DateTime::from_timestamp_millis(l.t_ms).unwrap_or_default();
    let doc: Option<Value> = serde_json::from_str(&l.message).ok();
    if !pretty {
        return json!({
            "timestamp": time.to_rfc3339_opts(SecondsFormat::Millis, true),
            "log_group": l.group,
            "source": source,
            "message": doc.clone().unwrap_or_else(|| Value::String(l.message.clone())),
        })
        .to_string();
    }
    let clock = time.format("%H:%M:%S%.3f");
    let Some(doc) = doc else {
        return format!("{clock}  {source:<8} {}", l.message.trim_end());
    };
    if let Some(e) = history::parse_log_event(&l.message, l.t_ms) {
        let mut text = format!("{clock}  {source:<8} {:<5} {}", "", e.event.kind);
        if let Some(s) = &e.event.state {
            text.push_str(&format!(" {s}"));
        }
        if let Some(err) = &e.event.error {
            text.push_str(&format!(" error={err}"));
        }
        return text;
    }
    let level = doc.get("level").and_then(Value::as_str).unwrap_or("");
    let message = doc.get("message").and_then(Value::as_str).unwrap_or("");
    let mut text = format!("{clock}  {source:<8} {level:<5} {message}");
    if let Some(fields) = doc.as_object() {
        for (k, v) in fields {
            if matches!(k.as_str(), "level" | "message" | "span" | "timestamp") {
                continue;
            }
            match v {
                // An undecodable record has no event id: say nothing rather than `event_id=`.
                Value::String(s) if s.is_empty() => {}
                Value::String(s) => text.push_str(&format!(" {k}={s}")),
                other => text.push_str(&format!(" {k}={other}")),
            }
        }
    }
    if let Some(exec) = doc.pointer("/span/execution").and_then(Value::as_str) {
        text.push_str(&format!("  [{exec}]"));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const STAGE_DONE: &str = r#"{"level":"INFO","message":"stage done","stage":"validate","batch_id":"b-7","events":3,"quarantined":0,"span":{"function":"validate","request_id":"r1","xray_trace_id":"","execution":"b-7-1732771200000","batch_id":"b-7","name":"invocation"}}"#;
    const ANOMALY: &str = r#"{"level":"INFO","message":"anomaly scored","event_id":"evt-9","entity_id":"acct-1","score":0.9,"reasons":"value_outlier","span":{"function":"detect","request_id":"r2","xray_trace_id":"","execution":"b-7-1732771200000","batch_id":"b-7","name":"invocation"}}"#;
    const STARTED: &str = r#"{"id":"1","type":"ExecutionStarted","details":{},"previous_event_id":"0","event_timestamp":"1732771200100","execution_arn":"arn:aws:states:us-east-1:1:express:pipeline:b-7-1732771200000:u","redrive_count":"0"}"#;

    #[test]
    fn lines_belong_by_their_fields_not_by_text() {
        let batch = Wanted::Batch("b-7".into());
        assert!(batch.matches(STAGE_DONE) && batch.matches(ANOMALY) && batch.matches(STARTED));
        // b-7 is a prefix of b-70's id: the fields decide, not the text search.
        let other = STAGE_DONE.replace("b-7", "b-70");
        assert!(!batch.matches(&other));
        assert!(!batch.matches(&STARTED.replace("b-7-", "b-70-")));
        let exec = Wanted::Execution("b-7-1732771200000".into());
        assert!(exec.matches(STAGE_DONE) && exec.matches(STARTED));
        let event = Wanted::Event("evt-9".into());
        assert!(event.matches(ANOMALY) && !event.matches(STAGE_DONE) && !event.matches(STARTED));
        assert!(!batch.matches("REPORT RequestId: r1 Duration: 3 ms"));
    }

    #[test]
    fn since_takes_units() {
        assert_eq!(parse_since("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_since("15").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_since("2d").unwrap(), Duration::from_secs(172_800));
        assert!(
            parse_since("2w").is_err() && parse_since("0h").is_err() && parse_since("h").is_err()
        );
    }

    #[test]
    fn printed_readably_or_as_json() {
        let line = LogLine {
            group: "/aws/lambda/s-validate".into(),
            stream: "x".into(),
            t_ms: 1_732_771_200_123,
            id: "1".into(),
            message: STAGE_DONE.into(),
        };
        let text = format_line(&line, "validate", true);
        assert!(
            text.starts_with("05:20:00.123  validate INFO  stage done"),
            "{text}"
        );
        assert!(
            text.contains("events=3") && text.ends_with("[b-7-1732771200000]"),
            "{text}"
        );
        let doc: Value = serde_json::from_str(&format_line(&line, "validate", false)).unwrap();
        assert_eq!(doc["message"]["span"]["function"], "validate");
        assert_eq!(doc["timestamp"], "2024-11-28T05:20:00.123Z");

        // Ingest's line for an undecodable record: no event id to print, and the line's own
        // timestamp is not repeated after the clock.
        let line = LogLine {
            message: r#"{"timestamp":"2024-11-28T05:20:00.120Z","level":"WARN","message":"event quarantined","event_id":"","reasons":"bad_base64","stage":"ingest","batch_id":"b-7","span":{"function":"ingest","request_id":"r0","xray_trace_id":"","name":"invocation"}}"#.into(),
            ..line
        };
        let text = format_line(&line, "ingest", true);
        assert_eq!(
            text,
            "05:20:00.123  ingest   WARN  event quarantined batch_id=b-7 reasons=bad_base64 stage=ingest"
        );
    }
}
