//! `PutEvents` for `pipeline send`: events packed into entries whose detail is
//! `{"events": [...]}` (the shape ingest decodes), entries packed into calls under the API's
//! limits, calls sent a few at a time, and refused entries resent.
//!
//! At most `per_entry` events go into one entry, and every entry stays under EventBridge's
//! 256 KB limit; a call carries at most 10 entries and 256 KB. `PutEvents` can accept some
//! entries of a call and refuse others: only the refused entries are sent again
//! ([`crate::eventbridge::put_with_resend`], also used by persist's announcer), at most
//! [`MAX_RETRIES`] times; entries that still fail are returned with their error code.
//!
//! (About 500 lines, of which 280 are tests: packing entries and calls under the API's limits
//! and the tests that pin those limits belong together.)

use std::time::Duration;

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use backon::ExponentialBuilder;
use futures::StreamExt;
use serde::Serialize;

use crate::error::Error;
pub use crate::eventbridge::{Failure, MAX_ENTRIES_PER_CALL};
use crate::eventbridge::{backoff, put_with_resend};

/// EventBridge's size limit, both for one entry and for all entries of one call. An entry's
/// size is the UTF-8 length of its source, detail-type and detail (no `Time`, no `Resources`
/// are set here), as EventBridge counts it.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// How many times refused entries are sent again before they are reported as failed.
pub const MAX_RETRIES: usize = 5;

/// `{"events":[` and `]}` around the events of a detail.
const DETAIL_PREFIX: &str = "{\"events\":[";
const DETAIL_SUFFIX: &str = "]}";

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

/// What a [`Publisher::publish`] did.
#[derive(Debug, Default)]
pub struct Published {
    /// Entries built (plus one per event too large for an entry of its own).
    pub entries: usize,
    /// Entries EventBridge accepted.
    pub sent: usize,
    /// Events in accepted entries.
    pub events_sent: usize,
    /// Entry resends (an entry resent twice counts twice).
    pub retried: usize,
    /// `PutEvents` calls made.
    pub calls: usize,
    /// Every entry still refused after the retries, or event too large to send.
    pub failures: Vec<FailedEntry>,
}

/// Sends events to one bus.
pub struct Publisher {
    sender: Sender,
    concurrency: usize,
}

impl Publisher {
    /// A publisher to `bus` with entries of `source` and `detail_type`, `concurrency` calls in
    /// flight at once.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        bus: &str,
        source: &str,
        detail_type: &str,
        concurrency: usize,
    ) -> Self {
        Publisher {
            sender: Sender {
                client: Client::new(sdk),
                bus: bus.to_owned(),
                source: source.to_owned(),
                detail_type: detail_type.to_owned(),
                retry: retry_policy(),
            },
            concurrency: concurrency.max(1),
        }
    }

    /// Packs `events` into entries of at most `per_entry` events and sends them. After each
    /// call, `progress(accepted, refused)` gets that call's events. `Err` only for a call
    /// failure that retrying cannot fix; the events accepted until then stay accepted.
    pub async fn publish(
        &self,
        events: Vec<OutEvent>,
        per_entry: usize,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Published, Error> {
        let s = &self.sender;
        let overhead = s.source.len() + s.detail_type.len();
        let (entries, too_large) = pack_entries(events, per_entry, overhead);
        let mut out = Published {
            failures: too_large
                .into_iter()
                .map(|e| FailedEntry {
                    code: "TooLarge".into(),
                    message: format!(
                        "the event alone makes an entry of {} bytes or more; EventBridge takes less than {MAX_ENTRY_BYTES}",
                        e.json.len() + DETAIL_PREFIX.len() + DETAIL_SUFFIX.len() + overhead
                    ),
                    events: vec![e.label],
                })
                .collect(),
            ..Published::default()
        };
        out.entries = entries.len() + out.failures.len();
        let calls = pack_calls(entries, overhead);
        let mut results = futures::stream::iter(calls.into_iter().map(|c| s.send(c)))
            .buffer_unordered(self.concurrency);
        while let Some(result) = results.next().await {
            let outcome = result?;
            out.sent += outcome.sent_entries;
            out.events_sent += outcome.sent_events;
            out.retried += outcome.retried;
            out.calls += outcome.calls;
            let failed_events: usize = outcome.failed.iter().map(|(e, _)| e.labels.len()).sum();
            progress(outcome.sent_events, failed_events);
            out.failures
                .extend(outcome.failed.into_iter().map(|(e, f)| FailedEntry {
                    code: f.code,
                    message: f.message,
                    events: e.labels,
                }));
        }
        Ok(out)
    }
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
    async fn send(&self, entries: Vec<Entry>) -> Result<CallOutcome, Error> {
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
            .map_err(|e| Error::call(format!("PutEvents on bus {}", self.bus), e))?;
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
    use crate::eventbridge::{result_of, to_resend};
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use serde_json::Value;

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
            source: "com.example.events".into(),
            detail_type: "business.events".into(),
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
}
