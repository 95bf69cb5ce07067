//! `pipeline show` and `pipeline anomalies`: read back what a store holds (the embedded
//! file, or with `--store dynamodb` the local stack's or a deployment's tables), so nobody
//! needs SQL or boto3 to check a run. [`Incidents`] gathers the episodes the stored records
//! belong to, for `anomalies --incidents` and the report.

use std::process::ExitCode;

use std::collections::HashMap;

use pipeline_core::detect::IncidentRole;
use pipeline_core::store::{EventRecord, Store};
use serde_json::{Value, json};

use crate::error::CliError;
use crate::stores::{StoreArgs, StoreKind};

/// Prints the record of `event_id` and any quarantine entries for it, as pretty JSON.
pub fn show(target: &StoreArgs, event_id: &str) -> Result<ExitCode, CliError> {
    let runtime = crate::input::runtime()?;
    runtime.block_on(async {
        match target.store {
            StoreKind::Embedded => show_in(&target.readable_sqlite()?, event_id).await,
            #[cfg(feature = "aws")]
            StoreKind::Dynamodb => show_in(&target.dynamodb().await, event_id).await,
            #[cfg(not(feature = "aws"))]
            StoreKind::Dynamodb => Err(crate::stores::without_aws("--store dynamodb")),
        }
    })
}

