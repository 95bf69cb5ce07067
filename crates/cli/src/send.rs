//! `pipeline send`: publish events to the deployed pipeline's ingest bus on EventBridge.
//!
//! Reads the inputs `pipeline run` reads (JSON Lines of events, an MSK `KafkaEvent`, an
//! EventBridge event or a batch document; `-` is stdin) and packs the events into `PutEvents`
//! entries whose detail is `{"events": [...]}`, the shape ingest decodes: at most
//! `--events-per-entry` events per entry, and every entry under EventBridge's 256 KB limit. A call
//! carries at most 10 entries and 256 KB (the API's limits); a few calls are in flight at once.
//!
//! Packing and sending are [`pipeline_aws::publish`]'s: `PutEvents` can accept some entries of
//! a call and refuse others, and only the refused ones are sent again, at most
//! [`pipeline_aws::publish::MAX_RETRIES`] times; entries that still fail are listed here with
//! their error code and make the exit code 3. This module reads the inputs, shows progress and
//! prints the summary.
//! Nothing is dropped silently: a line that is not JSON is sent as a JSON string holding its
//! text, so the pipeline quarantines it with the original text instead of it vanishing here.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use pipeline_aws::publish::{FailedEntry, OutEvent, Publisher};
use pipeline_ingest::{self as ingest, Item};

use serde::Serialize;
use serde_json::Value;

use crate::error::CliError;

/// The bus used when neither `--bus` nor `INGEST_BUS_NAME` is given.
pub const DEFAULT_BUS: &str = "pipeline-ingest";
/// `source` of every entry unless `--source` says otherwise.
pub const DEFAULT_SOURCE: &str = "com.example.events";
/// `detail-type` of every entry unless `--detail-type` says otherwise.
pub const DEFAULT_DETAIL_TYPE: &str = "business.events";
/// Arguments of `pipeline send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Input files (`-` for stdin), in any format `pipeline run` takes.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// The ingest event bus (name or ARN); the stack output `IngestBusName`.
    #[arg(long, env = "INGEST_BUS_NAME", default_value = DEFAULT_BUS)]
    bus: String,
    /// `source` of the entries.
    #[arg(long, default_value = DEFAULT_SOURCE)]
    source: String,
    /// `detail-type` of the entries.
    #[arg(long, default_value = DEFAULT_DETAIL_TYPE)]
    detail_type: String,
    /// Events per PutEvents entry (each entry's detail is `{"events": [...]}`); an entry is
    /// closed earlier when the next event would take it over 256 KB. Not the number of entries
    /// per PutEvents call, which is always up to EventBridge's 10.
    #[arg(
        long,
        visible_alias = "batch-events",
        default_value_t = 1,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    events_per_entry: u64,
    /// `PutEvents` calls in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    concurrency: u64,
    /// Print the summary as one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// The summary of a `pipeline send` (`--json` prints exactly this).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The bus sent to.
    pub bus: String,
    /// Events per entry at most (`--events-per-entry`).
    pub events_per_entry: u64,
    /// Events read from the inputs.
    pub events: usize,
    /// Of those, items that were not JSON (or not decodable) and were sent as JSON strings.
    pub not_json: usize,
    /// Entries built (plus one per event too large for an entry of its own).
    pub entries: usize,
    /// Entries EventBridge accepted.
    pub sent: usize,
    /// Entries still refused after the retries (or too large to send).
    pub failed: usize,
    /// Events in accepted entries.
    pub events_sent: usize,
    /// Events in failed entries.
    pub events_failed: usize,
    /// Entry resends (an entry resent twice counts twice).
    pub retried: usize,
    /// `PutEvents` calls made.
    pub calls: usize,
    /// Wall time, seconds.
    pub elapsed_s: f64,
    /// Events accepted per second.
    pub events_per_s: f64,
    /// Every failed entry, with its last error.
    pub failures: Vec<FailedEntry>,
}

/// Loads the SDK configuration (`pipeline_aws::sdk_config`) and checks that a region is set,
/// so that a missing region is reported once, up front, instead of failing every call.
/// `pipeline watch` uses it too.
pub async fn aws_config() -> Result<aws_config::SdkConfig, CliError> {
    let sdk = pipeline_aws::sdk_config().await;
    if sdk.region().is_none() {
        return Err(CliError::Config(
            "no AWS region: set AWS_REGION (or use a profile with a region)".into(),
        ));
    }
    Ok(sdk)
}

/// Runs the command.
pub fn send(args: SendArgs) -> Result<ExitCode, CliError> {
    let runtime = crate::input::runtime()?;
    runtime.block_on(send_async(args))
}

