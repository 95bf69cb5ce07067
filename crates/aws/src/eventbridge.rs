//! EventBridge `PutEvents` with resends, shared by persist's announcer and `pipeline send`.
//!
//! A call can accept some entries and refuse others; the results are positional. The refused
//! entries, and only those, are sent again with exponential backoff and full jitter (the
//! `backon` crate) until all are accepted or the retries are used up. A call that fails as a
//! whole is retried the same way when the failure is transient ([`Cause`]); a rejected call
//! (missing bus, access denied) ends at once with the SDK error.

use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::operation::put_events::PutEventsError;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, PutEventsResultEntry};
use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Serialize;

use crate::cause::Cause;

/// Entries per `PutEvents` call (the API's limit).
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// The error of a `PutEvents` call.
pub type PutEventsSdkError = SdkError<PutEventsError, HttpResponse>;

/// Why an entry was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// EventBridge's error code (e.g. `ThrottlingException`), or ours (`TooLarge`).
    pub code: String,
    /// What it said.
    pub message: String,
}

/// Exponential backoff from `min` to `max` with jitter, so that throttled senders do not come
/// back in step, at most `times` resends.
pub fn backoff(min: Duration, max: Duration, times: usize) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_max_times(times)
        .with_jitter()
}

/// What became of the entries of one call, resends included.
#[derive(Debug)]
pub struct PutOutcome<T> {
    /// Accepted items.
    pub accepted: Vec<T>,
    /// Items still refused after the last resend, with the last reason.
    pub refused: Vec<(T, Failure)>,
    /// Entries sent again.
    pub resent: usize,
    /// `PutEvents` calls made.
    pub calls: usize,
}

/// Sends `items` (at most [`MAX_ENTRIES_PER_CALL`]) as one call, `entry` building each one's
/// request entry, then resends the refused ones following `policy`. `Err` only for a call
/// failure that retrying cannot fix.
pub async fn put_with_resend<T>(
    client: &Client,
    items: Vec<T>,
    entry: impl Fn(&T) -> PutEventsRequestEntry,
    policy: &ExponentialBuilder,
) -> Result<PutOutcome<T>, PutEventsSdkError> {
    let mut outcome = PutOutcome {
        accepted: Vec::new(),
        refused: Vec::new(),
        resent: 0,
        calls: 0,
    };
    let mut delays = policy.build();
    let mut pending = items;
    loop {
        let request: Vec<PutEventsRequestEntry> = pending.iter().map(&entry).collect();
        outcome.calls += 1;
        let results: Vec<Option<Failure>> =
            match client.put_events().set_entries(Some(request)).send().await {
                Ok(out) => out.entries().iter().map(result_of).collect(),
                Err(e) if Cause::of(&e).is_transient() => {
                    let failure = Failure {
                        code: e.code().unwrap_or("CallFailed").to_owned(),
                        message: DisplayErrorContext(&e).to_string(),
                    };
                    vec![Some(failure); pending.len()]
                }
                Err(e) => return Err(e),
            };
        let (accepted, refused) = split_results(pending, &results);
        outcome.accepted.extend(accepted);
        if refused.is_empty() {
            return Ok(outcome);
        }
        match delays.next() {
            Some(delay) => {
                let codes: Vec<&str> = refused.iter().map(|(_, f)| f.code.as_str()).collect();
                tracing::warn!(
                    refused = refused.len(),
                    ?codes,
                    "PutEvents refused entries; sending those again"
                );
                outcome.resent += refused.len();
                tokio::time::sleep(delay).await;
                pending = refused.into_iter().map(|(item, _)| item).collect();
            }
            None => {
                outcome.refused = refused;
                return Ok(outcome);
            }
        }
    }
}

/// Splits one call's items into accepted and refused, given its per-entry results in request
/// order (`None` = accepted).
fn split_results<T>(sent: Vec<T>, results: &[Option<Failure>]) -> (Vec<T>, Vec<(T, Failure)>) {
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for (i, item) in sent.into_iter().enumerate() {
        match resend_reason(results, i) {
            None => accepted.push(item),
            Some(f) => refused.push((item, f)),
        }
    }
    (accepted, refused)
}

fn resend_reason(results: &[Option<Failure>], i: usize) -> Option<Failure> {
    match results.get(i) {
        Some(None) => None,
        Some(Some(f)) => Some(f.clone()),
        None => Some(Failure {
            code: "MissingResult".into(),
            message: "PutEvents returned fewer results than entries".into(),
        }),
    }
}

/// The entries of one call that were not accepted, with why, given the call's per-entry
/// results in request order (`None` = accepted). These, and only these, are sent again.
///
/// Results are positional: result `i` belongs to entry `i`. An entry without a result (a
/// response shorter than the request, which the API promises never to send) counts as
/// refused: resending an event is harmless because ingest is idempotent on `event_id`, while
/// counting it as sent could lose it.
pub fn to_resend<T>(sent: Vec<T>, results: &[Option<Failure>]) -> Vec<(T, Failure)> {
    split_results(sent, results).1
}

/// The outcome of one result entry: accepted (`None`) when it has an event id and no error.
pub fn result_of(r: &PutEventsResultEntry) -> Option<Failure> {
    match (r.error_code(), r.event_id()) {
        (None, Some(_)) => None,
        (Some(code), _) => Some(Failure {
            code: code.to_owned(),
            message: r.error_message().unwrap_or_default().to_owned(),
        }),
        (None, None) => Some(Failure {
            code: "NoEventId".into(),
            message: "the result has neither an event id nor an error code".into(),
        }),
    }
}
