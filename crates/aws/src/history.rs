//! What one execution did, from its history events: status, duration, the stage that failed
//! and the error it failed with.
//!
//! The events come from two places with the same vocabulary: the Step Functions API
//! (`GetExecutionHistory`, Standard executions) and the state machine's CloudWatch Logs log
//! group (Express executions, which the API cannot list). A log event is one JSON document per
//! history event:
//!
//! ```json
//! {"id":"3","type":"TaskStateEntered","details":{"name":"Validate"},"previous_event_id":"2",
//!  "event_timestamp":"1732771200123","execution_arn":"arn:aws:states:…:express:<machine>:<name>:<id>",
//!  "redrive_count":"0"}
//! ```
//!
//! How much of it there is depends on the logging level: at `ALL` (the template's default)
//! every event; at `ERROR` only failures, so an execution whose failure the state machine
//! caught (and quarantined) shows its error but no status.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// One history event, in the parts the view needs.
#[derive(Debug, Clone, PartialEq)]
pub struct StepEvent {
    /// Event time, ms since the epoch.
    pub t_ms: i64,
    /// The event's number in its execution (`id`; 0 when unknown): orders events of one
    /// millisecond, which are common (a task entered and its function scheduled).
    pub seq: i64,
    /// The history event type, e.g. `TaskStateEntered`, `LambdaFunctionFailed`.
    pub kind: String,
    /// The state's name, on state-entered and -exited events.
    pub state: Option<String>,
    /// The error name, on failure events.
    pub error: Option<String>,
}

/// A state machine log event, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// The execution it belongs to.
    pub execution_arn: String,
    /// The event.
    pub event: StepEvent,
}

#[derive(Deserialize)]
struct LogDoc {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    details: Value,
    #[serde(default)]
    id: Value,
    event_timestamp: Value,
    execution_arn: String,
}

/// Parses one message of the state machine's log group; `None` for anything else.
pub fn parse_log_event(message: &str, ingested_ms: i64) -> Option<LoggedEvent> {
    let doc: LogDoc = serde_json::from_str(message).ok()?;
    // Step Functions writes the timestamp as a string of milliseconds; accept a number too.
    let number = |v: &Value| match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    let t_ms = number(&doc.event_timestamp).unwrap_or(ingested_ms);
    let seq = number(&doc.id).unwrap_or(0);
    let text = |k: &str| {
        doc.details
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Some(LoggedEvent {
        execution_arn: doc.execution_arn,
        event: StepEvent {
            t_ms,
            seq,
            state: text("name"),
            error: text("error"),
            kind: doc.kind,
        },
    })
}

/// The execution name in an execution ARN: `arn:aws:states:<region>:<account>:execution:<machine>:<name>`
/// (Standard) or `…:express:<machine>:<name>:<id>` (Express).
pub fn execution_name(arn: &str) -> &str {
    arn.split(':').nth(7).unwrap_or(arn)
}

/// What an execution's events say.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`, `RUNNING`; `None` when the events do not
    /// say (a log level that records failures only).
    pub status: Option<&'static str>,
    /// Its `ExecutionStarted` event, ms (`None` when that event was not read).
    pub start_ms: Option<i64>,
    /// The event that ended it, ms.
    pub stop_ms: Option<i64>,
    /// The pipeline stage that failed (`validate` … `persist`, or `quarantine` for the
    /// quarantining step itself).
    pub failed_stage: Option<String>,
    /// The error it failed with (the function's `error_type`, or `States.Timeout` …).
    pub error: Option<String>,
}

/// Reads status, times, the failed stage and its error off an execution's events (any order).
pub fn summarise(events: &[StepEvent]) -> Summary {
    let mut events: Vec<&StepEvent> = events.iter().collect();
    events.sort_by_key(|e| (e.t_ms, e.seq));
    // The start is known only from `ExecutionStarted`: an execution that began before the
    // events read (or at a log level that records failures only) has no start, rather than
    // the time of its first event read, which made a long execution look instantaneous.
    let mut s = Summary::default();
    let mut current_task: Option<&str> = None;
    for e in &events {
        match e.kind.as_str() {
            "ExecutionStarted" => {
                s.start_ms = Some(e.t_ms);
                s.status.get_or_insert("RUNNING");
            }
            "ExecutionSucceeded" | "ExecutionFailed" | "ExecutionTimedOut" | "ExecutionAborted" => {
                s.status = Some(match e.kind.as_str() {
                    "ExecutionSucceeded" => "SUCCEEDED",
                    "ExecutionFailed" => "FAILED",
                    "ExecutionTimedOut" => "TIMED_OUT",
                    _ => "ABORTED",
                });
                s.stop_ms = Some(e.t_ms);
                if e.kind != "ExecutionSucceeded" {
                    if s.error.is_none() {
                        s.error = e.error.clone().or_else(|| {
                            (e.kind == "ExecutionTimedOut").then(|| "States.Timeout".to_owned())
                        });
                    }
                    if s.failed_stage.is_none() {
                        s.failed_stage = current_task.map(stage_of);
                    }
                }
            }
            "TaskStateEntered" => current_task = e.state.as_deref(),
            // The state machine's catchers (`ValidateFailed` … `PersistFailed`) name the stage
            // whose failure they caught, whatever happened before.
            kind if kind.ends_with("StateEntered") => {
                if let Some(stage) = e
                    .state
                    .as_deref()
                    .and_then(|n| n.strip_suffix("Failed"))
                    .filter(|n| !n.is_empty())
                {
                    s.failed_stage = Some(stage.to_ascii_lowercase());
                }
            }
            kind if kind.ends_with("Failed") || kind.ends_with("TimedOut") => {
                // The last failure of a task is the one that ended its retries.
                if let Some(err) = &e.error {
                    s.error = Some(err.clone());
                } else if kind.ends_with("TimedOut") {
                    s.error = Some("States.Timeout".into());
                }
                if let Some(task) = current_task {
                    s.failed_stage = Some(stage_of(task));
                }
            }
            _ => {}
        }
    }
    s
}