async fn send_async(args: SendArgs) -> Result<ExitCode, CliError> {
    let started = Instant::now();
    let mut events = Vec::new();
    let mut not_json = 0;
    for input in &args.inputs {
        let (mut read, bad) = read_input(input)?;
        events.append(&mut read);
        not_json += bad;
    }
    if not_json > 0 {
        eprintln!(
            "warning: {not_json} item(s) are not JSON; they are sent as JSON strings holding their text, so the pipeline quarantines them"
        );
    }
    let total_events = events.len();
    let per_entry = usize::try_from(args.events_per_entry).unwrap_or(usize::MAX);
    let concurrency = usize::try_from(args.concurrency).unwrap_or(1);
    let publisher = Publisher::new(
        &aws_config().await?,
        &args.bus,
        &args.source,
        &args.detail_type,
        concurrency,
    );
    let bar = progress_bar(total_events);
    let mut accepted = 0;
    let result = publisher
        .publish(events, per_entry, |sent, failed| {
            accepted += sent;
            bar.inc((sent + failed) as u64);
        })
        .await;
    bar.finish_and_clear();
    let published = result.map_err(|e| {
        eprintln!(
            "stopped: {accepted} of {total_events} events had been accepted (calls still in flight may have added more)"
        );
        CliError::from(e)
    })?;
    let failures = published.failures;

    let elapsed = started.elapsed().as_secs_f64();
    let summary = Summary {
        bus: args.bus,
        events_per_entry: args.events_per_entry,
        events: total_events,
        not_json,
        entries: published.entries,
        sent: published.sent,
        failed: failures.len(),
        events_sent: published.events_sent,
        events_failed: failures.iter().map(|f| f.events.len()).sum(),
        retried: published.retried,
        calls: published.calls,
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        events_per_s: if elapsed > 0.0 {
            (published.events_sent as f64 / elapsed).round()
        } else {
            0.0
        },
        failures,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        print_summary(&summary);
    }
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn progress_bar(total: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn print_summary(s: &Summary) {
    println!(
        "pipeline send: {} events to bus {} in {:.2} s ({} events/s)",
        s.events, s.bus, s.elapsed_s, s.events_per_s
    );
    println!(
        "  entries      {:>8}   (up to {} event(s) each)",
        s.entries, s.events_per_entry
    );
    println!("  sent         {:>8}   ({} events)", s.sent, s.events_sent);
    println!(
        "  failed       {:>8}   ({} events)",
        s.failed, s.events_failed
    );
    println!("  retried      {:>8}   (entry resends)", s.retried);
    println!("  calls        {:>8}", s.calls);
    if s.not_json > 0 {
        println!("  not JSON     {:>8}   (sent as strings)", s.not_json);
    }
    for f in &s.failures {
        eprintln!(
            "failed: {} ({}): {}",
            f.code,
            f.message,
            f.events.join(", ")
        );
    }
}

/// Reads one input into events; also returns how many items were not JSON.
fn read_input(input: &str) -> Result<(Vec<OutEvent>, usize), CliError> {
    let text = crate::input::read_text(input)?;
    let payloads = decode(input, &text)?;
    let mut bad = 0;
    let events = payloads
        .into_iter()
        .enumerate()
        .map(|(i, (payload, decoded))| {
            if !decoded {
                bad += 1;
            }
            let label = payload
                .get("event_id")
                .and_then(Value::as_str)
                .map_or_else(|| format!("{input} #{}", i + 1), str::to_owned);
            OutEvent {
                json: payload.to_string(),
                label,
            }
        })
        .collect();
    Ok((events, bad))
}

/// The payloads in `text`, each with whether it was decoded (`false`: kept as its raw text).
/// Recognises what `pipeline run` recognises, with the same decoders as ingest.
fn decode(input: &str, text: &str) -> Result<Vec<(Value, bool)>, CliError> {
    let from_items = |items: Vec<Item>| {
        items
            .into_iter()
            .map(|item| match item {
                Item::Event(raw) => (raw.payload, true),
                Item::Quarantined(q) => (q.payload, false),
            })
            .collect()
    };
    if let Ok(doc) = serde_json::from_str::<Value>(text) {
        if ingest::kind_of(&doc).is_some() {
            return Ok(from_items(ingest::decode(&doc)?));
        }
        if doc.get("batch_id").is_some() {
            if let Some(events) = doc.get("events").and_then(Value::as_array) {
                return Ok(batch_payloads(&doc, events));
            }
        }
    }
    let lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    Ok(from_items(ingest::decode_lines(input, lines)))
}

/// The events of a batch document of any stage (raw `payload` or typed `event`), then the
/// payloads of its quarantine: together they are the batch's `input_count` events.
fn batch_payloads(doc: &Value, events: &[Value]) -> Vec<(Value, bool)> {
    let mut out: Vec<(Value, bool)> = events
        .iter()
        .filter_map(|e| e.get("payload").or_else(|| e.get("event")).cloned())
        .map(|p| (p, true))
        .collect();
    if let Some(q) = doc.get("quarantine").and_then(Value::as_array) {
        out.extend(
            q.iter()
                .filter_map(|q| q.get("payload").cloned())
                .map(|p| (p, true)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn inputs_decode_like_pipeline_run() {
        let lines = "{\"event_id\":\"a\"}\n\nnot json\n{\"event_id\":\"b\"}\n";
        let got = decode("f.jsonl", lines).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], (Value::String("not json".into()), false));
        let eb = r#"{"detail-type":"x","source":"s","detail":{"events":[{"event_id":"a"},{"event_id":"b"}]}}"#;
        assert_eq!(decode("eb.json", eb).unwrap().len(), 2);
        let batch = r#"{"batch_id":"b-1","events":[{"payload":{"event_id":"a"}}],"quarantine":[{"payload":"bad"}]}"#;
        let got = decode("batch.json", batch).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0["event_id"], "a");
    }
}
