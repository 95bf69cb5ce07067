//! `pipeline send`: publish events to the deployed pipeline's ingest bus on EventBridge.
//!
//! Reads the inputs `pipeline run` reads (JSON Lines of events, an MSK `KafkaEvent`, an
//! EventBridge event or a batch document; `-` is stdin) and packs the events into `PutEvents`
//! entries whose detail is `{"events": [...]}`, the shape ingest decodes: at most
//! `--events-per-entry` events per entry, and every entry under EventBridge's 256 KB limit. A call
//! carries at most 10 entries and 256 KB (the API's limits); a few calls are in flight at once.
//!
//! `PutEvents` can accept some entries of a call and refuse others. Only the refused entries
//! are sent again ([`pipeline_aws::eventbridge::put_with_resend`], also used by persist's
//! announcer), at most [`MAX_RETRIES`] times; entries that still fail are listed with their
//! error code and make the exit code 3.
//! Nothing is dropped silently: a line that is not JSON is sent as a JSON string holding its
//! text, so the pipeline quarantines it with the original text instead of it vanishing here.
//!
//! (About 780 lines, of which 280 are tests: packing entries and calls under the API's limits
//! and the tests that pin those limits belong together.)

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use backon::ExponentialBuilder;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
pub use pipeline_aws::eventbridge::{Failure, MAX_ENTRIES_PER_CALL};
use pipeline_aws::eventbridge::{backoff, put_with_resend};
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
/// EventBridge's size limit, both for one entry and for all entries of one call. An entry's
/// size is the UTF-8 length of its source, detail-type and detail (no `Time`, no `Resources`
/// are set here), as EventBridge counts it.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// How many times refused entries are sent again before they are reported as failed.
pub const MAX_RETRIES: usize = 5;

/// `{"events":[` and `]}` around the events of a detail.
const DETAIL_PREFIX: &str = "{\"events\":[";
const DETAIL_SUFFIX: &str = "]}";

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

/// One event as it will be written into a detail.
#[derive(Debug, Clone, PartialEq)]
pub struct OutEvent {
    /// Compact JSON of the event.
    pub json: String,
    /// How reports name it: its `event_id`, or `INPUT #n` when it has none.
    pub label: String,
}

/// One `PutEvents` entry: its detail and the events inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `{"events": [...]}`.
    pub detail: String,
    /// The labels of the events in the detail, in order.
    pub labels: Vec<String>,
}

/// An entry that was still refused after the last retry, or an event that could not be sent.
#[derive(Debug, Clone, Serialize)]
pub struct FailedEntry {
    /// The last error code.
    pub code: String,
    /// The last error message.
    pub message: String,
    /// The events of the entry (their `event_id`s, or `INPUT #n`).
    pub events: Vec<String>,
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
    let overhead = args.source.len() + args.detail_type.len();
    let per_entry = usize::try_from(args.events_per_entry).unwrap_or(usize::MAX);
    let (entries, too_large) = pack_entries(events, per_entry, overhead);
    let mut failures: Vec<FailedEntry> = too_large
        .into_iter()
        .map(|e| FailedEntry {
            code: "TooLarge".into(),
            message: format!(
                "the event alone makes an entry of {} bytes or more; EventBridge takes less than {MAX_ENTRY_BYTES}",
                e.json.len() + DETAIL_PREFIX.len() + DETAIL_SUFFIX.len() + overhead
            ),
            events: vec![e.label],
        })
        .collect();
    let entry_count = entries.len() + failures.len();
    let calls = pack_calls(entries, overhead);

