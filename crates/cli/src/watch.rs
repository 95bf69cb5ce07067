//! `pipeline watch`: a refreshing terminal view of the deployed pipeline, or one JSON snapshot
//! of it for scripts.
//!
//! - **State machine** (Step Functions): its type and status (`DescribeStateMachine`), and the
//!   most recent executions with their outcome (`ListExecutions`). Express executions cannot be
//!   listed through the API, so for an Express machine the view says so and relies on the
//!   `AWS/States` metrics (`ExecutionsStarted`, `ExecutionsSucceeded`, `ExecutionsFailed`, …),
//!   which are shown for either type.
//! - **Pipeline metrics** (CloudWatch `GetMetricData`, one call): the functions' EMF metrics
//!   in the metrics namespace with the dimension `Function` = the stage name, the contract of
//!   the dashboard in template.yaml and of docs/deploy.md. Counts are summed over the last
//!   `--minutes` and over the five stages; the end-to-end lag (`EndToEndLagMs` of `persist`) is
//!   given as p99, average and maximum.
//!
//! The interactive view clears the screen with ANSI codes and redraws every `--interval`
//! seconds until Ctrl-C; an AWS error is shown in place of the view and the next refresh tries
//! again. `--once` prints one view (or with `--json` one JSON object) and exits.

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
/// What the view says for an Express state machine.
pub const EXPRESS_NOTE: &str = "Express executions are not listable through the Step Functions API (ListExecutions); \
     the execution counts come from the CloudWatch AWS/States metrics instead";

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
    /// How many recent executions to list (Standard state machines).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=1000))]
    executions: i32,
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
        arn,
        namespace: args.namespace.clone(),
        minutes: args.minutes,
        executions: args.executions,
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

