//! The deployed pipeline as `pipeline watch` shows it, fetched into one [`Snapshot`].
//!
//! - **State machine** (Step Functions): its type and status (`DescribeStateMachine`), and the
//!   most recent executions with their status, duration, the stage that failed and its error.
//!   Standard executions come from the API (`ListExecutions`, `GetExecutionHistory`). Express
//!   executions cannot be listed through the API, so they are read from the state machine's
//!   CloudWatch Logs log group (`FilterLogEvents`; see [`crate::history`]). Either way, the
//!   event counts of an execution come from persist's summary line (`persist done`) in its log
//!   group. The `AWS/States` metrics (`ExecutionsStarted`, `ExecutionsSucceeded`,
//!   `ExecutionsFailed`, …) are read for either type.
//! - **Pipeline metrics** (CloudWatch `GetMetricData`, one call): the functions' EMF metrics
//!   in the metrics namespace with the dimension `Function` = the stage name, the contract of
//!   the dashboard in template.yaml and of docs/deploy.md. Counts are summed over the last
//!   `minutes` and over the five stages; the end-to-end lag (`EndToEndLagMs` of `persist`) is
//!   given as p99, average and maximum.
//!
//! Drawing the snapshot is the CLI's; this module only asks AWS.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatch::config::retry::RetryConfig;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_sfn::types::StateMachineType;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, describe};
use crate::history;

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

mod fetch;
mod metrics;

pub use fetch::{Settings, Watcher, window};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::fetch::{Finished, number, slices, window};
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
    fn counts_are_integers_and_other_values_are_rounded() {
        assert_eq!(number(42.0), Value::from(42));
        assert_eq!(number(12.345), serde_json::json!(12.35));
    }
}
