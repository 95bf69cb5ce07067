//! Drawing a [`Snapshot`] for a terminal.

use chrono::{DateTime, Utc};
use pipeline_aws::watch::{LAG, Snapshot};
use pipeline_handlers::telemetry::metric;
use serde_json::Value;

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
        "executions     started {}  succeeded {}  failed {}  timed out {}  aborted {}  throttled {}   (AWS/States{})",
        count("ExecutionsStarted"),
        count("ExecutionsSucceeded"),
        count("ExecutionsFailed"),
        count("ExecutionsTimedOut"),
        count("ExecutionsAborted"),
        count("ExecutionThrottled"),
        if s.metrics_note.is_some() {
            ", no data"
        } else {
            ""
        },
    );
    let _ = writeln!(o, "\nrecent executions");
    if let Some(note) = &s.executions_note {
        let _ = writeln!(o, "  note: {note}");
    }
    if s.executions.is_empty() {
        if s.executions_note.is_none() {
            let _ = writeln!(o, "  (none)");
        }
    } else {
        let _ = writeln!(
            o,
            "  {:<10} {:<20} {:>9}  {:<11} {:<36} {:>17}  NAME",
            "STATUS", "START (UTC)", "DURATION", "FAILED AT", "ERROR", "IN/STORED/QUAR"
        );
        for x in &s.executions {
            let start = x.start.as_deref().and_then(parse_time);
            let stop = x.stop.as_deref().and_then(parse_time);
            let duration = match (start, stop) {
                (Some(a), Some(b)) => {
                    format!("{:.1} s", (b - a).num_milliseconds() as f64 / 1000.0)
                }
                (Some(_), None) if x.status == "RUNNING" => "running".to_owned(),
                _ => "-".to_owned(),
            };
            let counts = x.counts.as_ref().map_or_else(
                || "-".to_owned(),
                |c| {
                    let n = |k: &str| c.get(k).map_or("?".to_owned(), u64::to_string);
                    format!(
                        "{}/{}/{}",
                        n("input"),
                        c.get("persisted").map_or("?".to_owned(), |p| {
                            (p + c.get("updated").copied().unwrap_or(0)).to_string()
                        }),
                        n("quarantined")
                    )
                },
            );
            let _ = writeln!(
                o,
                "  {:<10} {:<20} {:>9}  {:<11} {:<36} {:>17}  {}",
                x.status,
                start.map_or_else(
                    || "-".to_owned(),
                    |t| t.format("%Y-%m-%d %H:%M:%S").to_string()
                ),
                duration,
                x.failed_stage.as_deref().unwrap_or("-"),
                x.error.as_deref().unwrap_or("-"),
                counts,
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
    if let Some(note) = &s.metrics_note {
        let _ = writeln!(o, "\nmetrics        {note}");
        for w in &s.warnings {
            let _ = writeln!(o, "\nwarning: {w}");
        }
        return o;
    }
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