async fn show_in<S: Store>(store: &S, event_id: &str) -> Result<ExitCode, CliError> {
    let record = store
        .get_events(&[event_id.to_owned()])
        .await?
        .remove(event_id);
    let quarantine = store.quarantine_of(event_id).await?;
    if record.is_none() && quarantine.is_empty() {
        return Err(CliError::NotFound(format!(
            "no record and no quarantine entry for event_id {event_id:?}"
        )));
    }
    let out = json!({
        "event_id": event_id,
        "record": record.as_ref().map(summary),
        "stored": record,
        "quarantine": quarantine,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

fn summary(r: &EventRecord) -> Value {
    json!({
        "status": r.status,
        "version": r.version,
        "entity_id": r.entity_id,
        "occurred_at": r.occurred_at,
        "score": r.detection.score,
        "is_anomaly": r.detection.is_anomaly,
        "reasons": r.detection.reasons,
        "incident": r.detection.incident,
    })
}

/// Lists anomalies, newest first: the alerts, one per incident opened or escalated (the
/// continuations of an incident are stored with it but are not alerts).
pub fn anomalies(
    target: &StoreArgs,
    entity: Option<&str>,
    limit: usize,
    as_json: bool,
) -> Result<ExitCode, CliError> {
    let runtime = crate::input::runtime()?;
    let listing = runtime.block_on(async {
        Ok::<_, CliError>(match target.store {
            StoreKind::Embedded => {
                target
                    .readable_sqlite()?
                    .list_anomalies(entity, limit)
                    .await?
            }
            #[cfg(feature = "aws")]
            StoreKind::Dynamodb => {
                target
                    .dynamodb()
                    .await
                    .list_anomalies(entity, limit)
                    .await?
            }
            #[cfg(not(feature = "aws"))]
            StoreKind::Dynamodb => return Err(crate::stores::without_aws("--store dynamodb")),
        })
    })?;
    warn_unreadable(&listing.unreadable);
    let records = listing.records;
    if as_json {
        for r in &records {
            let mut v = summary(r);
            v["event_id"] = json!(r.event_id);
            println!("{v}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        println!(
            "no anomalies stored{}",
            entity
                .map(|e| format!(" for {}", printable(e)))
                .unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<30} {:<12} {:<28} {:>6}  {:<9}  reasons",
        "occurred_at", "entity", "event_id", "score", "incident"
    );
    for r in &records {
        let reasons: Vec<String> = r
            .detection
            .reasons
            .iter()
            .filter_map(|x| serde_json::to_value(x).ok())
            .map(|v| {
                let code = v
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned();
                let detail: Vec<String> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| *k != "code")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!("{code}({})", detail.join(" "))
            })
            .collect();
        // An escalation names the incident it raised; an opening event is the incident.
        let incident = match &r.detection.incident {
            Some(i) if i.role == IncidentRole::Escalates => format!("escalates {}", i.id),
            Some(_) | None => "opens".to_owned(),
        };
        println!(
            "{:<30} {:<12} {:<28} {:>6.3}  {:<9}  {}",
            r.occurred_at,
            printable(&r.entity_id),
            printable(&r.event_id),
            r.detection.score,
            printable(&incident),
            printable(&reasons.join(", "))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One incident as the stored records tell it: every record of the incident carries its id,
/// and the event whose time closed it carries its summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IncidentRow {
    /// The incident's id: the id of the event that opened it.
    pub id: String,
    /// Its entity.
    pub entity_id: String,
    /// Event time of its earliest stored event.
    pub first_at: String,
    /// Its latest stored event in event time.
    pub last_event: String,
    /// Event time of that event.
    pub last_at: String,
    /// Stored events in it (the opening one, escalations and continuations).
    pub events: usize,
    /// Of those, the alerts (`is_anomaly`: the opening event and the escalations).
    pub alerts: usize,
    /// Its highest stored score.
    pub peak: f64,
    /// Whether a later event closed it (its quiet period passed); else it is still open.
    pub closed: bool,
}

/// The incidents of the records folded in, newest first (by their latest event, then id).
/// A record carries its incident's id, so the counts are exact for what the store holds; an
/// incident is closed when some record says it closed it. One record at a time, so that a
/// read can stream the store.
#[derive(Default)]
pub struct Incidents {
    rows: HashMap<(String, String), IncidentRow>,
    closed: std::collections::HashSet<(String, String)>,
}

impl Incidents {
    /// Folds in one record.
    pub fn add(&mut self, r: &EventRecord) {
        if let Some(c) = &r.detection.closes {
            self.closed.insert((r.entity_id.clone(), c.id.clone()));
        }
        let Some(i) = &r.detection.incident else {
            return;
        };
        let row = self
            .rows
            .entry((r.entity_id.clone(), i.id.clone()))
            .or_insert_with(|| IncidentRow {
                id: i.id.clone(),
                entity_id: r.entity_id.clone(),
                first_at: r.occurred_at.clone(),
                last_event: r.event_id.clone(),
                last_at: r.occurred_at.clone(),
                events: 0,
                alerts: 0,
                peak: 0.0,
                closed: false,
            });
        row.events += 1;
        row.alerts += usize::from(r.detection.is_anomaly);
        row.peak = row.peak.max(r.detection.score);
        // Stored times are RFC 3339 with milliseconds in UTC: they order as text.
        if r.occurred_at < row.first_at {
            row.first_at.clone_from(&r.occurred_at);
        }
        if r.occurred_at > row.last_at
            || (r.occurred_at == row.last_at && r.event_id > row.last_event)
        {
            row.last_at.clone_from(&r.occurred_at);
            row.last_event.clone_from(&r.event_id);
        }
    }

    /// The incidents, newest first.
    pub fn finish(self) -> Vec<IncidentRow> {
        let closed = self.closed;
        let mut out: Vec<IncidentRow> = self
            .rows
            .into_iter()
            .map(|(key, mut row)| {
                row.closed = closed.contains(&key);
                row
            })
            .collect();
        out.sort_by(|a, b| {
            b.last_at
                .cmp(&a.last_at)
                .then_with(|| a.entity_id.cmp(&b.entity_id))
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }
}

/// Lists incidents, newest first: `anomalies --incidents`. It reads every record (on
/// DynamoDB a scan, as `report` does), since continuations are not in the anomaly index.
pub fn list_incidents(
    target: &StoreArgs,
    entity: Option<&str>,
    limit: usize,
    as_json: bool,
) -> Result<ExitCode, CliError> {
    let all = match target.store {
        // Streamed: one record in memory at a time.
        StoreKind::Embedded => {
            let store = target.readable_sqlite()?;
            let records = crate::report::Streamed::new(&store);
            let mut all = Incidents::default();
            crate::report::Records::each_event(&records, None, &mut |r| all.add(r))?;
            warn_unreadable(&records.unreadable.borrow());
            all.finish()
        }
        #[cfg(feature = "aws")]
        StoreKind::Dynamodb => {
            let runtime = crate::input::runtime()?;
            let dump = runtime.block_on(async { target.dynamodb().await.dump().await })?;
            warn_unreadable(&dump.unreadable);
            let mut all = Incidents::default();
            for r in &dump.events {
                all.add(r);
            }
            all.finish()
        }
        #[cfg(not(feature = "aws"))]
        StoreKind::Dynamodb => return Err(crate::stores::without_aws("--store dynamodb")),
    };
    let rows: Vec<IncidentRow> = all
        .into_iter()
        .filter(|r| entity.is_none_or(|e| r.entity_id == e))
        .take(limit)
        .collect();
    if as_json {
        for r in &rows {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!(
            "no incidents stored{}",
            entity
                .map(|e| format!(" for {}", printable(e)))
                .unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<12} {:<30} {:<30} {:>6} {:>6} {:>6}  state",
        "incident", "entity", "first_at", "last_at", "events", "alerts", "peak"
    );
    for r in &rows {
        println!(
            "{:<28} {:<12} {:<30} {:<30} {:>6} {:>6} {:>6.3}  {}",
            printable(&r.id),
            printable(&r.entity_id),
            r.first_at,
            r.last_at,
            r.events,
            r.alerts,
            r.peak,
            if r.closed { "closed" } else { "open" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Says on stderr which stored documents were skipped because they do not decode (the rest
/// were read and are shown).
pub fn warn_unreadable(unreadable: &[String]) {
    if unreadable.is_empty() {
        return;
    }
    eprintln!(
        "warning: {} stored document(s) could not be read and were skipped:",
        unreadable.len()
    );
    for u in unreadable.iter().take(20) {
        eprintln!("  {}", printable(u));
    }
    if unreadable.len() > 20 {
        eprintln!("  … and {} more", unreadable.len() - 20);
    }
}

/// `s` with every control character written as an escape (`\u{1b}`), and every character
/// that reorders or hides text (bidirectional overrides, zero-width characters: see
/// [`pipeline_core::validate::is_hidden`]), so that stored text — which producers control —
/// can never drive the terminal it is printed on or pass one id off as another.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() || pipeline_core::validate::is_hidden(c);
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if bad(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(printable("acct-1"), "acct-1");
        assert_eq!(
            printable("a\u{1b}[31mred\u{7}\u{9b}"),
            "a\\u{1b}[31mred\\u{7}\\u{9b}"
        );
        assert_eq!(
            printable("acct\u{202e}1\u{200b}"),
            "acct\\u{202e}1\\u{200b}"
        );
    }
}
