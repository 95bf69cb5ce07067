//! Fetching what `pipeline watch` shows: the state machine and its executions from Step
//! Functions and the pipeline's metrics from CloudWatch, into a [`Snapshot`].

use super::*;

/// What each `GetMetricData` query is for.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// A count of one stage.
    Count(&'static str, &'static str),
    /// A statistic of the lag (`Sum`, `SampleCount`, `Maximum`).
    Lag(&'static str),
    /// An `AWS/States` execution metric.
    Execution(&'static str),
}

/// Fetches snapshots.
pub(super) struct Watcher {
    pub(super) sfn: aws_sdk_sfn::Client,
    pub(super) cloudwatch: aws_sdk_cloudwatch::Client,
    pub(super) arn: String,
    pub(super) namespace: String,
    pub(super) minutes: u32,
    pub(super) executions: i32,
}

impl Watcher {
    pub(super) async fn snapshot(&self) -> Result<Snapshot, CliError> {
        let now = Utc::now();
        let (start, end) = window(now, self.minutes);
        let (machine, metrics, p99) = tokio::join!(
            self.machine(),
            self.metrics(start, end),
            self.lag_p99(start, end)
        );
        let (mut machine, executions, note) = machine?;
        let (metrics, by_function, execution_metrics, any_data) = metrics?;
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
            metrics_note: (!any_data).then(|| no_metrics_note(self.minutes)),
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
            bool,
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
        let any_data = values.values().any(|v| !v.is_empty());

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
        Ok((metrics, by_function, executions, any_data))
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
pub(super) fn number(v: f64) -> Value {
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