/// What each `GetMetricData` query is for.
#[derive(Debug, Clone)]
enum Target {
    /// A count of one stage.
    Count(&'static str, &'static str),
    /// A statistic of the lag (`Sum`, `SampleCount`, `Maximum`).
    Lag(&'static str),
    /// An `AWS/States` execution metric.
    Execution(&'static str),
}

/// Fetches snapshots.
struct Watcher {
    sfn: aws_sdk_sfn::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    arn: String,
    namespace: String,
    minutes: u32,
    executions: i32,
}

impl Watcher {
    async fn snapshot(&self) -> Result<Snapshot, CliError> {
        let now = Utc::now();
        let (start, end) = window(now, self.minutes);
        let (machine, metrics, p99) = tokio::join!(
            self.machine(),
            self.metrics(start, end),
            self.lag_p99(start, end)
        );
        let (mut machine, executions, note) = machine?;
        let (metrics, by_function, execution_metrics) = metrics?;
        machine.metrics = execution_metrics;
        let mut snapshot = Snapshot {
            at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            window_minutes: self.minutes,
            namespace: self.namespace.clone(),
            state_machine: machine,
            executions,
            executions_note: note,
            metrics,
            by_function,
            warnings: Vec::new(),
        };
        let p99 = match p99 {
            Ok(v) => v,
            Err(e) => {
                snapshot
                    .warnings
                    .push(format!("{LAG} p99 unavailable: {}", describe(&e)));
                None
            }
        };
        snapshot
            .metrics
            .insert(format!("{LAG}P99"), p99.map_or(Value::Null, number));
        Ok(snapshot)
    }

    /// The state machine, its recent executions (Standard), or why there are none (Express).
    async fn machine(&self) -> Result<(MachineView, Vec<ExecutionView>, Option<String>), CliError> {
        let d = self
            .sfn
            .describe_state_machine()
            .state_machine_arn(&self.arn)
            .send()
            .await
            .map_err(|e| CliError::aws(format!("DescribeStateMachine on {}", self.arn), e))?;
        let view = MachineView {
            arn: d.state_machine_arn().to_owned(),
            name: d.name().to_owned(),
            kind: d.r#type().as_str().to_owned(),
            status: d.status().map(|s| s.as_str().to_owned()),
            metrics: BTreeMap::new(),
        };
        if *d.r#type() == StateMachineType::Express {
            return Ok((view, Vec::new(), Some(EXPRESS_NOTE.to_owned())));
        }
        let out = self
            .sfn
            .list_executions()
            .state_machine_arn(&self.arn)
            .max_results(self.executions)
            .send()
            .await
            .map_err(|e| CliError::aws(format!("ListExecutions on {}", self.arn), e))?;
        let mut executions: Vec<(Option<DateTime<Utc>>, ExecutionView)> = out
            .executions()
            .iter()
            .map(|x| {
                let start = sfn_time(x.start_date());
                let view = ExecutionView {
                    name: x.name().to_owned(),
                    status: x.status().as_str().to_owned(),
                    start: start.map(rfc3339),
                    stop: x.stop_date().and_then(sfn_time).map(rfc3339),
                };
                (start, view)
            })
            .collect();
        // The API lists newest first; emulators need not, and the view promises it.
        executions.sort_by_key(|x| std::cmp::Reverse(x.0));
        Ok((view, executions.into_iter().map(|(_, v)| v).collect(), None))
    }

    /// Every count, the lag's sum, sample count and maximum, and the execution metrics, in
    /// one `GetMetricData` call (paged by its token).
    #[allow(clippy::type_complexity)]
    async fn metrics(
        &self,
        start: i64,
        end: i64,
    ) -> Result<
        (
            BTreeMap<String, Value>,
            BTreeMap<String, BTreeMap<String, Value>>,
            BTreeMap<String, Value>,
        ),
        CliError,
    > {
        let mut targets = Vec::new();
        for metric in COUNTS {
            for stage in STAGES {
                targets.push(Target::Count(metric, stage));
            }
        }
        for stat in ["Sum", "SampleCount", "Maximum"] {
            targets.push(Target::Lag(stat));
        }
        for metric in EXECUTION_METRICS {
            targets.push(Target::Execution(metric));
        }
        let queries: Vec<MetricDataQuery> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| self.query(i, t))
            .collect();
        let values = self
            .get(queries, start, end, "GetMetricData", false)
            .await?;
        let of = |i: usize| values.get(&format!("q{i}")).map(Vec::as_slice);

        let mut totals: BTreeMap<String, f64> =
            COUNTS.iter().map(|m| (m.to_string(), 0.0)).collect();
        let mut by_function: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        let mut lag: HashMap<&str, Vec<f64>> = HashMap::new();
        let mut executions: BTreeMap<String, Value> = BTreeMap::new();
        for (i, target) in targets.iter().enumerate() {
            let v = of(i).unwrap_or_default();
            match target {
                Target::Count(metric, stage) => {
                    let sum: f64 = v.iter().sum();
                    *totals.entry((*metric).to_owned()).or_default() += sum;
                    if sum != 0.0 {
                        by_function
                            .entry((*metric).to_owned())
                            .or_default()
                            .insert((*stage).to_owned(), number(sum));
                    }
                }
                Target::Lag(stat) => {
                    lag.insert(stat, v.to_vec());
                }
                Target::Execution(metric) => {
                    executions.insert((*metric).to_owned(), number(v.iter().sum()));
                }
            }
        }
        let mut metrics: BTreeMap<String, Value> =
            totals.into_iter().map(|(k, v)| (k, number(v))).collect();
        let sum: f64 = lag.get("Sum").map_or(0.0, |v| v.iter().sum());
        let count: f64 = lag.get("SampleCount").map_or(0.0, |v| v.iter().sum());
        // The average over the whole window from sums and counts, exact even when CloudWatch
        // returns more than one period.
        let average = (count > 0.0).then(|| sum / count);
        let max = lag
            .get("Maximum")
            .and_then(|v| v.iter().copied().reduce(f64::max));
        metrics.insert(format!("{LAG}Average"), average.map_or(Value::Null, number));
        metrics.insert(format!("{LAG}Max"), max.map_or(Value::Null, number));
        Ok((metrics, by_function, executions))
    }