    let sender = Sender {
        client: Client::new(&aws_config().await?),
        bus: args.bus.clone(),
        source: args.source.clone(),
        detail_type: args.detail_type.clone(),
        retry: retry_policy(),
    };
    let bar = progress_bar(total_events);
    let (mut sent, mut events_sent, mut retried, mut call_count) = (0, 0, 0, 0);
    let concurrency = usize::try_from(args.concurrency).unwrap_or(1);
    let mut results = futures::stream::iter(calls.into_iter().map(|c| sender.send(c)))
        .buffer_unordered(concurrency);
    while let Some(result) = results.next().await {
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                bar.finish_and_clear();
                eprintln!(
                    "stopped: {events_sent} of {total_events} events had been accepted (calls still in flight may have added more)"
                );
                return Err(e);
            }
        };
        sent += outcome.sent_entries;
        events_sent += outcome.sent_events;
        retried += outcome.retried;
        call_count += outcome.calls;
        let failed_events: usize = outcome.failed.iter().map(|(e, _)| e.labels.len()).sum();
        bar.inc((outcome.sent_events + failed_events) as u64);
        failures.extend(outcome.failed.into_iter().map(|(e, f)| FailedEntry {
            code: f.code,
            message: f.message,
            events: e.labels,
        }));
    }
    bar.finish_and_clear();

    let elapsed = started.elapsed().as_secs_f64();
    let summary = Summary {
        bus: args.bus,
        events_per_entry: args.events_per_entry,
        events: total_events,
        not_json,
        entries: entry_count,
        sent,
        failed: failures.len(),
        events_sent,
        events_failed: failures.iter().map(|f| f.events.len()).sum(),
        retried,
        calls: call_count,
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        events_per_s: if elapsed > 0.0 {
            (events_sent as f64 / elapsed).round()
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

/// Packs events into entries of at most `per_entry` events, closing an entry early when the
/// next event would take it to [`MAX_ENTRY_BYTES`] (`overhead` = bytes of source and
/// detail-type). An event too large for an entry of its own is returned in the second list.
pub fn pack_entries(
    events: Vec<OutEvent>,
    per_entry: usize,
    overhead: usize,
) -> (Vec<Entry>, Vec<OutEvent>) {
    let empty = overhead + DETAIL_PREFIX.len() + DETAIL_SUFFIX.len();
    let mut entries = Vec::new();
    let mut too_large = Vec::new();
    let mut current: Vec<OutEvent> = Vec::new();
    let mut size = empty;
    for event in events {
        if empty + event.json.len() >= MAX_ENTRY_BYTES {
            too_large.push(event);
            continue;
        }
        // A comma before every event but the first.
        let added = event.json.len() + usize::from(!current.is_empty());
        if !current.is_empty() && (current.len() >= per_entry || size + added >= MAX_ENTRY_BYTES) {
            entries.push(entry(std::mem::take(&mut current)));
            size = empty;
        }
        size += event.json.len() + usize::from(!current.is_empty());
        current.push(event);
    }
    if !current.is_empty() {
        entries.push(entry(current));
    }
    (entries, too_large)
}

fn entry(events: Vec<OutEvent>) -> Entry {
    let mut detail = String::from(DETAIL_PREFIX);
    let mut labels = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        if i > 0 {
            detail.push(',');
        }
        detail.push_str(&e.json);
        labels.push(e.label);
    }
    detail.push_str(DETAIL_SUFFIX);
    Entry { detail, labels }
}

/// Groups entries into calls of at most [`MAX_ENTRIES_PER_CALL`] entries and less than
/// [`MAX_ENTRY_BYTES`] in total, keeping their order.
pub fn pack_calls(entries: Vec<Entry>, overhead: usize) -> Vec<Vec<Entry>> {
    let mut calls = Vec::new();
    let mut current: Vec<Entry> = Vec::new();
    let mut size = 0;
    for e in entries {
        let n = overhead + e.detail.len();
        if !current.is_empty()
            && (current.len() >= MAX_ENTRIES_PER_CALL || size + n >= MAX_ENTRY_BYTES)
        {
            calls.push(std::mem::take(&mut current));
            size = 0;
        }
        size += n;
        current.push(e);
    }
    if !current.is_empty() {
        calls.push(current);
    }
    calls
}

/// What became of one call's entries, retries included.
struct CallOutcome {
    sent_entries: usize,
    sent_events: usize,
    failed: Vec<(Entry, Failure)>,
    retried: usize,
    calls: usize,
}

/// How refused entries are retried: exponential backoff from 100 ms to 5 s with jitter, so
/// that throttled senders do not come back in step, at most [`MAX_RETRIES`] times (about 6 s
/// of waiting at most per call, more with jitter).
fn retry_policy() -> ExponentialBuilder {
    backoff(
        Duration::from_millis(100),
        Duration::from_secs(5),
        MAX_RETRIES,
    )
}

/// Sends calls to one bus.
struct Sender {
    client: Client,
    bus: String,
    source: String,
    detail_type: String,
    retry: ExponentialBuilder,
}

impl Sender {
    /// Sends one call's entries, then resends the refused ones until all are accepted or the
    /// retries are used up. `Err` only for a call failure that retrying cannot fix.
    async fn send(&self, entries: Vec<Entry>) -> Result<CallOutcome, CliError> {
        let entry = |e: &Entry| {
            PutEventsRequestEntry::builder()
                .event_bus_name(&self.bus)
                .source(&self.source)
                .detail_type(&self.detail_type)
                .detail(&e.detail)
                .build()
        };
        let out = put_with_resend(&self.client, entries, entry, &self.retry)
            .await
            .map_err(|e| CliError::aws(format!("PutEvents on bus {}", self.bus), e))?;
        Ok(CallOutcome {
            sent_entries: out.accepted.len(),
            sent_events: out.accepted.iter().map(|e| e.labels.len()).sum(),
            failed: out.refused,
            retried: out.resent,
            calls: out.calls,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    use super::*;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use pipeline_aws::eventbridge::{result_of, to_resend};

    fn ev(label: &str, bytes: usize) -> OutEvent {
        // A JSON string of `bytes` bytes in total (quotes included).
        OutEvent {
            json: format!("\"{}\"", "x".repeat(bytes - 2)),
            label: label.into(),
        }
    }

    fn e(label: &str) -> Entry {
        entry(vec![ev(label, 10)])
    }

    fn failure(code: &str) -> Option<Failure> {
        Some(Failure {
            code: code.into(),
            message: String::new(),
        })
    }

    /// A stand-in for EventBridge on 127.0.0.1 that answers `PutEvents` by asking `answer`
    /// for an error code (or `None`: accepted) per entry detail, and records every call's
    /// details. Enough HTTP/1.1 for the SDK: one JSON request per exchange, keep-alive.
    fn fake_eventbridge(
        answer: impl FnMut(&str) -> Option<&'static str> + Send + 'static,
    ) -> (String, Arc<Mutex<Vec<Vec<String>>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer));
        let recorded = Arc::clone(&calls);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let (calls, answer) = (Arc::clone(&recorded), Arc::clone(&answer));
                std::thread::spawn(move || serve(stream.unwrap(), &calls, &answer));
            }
        });
        (endpoint, calls)
    }

    fn serve(
        stream: TcpStream,
        calls: &Mutex<Vec<Vec<String>>>,
        answer: &Mutex<impl FnMut(&str) -> Option<&'static str>>,
    ) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        loop {
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end().to_ascii_lowercase();
                if line.is_empty() {
                    break;
                }
                if let Some(v) = line.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let request: Value = serde_json::from_slice(&body).unwrap();
            let details: Vec<String> = request["Entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["Detail"].as_str().unwrap().to_owned())
                .collect();
            let results: Vec<Value> = {
                let mut answer = answer.lock().unwrap();
                details
                    .iter()
                    .enumerate()
                    .map(|(i, d)| match (*answer)(d) {
                        None => serde_json::json!({ "EventId": format!("id-{i}") }),
                        Some(code) => {
                            serde_json::json!({ "ErrorCode": code, "ErrorMessage": "no" })
                        }
                    })
                    .collect()
            };
            let failed = results
                .iter()
                .filter(|r| r.get("ErrorCode").is_some())
                .count();
            calls.lock().unwrap().push(details);
            let response =
                serde_json::json!({ "FailedEntryCount": failed, "Entries": results }).to_string();
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{response}",
                response.len()
            )
            .unwrap();
            out.flush().unwrap();
        }
    }

    fn sender(endpoint: &str) -> Sender {
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        Sender {
            client: Client::from_conf(config),
            bus: "bus".into(),
            source: DEFAULT_SOURCE.into(),
            detail_type: DEFAULT_DETAIL_TYPE.into(),
            retry: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(1))
                .with_max_delay(Duration::from_millis(5))
                .with_max_times(MAX_RETRIES)
                .with_jitter(),
        }
    }

    #[tokio::test]
    async fn refused_entries_and_only_those_are_resent_until_accepted_or_reported() {
        // "flaky" is throttled on its first call only; "bad" is refused every time.
        let mut flaky_seen = false;
        let (endpoint, calls) = fake_eventbridge(move |detail| {
            if detail.contains("flaky") && !flaky_seen {
                flaky_seen = true;
                Some("ThrottlingException")
            } else if detail.contains("bad") {
                Some("InternalFailure")
            } else {
                None
            }
        });
        let entries: Vec<Entry> = ["ok", "flaky", "bad"]
            .iter()
            .map(|id| {
                entry(vec![OutEvent {
                    json: format!("{{\"event_id\":\"{id}\"}}"),
                    label: (*id).to_owned(),
                }])
            })
            .collect();
        let outcome = sender(&endpoint).send(entries).await.unwrap();

        assert_eq!(outcome.sent_entries, 2);
        assert_eq!(outcome.sent_events, 2);
        assert_eq!(outcome.failed.len(), 1);
        assert_eq!(outcome.failed[0].0.labels, ["bad"]);
        assert_eq!(outcome.failed[0].1.code, "InternalFailure");
        assert_eq!(outcome.calls, 1 + MAX_RETRIES);
        assert_eq!(outcome.retried, 2 + (MAX_RETRIES - 1));

        // What went over the wire: everything once, then only what had been refused.
        let ids = |call: &Vec<String>| -> Vec<String> {
            call.iter()
                .map(|d| {
                    let v: Value = serde_json::from_str(d).unwrap();
                    v["events"][0]["event_id"].as_str().unwrap().to_owned()
                })
                .collect()
        };
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 1 + MAX_RETRIES);
        assert_eq!(ids(&calls[0]), ["ok", "flaky", "bad"]);
        assert_eq!(ids(&calls[1]), ["flaky", "bad"]);
        assert!(calls[2..].iter().all(|c| ids(c) == ["bad"]), "{calls:?}");
    }

    #[test]
    fn only_refused_entries_are_resent_in_order() {
        let sent = vec![e("a"), e("b"), e("c"), e("d")];
        let results = [
            None,
            failure("ThrottlingException"),
            None,
            failure("InternalFailure"),
        ];
        let again = to_resend(sent, &results);
        let labels: Vec<_> = again.iter().map(|(e, _)| e.labels[0].as_str()).collect();
        assert_eq!(labels, ["b", "d"]);
        assert_eq!(again[0].1.code, "ThrottlingException");
        assert_eq!(again[1].1.code, "InternalFailure");
        assert!(to_resend(vec![e("a"), e("b")], &[None, None]).is_empty());
    }

    #[test]
    fn entries_without_a_result_are_resent_not_dropped() {
        let again = to_resend(vec![e("a"), e("b"), e("c")], &[None]);
        let labels: Vec<_> = again.iter().map(|(e, _)| e.labels[0].as_str()).collect();
        assert_eq!(labels, ["b", "c"]);
        assert_eq!(again[0].1.code, "MissingResult");
    }

    #[test]
    fn results_without_event_id_count_as_failed() {
        let ok = PutEventsResultEntry::builder().event_id("1").build();
        let bad = PutEventsResultEntry::builder()
            .error_code("ThrottlingException")
            .error_message("slow down")
            .build();
        let empty = PutEventsResultEntry::builder().build();
        assert_eq!(result_of(&ok), None);
        assert_eq!(result_of(&bad).unwrap().message, "slow down");
        assert_eq!(result_of(&empty).unwrap().code, "NoEventId");
    }

    #[test]
    fn entries_hold_at_most_events_per_entry_and_stay_under_the_size_limit() {
        let events: Vec<_> = (0..5).map(|i| ev(&format!("e{i}"), 20)).collect();
        let (entries, too_large) = pack_entries(events.clone(), 2, 10);
        assert!(too_large.is_empty());
        let sizes: Vec<_> = entries.iter().map(|e| e.labels.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let detail: Value = serde_json::from_str(&entries[0].detail).unwrap();
        assert_eq!(detail["events"].as_array().unwrap().len(), 2);

        // 100 KB events: two fit under 256 KB, a third does not, even with --events-per-entry 10.
        let big: Vec<_> = (0..5).map(|i| ev(&format!("b{i}"), 100_000)).collect();
        let (entries, _) = pack_entries(big, 10, 40);
        let sizes: Vec<_> = entries.iter().map(|e| e.labels.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(
            entries
                .iter()
                .all(|e| e.detail.len() + 40 < MAX_ENTRY_BYTES)
        );
    }

    #[test]
    fn an_event_too_large_for_any_entry_is_reported_not_sent() {
        let events = vec![ev("small", 10), ev("huge", MAX_ENTRY_BYTES), ev("tail", 10)];
        let (entries, too_large) = pack_entries(events, 1, 30);
        assert_eq!(entries.len(), 2);
        assert_eq!(too_large.len(), 1);
        assert_eq!(too_large[0].label, "huge");
    }

    #[test]
    fn calls_take_ten_entries_and_stay_under_the_size_limit() {
        let entries: Vec<_> = (0..25).map(|i| e(&format!("e{i}"))).collect();
        let sizes: Vec<_> = pack_calls(entries, 30).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let big: Vec<_> = (0..4)
            .map(|i| entry(vec![ev(&format!("b{i}"), 100_000)]))
            .collect();
        let sizes: Vec<_> = pack_calls(big, 30).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2]);
    }

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
