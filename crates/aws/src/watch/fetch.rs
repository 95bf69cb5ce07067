//! Fetching what `pipeline watch` shows: the state machine and its executions from Step
//! Functions and the pipeline's metrics from CloudWatch, into a [`Snapshot`].

use super::*;

/// The most log events read per log group and refresh.
const LOG_CAP: usize = 50_000;

/// What to watch.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The stack name, which names the functions' log groups (`/aws/lambda/<stack>-<stage>`);
    /// `None`: read off the state machine's log group.
    pub stack: Option<String>,
    /// The state machine's ARN.
    pub arn: String,
    /// The functions' metric namespace.
    pub namespace: String,
    /// The metrics window: the last `minutes` minutes.
    pub minutes: u32,
    /// How many recent executions to list.
    pub executions: i32,
}

/// Fetches snapshots: build one per process, call [`Watcher::snapshot`] per refresh.
pub struct Watcher {
    pub(super) sfn: aws_sdk_sfn::Client,
    pub(super) cloudwatch: aws_sdk_cloudwatch::Client,
    pub(super) logs: aws_sdk_cloudwatchlogs::Client,
    pub(super) stack: Option<String>,
    pub(super) arn: String,
    pub(super) namespace: String,
    pub(super) minutes: u32,
    pub(super) executions: i32,
    /// What the histories of finished Standard executions said (see [`Finished`]).
    pub(super) finished: std::sync::Mutex<Finished>,
}

/// The summaries of finished Standard executions' histories. A finished execution's history
/// never changes, so the live view reads it once instead of at every refresh (one
/// `GetExecutionHistory` call per listed execution each time, before); only the executions
/// still listed are kept, so the map stays as small as the list.
#[derive(Debug, Default)]
pub(super) struct Finished(HashMap<String, history::Summary>);

impl Finished {
    /// The summary of a finished execution read before.
    pub(super) fn get(&self, arn: &str) -> Option<history::Summary> {
        self.0.get(arn).cloned()
    }

    /// Keeps `summary` if the execution has finished (a running one's history still grows).
    pub(super) fn remember(&mut self, arn: &str, running: bool, summary: &history::Summary) {
        if !running {
            self.0.insert(arn.to_owned(), summary.clone());
        }
    }

    /// Forgets every execution not in `listed`.
    pub(super) fn keep_only<'a>(&mut self, listed: impl IntoIterator<Item = &'a str>) {
        let listed: std::collections::HashSet<&str> = listed.into_iter().collect();
        self.0.retain(|arn, _| listed.contains(arn.as_str()));
    }
}

impl Watcher {
    /// A watcher with its clients built from `sdk`.
    pub fn new(sdk: &aws_config::SdkConfig, settings: Settings) -> Self {
        Watcher {
            sfn: aws_sdk_sfn::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            stack: settings.stack,
            arn: settings.arn,
            namespace: settings.namespace,
            minutes: settings.minutes,
            executions: settings.executions,
            finished: Default::default(),
        }
    }

    /// One view of the pipeline now; a part that cannot be fetched is a warning in it, a
    /// failure of the state machine's own description an error.
    pub async fn snapshot(&self) -> Result<Snapshot, Error> {
        let now = Utc::now();
        let (start, end) = window(now, self.minutes);
        let (machine, metrics, p99) = tokio::join!(
            self.machine(start, end),
            self.metrics(start, end),
            self.lag_p99(start, end)
        );
        let (mut machine, executions, note, warnings) = machine?;
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
            warnings,
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

    /// The state machine, its recent executions, or why there are none.
    async fn machine(
        &self,
        start: i64,
        end: i64,
    ) -> Result<(MachineView, Vec<ExecutionView>, Option<String>, Vec<String>), Error> {
        let d = self
            .sfn
            .describe_state_machine()
            .state_machine_arn(&self.arn)
            .send()
            .await
            .map_err(|e| Error::call(format!("DescribeStateMachine on {}", self.arn), e))?;
        let view = MachineView {
            arn: d.state_machine_arn().to_owned(),
            name: d.name().to_owned(),
            kind: d.r#type().as_str().to_owned(),
            status: d.status().map(|s| s.as_str().to_owned()),
            metrics: BTreeMap::new(),
        };
        let logging = d.logging_configuration();
        let group = logging
            .and_then(|l| l.destinations().first())
            .and_then(|x| x.cloud_watch_logs_log_group())
            .and_then(|g| g.log_group_arn())
            .and_then(crate::logs::group_of_arn)
            .map(str::to_owned);
        let level = logging
            .and_then(|l| l.level())
            .map(|l| l.as_str().to_owned());
        let stack = self.stack.clone().or_else(|| {
            group
                .as_deref()
                .and_then(crate::logs::stack_of_machine_group)
                .map(str::to_owned)
        });
        let mut warnings = Vec::new();
        let (mut executions, note) = if *d.r#type() == StateMachineType::Express {
            match (&group, level.as_deref()) {
                (Some(group), Some(level)) if level != "OFF" => {
                    let (xs, mut w) = self.express_executions(group, start, end).await?;
                    warnings.append(&mut w);
                    let note = (level != "ALL").then(|| {
                        format!(
                            "the state machine logs at level {level}: only failures are logged, \
                             so executions that went well are not listed and statuses may be \
                             unknown; set StateMachineLogLevel=ALL to see every execution"
                        )
                    });
                    (xs, note)
                }
                _ => (Vec::new(), Some(EXPRESS_NOTE.to_owned())),
            }
        } else {
            (self.standard_executions().await?, None)
        };
        match &stack {
            Some(stack) if !executions.is_empty() => {
                if let Err(e) = self.add_counts(stack, &mut executions, start).await {
                    warnings.push(format!("event counts unavailable: {}", describe(&e)));
                }
            }
            None if !executions.is_empty() => warnings.push(
                "event counts unavailable: pass --stack (the functions' log groups are \
                 /aws/lambda/<stack>-<stage>)"
                    .into(),
            ),
            _ => {}
        }
        Ok((view, executions, note, warnings))
    }

