//! The CloudWatch half of a snapshot: the pipeline's EMF metrics and Step Functions'
//! execution metrics over the window, in as few `GetMetricData` calls as the API allows, and
//! the end-to-end lag's p99.

use super::fetch::{Watcher, number};
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

impl Watcher {
    /// Every count, the lag's sum, sample count and maximum, and the execution metrics, in
    /// one `GetMetricData` call (paged by its token).
    #[allow(clippy::type_complexity)]
    pub(super) async fn metrics(
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
        Error,
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
    pub(super) async fn lag_p99(&self, start: i64, end: i64) -> Result<Option<f64>, Error> {
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
    ) -> Result<HashMap<String, Vec<f64>>, Error> {
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
                .map_err(|e| Error::call(format!("{what} in namespace {}", self.namespace), e))?;
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