    /// The lag's p99 over the window, in a call of its own: some CloudWatch implementations
    /// (emulators) do not compute percentiles, and that must not cost the rest of the view.
    /// Only one attempt, for the same reason; the next refresh asks again.
    async fn lag_p99(&self, start: i64, end: i64) -> Result<Option<f64>, CliError> {
        let query = metric_query(
            "p0".into(),
            &self.namespace,
            LAG,
            (metric::FUNCTION_DIMENSION, Stage::Persist.as_str()),
            "p99",
            end - start,
        );
        let values = self
            .get(vec![query], start, end, "GetMetricData (p99)", true)
            .await?;
        // One period covers the window; should CloudWatch split it, the highest p99 is the
        // honest summary (percentiles of parts cannot be merged).
        Ok(values
            .get("p0")
            .and_then(|v| v.iter().copied().reduce(f64::max)))
    }

    fn query(&self, i: usize, target: &Target) -> MetricDataQuery {
        let period = i64::from(self.minutes) * 60;
        match target {
            Target::Count(metric, stage) => metric_query(
                format!("q{i}"),
                &self.namespace,
                metric,
                (metric::FUNCTION_DIMENSION, stage),
                "Sum",
                period,
            ),
            Target::Lag(stat) => metric_query(
                format!("q{i}"),
                &self.namespace,
                LAG,
                (metric::FUNCTION_DIMENSION, Stage::Persist.as_str()),
                stat,
                period,
            ),
            Target::Execution(metric) => metric_query(
                format!("q{i}"),
                "AWS/States",
                metric,
                ("StateMachineArn", &self.arn),
                "Sum",
                period,
            ),
        }
    }

    /// Runs `GetMetricData` over `[start, end)` (epoch seconds) and returns the values per
    /// query id, following the pagination token.
    async fn get(
        &self,
        queries: Vec<MetricDataQuery>,
        start: i64,
        end: i64,
        what: &str,
        one_attempt: bool,
    ) -> Result<HashMap<String, Vec<f64>>, CliError> {
        let mut values: HashMap<String, Vec<f64>> = HashMap::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = self
                .cloudwatch
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(start))
                .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(end))
                .set_next_token(token.take())
                .customize();
            if one_attempt {
                call = call.config_override(
                    aws_sdk_cloudwatch::Config::builder().retry_config(RetryConfig::disabled()),
                );
            }
            let out = call
                .send()
                .await
                .map_err(|e| CliError::aws(format!("{what} in namespace {}", self.namespace), e))?;
            for r in out.metric_data_results() {
                if let Some(id) = r.id() {
                    values
                        .entry(id.to_owned())
                        .or_default()
                        .extend_from_slice(r.values());
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(values),
            }
        }
    }
}

/// One `GetMetricData` query: `stat` of `metric` with one dimension, per `period` seconds.
fn metric_query(
    id: String,
    namespace: &str,
    metric: &str,
    dimension: (&str, &str),
    stat: &str,
    period: i64,
) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(namespace)
                        .metric_name(metric)
                        .dimensions(
                            Dimension::builder()
                                .name(dimension.0)
                                .value(dimension.1)
                                .build(),
                        )
                        .build(),
                )
                .period(i32::try_from(period).unwrap_or(i32::MAX))
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

/// The metrics window `[start, end)` in epoch seconds: the last `minutes` whole minutes up to
/// and including the current one. CloudWatch rounds the start down to the minute, so an
/// aligned window is exactly one period of `minutes * 60` seconds.
pub fn window(now: DateTime<Utc>, minutes: u32) -> (i64, i64) {
    let end = (now.timestamp().div_euclid(60) + 1) * 60;
    (end - i64::from(minutes) * 60, end)
}

/// A JSON number: an integer when the value is whole (counts), a float otherwise.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64((v * 100.0).round() / 100.0).map_or(Value::Null, Value::Number)
    }
}