    /// Standard executions from the API, each with its failed stage from its history.
    async fn standard_executions(&self) -> Result<Vec<ExecutionView>, Error> {
        let out = self
            .sfn
            .list_executions()
            .state_machine_arn(&self.arn)
            .max_results(self.executions)
            .send()
            .await
            .map_err(|e| Error::call(format!("ListExecutions on {}", self.arn), e))?;
        if let Ok(mut finished) = self.finished.lock() {
            finished.keep_only(out.executions().iter().map(|x| x.execution_arn()));
        }
        let summaries = futures::future::join_all(out.executions().iter().map(|x| async move {
            let arn = x.execution_arn();
            // A failed execution can be redriven: while it is pending or running again its
            // history grows, so the cache is neither read nor written for it.
            use aws_sdk_sfn::types::ExecutionStatus;
            let running = matches!(
                x.status(),
                ExecutionStatus::Running | ExecutionStatus::PendingRedrive
            );
            if !running && let Some(known) = self.finished.lock().ok().and_then(|f| f.get(arn)) {
                return known;
            }
            // A history that cannot be read leaves the stage blank this time, not for good.
            let Ok(events) = self.history(arn).await else {
                return history::summarise(&[]);
            };
            let summary = history::summarise(&events);
            if let Ok(mut finished) = self.finished.lock() {
                finished.remember(arn, running, &summary);
            }
            summary
        }))
        .await;
        let mut executions: Vec<(Option<DateTime<Utc>>, ExecutionView)> = out
            .executions()
            .iter()
            .zip(summaries)
            .map(|(x, summary)| {
                let start = sfn_time(x.start_date());
                let view = ExecutionView {
                    name: x.name().to_owned(),
                    status: x.status().as_str().to_owned(),
                    start: start.map(rfc3339),
                    stop: x.stop_date().and_then(sfn_time).map(rfc3339),
                    failed_stage: summary.failed_stage,
                    error: summary.error,
                    counts: None,
                };
                (start, view)
            })
            .collect();
        // The API lists newest first; emulators need not, and the view promises it.
        executions.sort_by_key(|x| std::cmp::Reverse(x.0));
        Ok(executions.into_iter().map(|(_, v)| v).collect())
    }