/// `Validate` → `validate`, `QuarantineBatch` → `quarantine`.
fn stage_of(task: &str) -> String {
    match task {
        "QuarantineBatch" => "quarantine".to_owned(),
        other => other.to_ascii_lowercase(),
    }
}

/// Groups log events by execution, newest start first.
pub fn by_execution(events: Vec<LoggedEvent>) -> Vec<(String, Vec<StepEvent>)> {
    let mut groups: BTreeMap<String, Vec<StepEvent>> = BTreeMap::new();
    for e in events {
        groups.entry(e.execution_arn).or_default().push(e.event);
    }
    let mut out: Vec<(String, Vec<StepEvent>)> = groups.into_iter().collect();
    // Newest first by start; an execution whose start was not read began before every one
    // whose start was, so those come after, newest first by their first event read.
    out.sort_by_key(|(arn, evs)| {
        let started = evs
            .iter()
            .find(|e| e.kind == "ExecutionStarted")
            .map(|e| e.t_ms);
        let first = evs.iter().map(|e| e.t_ms).min().unwrap_or(0);
        (
            std::cmp::Reverse((started.is_some(), started.unwrap_or(first))),
            arn.clone(),
        )
    });
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ARN: &str =
        "arn:aws:states:us-east-1:123456789012:express:pipeline:b-1f-1732771200000:6a0e";

    fn log(id: u32, kind: &str, t: i64, details: &str) -> String {
        format!(
            r#"{{"id":"{id}","type":"{kind}","details":{details},"previous_event_id":"{}","event_timestamp":"{t}","execution_arn":"{ARN}","redrive_count":"0"}}"#,
            id.saturating_sub(1)
        )
    }

    fn parse(lines: &[String]) -> Vec<StepEvent> {
        lines
            .iter()
            .map(|l| parse_log_event(l, 0).unwrap().event)
            .collect()
    }

    #[test]
    fn a_clean_execution_succeeds_without_a_failed_stage() {
        let lines = [
            log(
                1,
                "ExecutionStarted",
                1000,
                r#"{"roleArn":"arn:aws:iam::1:role/r"}"#,
            ),
            log(2, "TaskStateEntered", 1001, r#"{"name":"Validate"}"#),
            log(3, "LambdaFunctionSucceeded", 1010, "{}"),
            log(4, "TaskStateEntered", 1011, r#"{"name":"Persist"}"#),
            log(5, "ExecutionSucceeded", 1500, "{}"),
        ];
        let s = summarise(&parse(&lines));
        assert_eq!(s.status, Some("SUCCEEDED"));
        assert_eq!((s.start_ms, s.stop_ms), (Some(1000), Some(1500)));
        assert_eq!((s.failed_stage, s.error), (None, None));
        assert_eq!(execution_name(ARN), "b-1f-1732771200000");
        assert_eq!(
            execution_name("arn:aws:states:us-east-1:1:execution:pipeline:b-2-17"),
            "b-2-17"
        );
    }

    #[test]
    fn a_caught_failure_names_the_stage_and_the_error_of_its_last_retry() {
        let lines = [
            log(1, "ExecutionStarted", 1000, "{}"),
            log(2, "TaskStateEntered", 1001, r#"{"name":"Validate"}"#),
            log(3, "TaskStateEntered", 1002, r#"{"name":"Enrich"}"#),
            log(
                4,
                "LambdaFunctionFailed",
                1003,
                r#"{"error":"Pipeline.Retryable.StoreUnavailable","cause":"x"}"#,
            ),
            log(
                5,
                "LambdaFunctionFailed",
                1005,
                r#"{"error":"Pipeline.Retryable.InjectedFault","cause":"y"}"#,
            ),
            log(6, "PassStateEntered", 1006, r#"{"name":"EnrichFailed"}"#),
            log(7, "TaskStateEntered", 1007, r#"{"name":"QuarantineBatch"}"#),
            log(8, "ExecutionSucceeded", 1100, "{}"),
        ];
        let s = summarise(&parse(&lines));
        assert_eq!(s.status, Some("SUCCEEDED"));
        assert_eq!(s.failed_stage.as_deref(), Some("enrich"));
        assert_eq!(s.error.as_deref(), Some("Pipeline.Retryable.InjectedFault"));
    }

    #[test]
    fn a_failed_execution_at_error_level_and_a_timeout() {
        // At ERROR level only failures are logged: no task names, the execution's error.
        let lines = [log(
            9,
            "ExecutionFailed",
            2000,
            r#"{"error":"States.TaskFailed","cause":"c"}"#,
        )];
        let s = summarise(&parse(&lines));
        assert_eq!(s.status, Some("FAILED"));
        assert_eq!(s.error.as_deref(), Some("States.TaskFailed"));
        assert_eq!(s.failed_stage, None);

        let lines = [
            log(1, "ExecutionStarted", 1000, "{}"),
            log(2, "TaskStateEntered", 1001, r#"{"name":"QuarantineBatch"}"#),
            log(3, "ExecutionTimedOut", 301_000, "{}"),
        ];
        let s = summarise(&parse(&lines));
        assert_eq!(s.status, Some("TIMED_OUT"));
        assert_eq!(s.failed_stage.as_deref(), Some("quarantine"));
        assert_eq!(s.error.as_deref(), Some("States.Timeout"));

        // Only a caught Lambda failure (ERROR level, execution went on to succeed).
        let lines = [log(
            4,
            "LambdaFunctionFailed",
            1003,
            r#"{"error":"Pipeline.Fatal.BadInput"}"#,
        )];
        let s = summarise(&parse(&lines));
        assert_eq!(s.status, None);
        assert_eq!(s.error.as_deref(), Some("Pipeline.Fatal.BadInput"));
    }

    #[test]
    fn other_documents_are_not_execution_events_and_groups_are_newest_first() {
        assert_eq!(
            parse_log_event(r#"{"level":"INFO","message":"x"}"#, 0),
            None
        );
        assert_eq!(parse_log_event("REPORT RequestId: 1", 0), None);
        let other = ARN.replace("b-1f", "b-2f");
        let events = vec![
            parse_log_event(&log(1, "ExecutionStarted", 1000, "{}"), 0).unwrap(),
            LoggedEvent {
                execution_arn: other.clone(),
                ..parse_log_event(&log(1, "ExecutionStarted", 5000, "{}"), 0).unwrap()
            },
        ];
        let groups = by_execution(events);
        assert_eq!(groups[0].0, other);
        assert_eq!(groups[1].0, ARN);
    }

    #[test]
    fn events_of_one_millisecond_are_ordered_by_their_id() {
        // Read back in another order than written (several streams, one millisecond): the
        // failure belongs to Enrich, entered just before it.
        let lines = [
            log(1, "ExecutionStarted", 1000, "{}"),
            log(
                4,
                "LambdaFunctionFailed",
                1000,
                r#"{"error":"Pipeline.Fatal.BadInput"}"#,
            ),
            log(3, "TaskStateEntered", 1000, r#"{"name":"Enrich"}"#),
            log(2, "TaskStateEntered", 1000, r#"{"name":"Validate"}"#),
            log(5, "ExecutionFailed", 1001, "{}"),
        ];
        let s = summarise(&parse(&lines));
        assert_eq!(s.failed_stage.as_deref(), Some("enrich"));
        assert_eq!(s.error.as_deref(), Some("Pipeline.Fatal.BadInput"));
    }

    #[test]
    fn an_execution_that_started_before_the_events_read_has_no_start_and_sorts_last() {
        let lines = [
            log(7, "TaskStateEntered", 900_000, r#"{"name":"Persist"}"#),
            log(9, "ExecutionSucceeded", 960_000, "{}"),
        ];
        let s = summarise(&parse(&lines));
        assert_eq!(s.status, Some("SUCCEEDED"));
        assert_eq!((s.start_ms, s.stop_ms), (None, Some(960_000)));

        // It ended after the other one started, but began before: it is listed second.
        let other = ARN.replace("b-1f", "b-2f");
        let mut events: Vec<LoggedEvent> = lines
            .iter()
            .map(|l| parse_log_event(l, 0).unwrap())
            .collect();
        events.push(LoggedEvent {
            execution_arn: other.clone(),
            ..parse_log_event(&log(1, "ExecutionStarted", 100_000, "{}"), 0).unwrap()
        });
        let groups = by_execution(events);
        assert_eq!(groups[0].0, other);
        assert_eq!(groups[1].0, ARN);
    }
}