fn sfn_time(t: &aws_sdk_sfn::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The text view. `interval` is shown in the header of the refreshing view.
pub fn render(s: &Snapshot, interval: Option<u64>) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let n = |k: &str| match s.metrics.get(k) {
        Some(Value::Number(v)) => v.to_string(),
        _ => "-".to_owned(),
    };
    let refresh = interval.map_or_else(String::new, |i| format!(" · every {i} s, Ctrl-C to stop"));
    let _ = writeln!(
        o,
        "pipeline watch · {} · last {} min · namespace {}{refresh}",
        s.at.replace('T', " ").replace('Z', " UTC"),
        s.window_minutes,
        s.namespace
    );
    let m = &s.state_machine;
    let _ = writeln!(
        o,
        "\nstate machine  {} ({}, {})\n               {}",
        m.name,
        m.kind,
        m.status.as_deref().unwrap_or("?"),
        m.arn
    );
    let count = |k: &str| {
        m.metrics
            .get(k)
            .map_or_else(|| "-".to_owned(), Value::to_string)
    };
    let _ = writeln!(
        o,
        "executions     started {}  succeeded {}  failed {}  timed out {}  aborted {}  throttled {}   (AWS/States)",
        count("ExecutionsStarted"),
        count("ExecutionsSucceeded"),
        count("ExecutionsFailed"),
        count("ExecutionsTimedOut"),
        count("ExecutionsAborted"),
        count("ExecutionThrottled"),
    );
    let _ = writeln!(o, "\nrecent executions");
    if let Some(note) = &s.executions_note {
        let _ = writeln!(o, "  note: {note}");
    } else if s.executions.is_empty() {
        let _ = writeln!(o, "  (none)");
    } else {
        let _ = writeln!(
            o,
            "  {:<10} {:<20} {:>10}  NAME",
            "STATUS", "START (UTC)", "DURATION"
        );
        for x in &s.executions {
            let start = x.start.as_deref().and_then(parse_time);
            let stop = x.stop.as_deref().and_then(parse_time);
            let duration = match (start, stop) {
                (Some(a), Some(b)) => {
                    format!("{:.1} s", (b - a).num_milliseconds() as f64 / 1000.0)
                }
                (Some(_), None) => "running".to_owned(),
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                o,
                "  {:<10} {:<20} {:>10}  {}",
                x.status,
                start.map_or_else(
                    || "-".to_owned(),
                    |t| t.format("%Y-%m-%d %H:%M:%S").to_string()
                ),
                duration,
                x.name
            );
        }
    }
    let per_stage = |metric: &str| -> String {
        match s.by_function.get(metric) {
            Some(stages) if !stages.is_empty() => format!(
                " ({})",
                stages
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        }
    };
    let _ = writeln!(
        o,
        "\nthroughput     in {}   valid {}   persisted {}   duplicates {}   updated {}   stale {}",
        n(metric::EVENTS_IN),
        n(metric::EVENTS_VALID),
        n(metric::PERSISTED),
        n(metric::DUPLICATES),
        n(metric::UPDATED),
        n(metric::STALE)
    );
    let _ = writeln!(
        o,
        "errors         quarantined {}{}   conflicts {}",
        n(metric::EVENTS_QUARANTINED),
        per_stage(metric::EVENTS_QUARANTINED),
        n(metric::CONFLICTS)
    );
    let _ = writeln!(
        o,
        "anomalies      {}{}",
        n(metric::ANOMALIES),
        per_stage(metric::ANOMALIES)
    );
    let _ = writeln!(
        o,
        "lag            p99 {} ms   average {} ms   max {} ms   (event time to persisted)",
        n(&format!("{LAG}P99")),
        n(&format!("{LAG}Average")),
        n(&format!("{LAG}Max"))
    );
    for w in &s.warnings {
        let _ = writeln!(o, "\nwarning: {w}");
    }
    o
}

fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
            warnings: vec!["p99 unavailable".into()],
        };
        let text = render(&s, Some(5));
        assert!(text.contains("in 42"), "{text}");
        assert!(text.contains("not listable"), "{text}");
        assert!(text.contains("p99 - ms"), "{text}");
        assert!(text.contains("warning: p99 unavailable"), "{text}");
    }
}