    /// One Standard execution's history events (at most the first 1,000: ours have ~30).
    async fn history(&self, arn: &str) -> Result<Vec<history::StepEvent>, Error> {
        let out = self
            .sfn
            .get_execution_history()
            .execution_arn(arn)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| Error::call(format!("GetExecutionHistory on {arn}"), e))?;
        Ok(out
            .events()
            .iter()
            .map(|e| history::StepEvent {
                t_ms: sfn_time(e.timestamp()).map_or(0, |t| t.timestamp_millis()),
                seq: e.id(),
                kind: e.r#type().as_str().to_owned(),
                state: e
                    .state_entered_event_details()
                    .map(|d| d.name().to_owned())
                    .or_else(|| e.state_exited_event_details().map(|d| d.name().to_owned())),
                error: e
                    .lambda_function_failed_event_details()
                    .and_then(|d| d.error())
                    .or_else(|| e.task_failed_event_details().and_then(|d| d.error()))
                    .or_else(|| e.execution_failed_event_details().and_then(|d| d.error()))
                    .or_else(|| {
                        e.lambda_function_timed_out_event_details()
                            .and_then(|d| d.error())
                    })
                    .or_else(|| e.task_timed_out_event_details().and_then(|d| d.error()))
                    .map(str::to_owned),
            })
            .collect())
    }

    /// Express executions from the state machine's log group over the window, newest first.
    ///
    /// The window is read newest first, in slices that double in length ([`slices`]), until
    /// as many executions as the view shows have started inside what was read. A busy
    /// pipeline's newest executions are then found in its last minute or two: read oldest
    /// first under a cap, the whole window would have shown the oldest executions, with
    /// finished ones as running when their end fell past the cap.
    async fn express_executions(
        &self,
        group: &str,
        start: i64,
        end: i64,
    ) -> Result<(Vec<ExecutionView>, Vec<String>), Error> {
        let wanted = usize::try_from(self.executions).unwrap_or(10);
        let mut warnings = Vec::new();
        let mut events = Vec::new();
        let mut started = std::collections::HashSet::new();
        // FilterLogEvents includes an event stamped exactly at a slice's end, which the next
        // (older) slice reads again: each event is kept once, by its id.
        let mut read_ids = std::collections::HashSet::new();
        for (from, to) in slices(start * 1000, end * 1000) {
            let read = crate::logs::read(&self.logs, group, from, Some(to), None, LOG_CAP).await?;
            if read.missing {
                warnings.push(format!("log group {group} does not exist"));
                break;
            }
            if read.truncated {
                warnings.push(format!(
                    "more than {LOG_CAP} execution log events between {} and {}: the oldest \
                     were read",
                    rfc3339_ms(from),
                    rfc3339_ms(to)
                ));
            }
            for l in read.lines {
                if !read_ids.insert(l.id.clone()) {
                    continue;
                }
                if let Some(e) = history::parse_log_event(&l.message, l.t_ms) {
                    if e.event.kind == "ExecutionStarted" {
                        started.insert(e.execution_arn.clone());
                    }
                    events.push(e);
                }
            }
            if started.len() >= wanted {
                break;
            }
        }
        let executions = history::by_execution(events)
            .into_iter()
            .take(wanted)
            .map(|(arn, events)| {
                let s = history::summarise(&events);
                let time =
                    |ms: Option<i64>| ms.and_then(DateTime::from_timestamp_millis).map(rfc3339);
                ExecutionView {
                    name: history::execution_name(&arn).to_owned(),
                    status: s.status.unwrap_or("UNKNOWN").to_owned(),
                    start: time(s.start_ms),
                    stop: time(s.stop_ms),
                    failed_stage: s.failed_stage,
                    error: s.error,
                    counts: None,
                }
            })
            .collect();
        Ok((executions, warnings))
    }

    /// Fills in each execution's counts from persist's `persist done` lines.
    async fn add_counts(
        &self,
        stack: &str,
        executions: &mut [ExecutionView],
        start: i64,
    ) -> Result<(), Error> {
        let group = crate::logs::function_group(stack, Stage::Persist.as_str());
        let read = crate::logs::read(
            &self.logs,
            &group,
            start * 1000,
            None,
            Some("\"persist done\""),
            LOG_CAP,
        )
        .await?;
        let mut counts: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
        for line in &read.lines {
            let Ok(doc) = serde_json::from_str::<Value>(&line.message) else {
                continue;
            };
            let Some(execution) = doc.pointer("/span/execution").and_then(Value::as_str) else {
                continue;
            };
            let c: BTreeMap<String, u64> = pipeline_core::persist::Counts::FIELDS
                .iter()
                .filter_map(|k| Some(((*k).to_owned(), doc.get(*k)?.as_u64()?)))
                .collect();
            counts.insert(execution.to_owned(), c);
        }
        for x in executions {
            x.counts = counts.remove(&x.name);
        }
        Ok(())
    }
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

/// The window `[start_ms, end_ms)` cut newest first into slices of 1, 2, 4, … minutes, the
/// oldest cut at `start_ms`: a few reads cover a quiet window, and a busy one stops early.
pub(super) fn slices(start_ms: i64, end_ms: i64) -> impl Iterator<Item = (i64, i64)> {
    let mut to = end_ms;
    let mut len = 60_000_i64;
    std::iter::from_fn(move || {
        if to <= start_ms {
            return None;
        }
        let from = to.saturating_sub(len).max(start_ms);
        let slice = (from, to);
        to = from;
        len = len.saturating_mul(2);
        Some(slice)
    })
}

fn rfc3339_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), rfc3339)
}
