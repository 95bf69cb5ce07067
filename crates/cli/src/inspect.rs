//! `pipeline show` and `pipeline anomalies`: read back what a store holds (the embedded
//! file, or with `--store dynamodb` the local stack's or a deployment's tables), so nobody
//! needs SQL or boto3 to check a run. [`Incidents`] gathers the episodes the stored records
//! belong to, for `anomalies --incidents` and the report.

use std::process::ExitCode;

use pipeline_core::detect::IncidentRole;
use pipeline_core::store::{EventRecord, Store};
use serde_json::{Value, json};

use crate::error::CliError;
use crate::stores::{StoreArgs, StoreKind};
use pipeline_core::store::Inspect;
use pipeline_report::incidents::{IncidentRow, Incidents};

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
    crate::text::warn_unreadable(&listing.unreadable);
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
        none_stored("anomalies", entity);
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
            crate::text::printable(&r.entity_id),
            crate::text::printable(&r.event_id),
            r.detection.score,
            crate::text::printable(&incident),
            crate::text::printable(&reasons.join(", "))
        );
    }
    Ok(ExitCode::SUCCESS)
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
            let records = crate::records::Streamed::new(&store);
            let mut all = Incidents::default();
            pipeline_report::Records::each_event(&records, None, &mut |r| all.add(r))?;
            crate::text::warn_unreadable(&records.unreadable.borrow());
            all.finish()
        }
        #[cfg(feature = "aws")]
        StoreKind::Dynamodb => {
            let runtime = crate::input::runtime()?;
            let dump = runtime.block_on(async { target.dynamodb().await.dump().await })?;
            crate::text::warn_unreadable(&dump.unreadable);
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
        none_stored("incidents", entity);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<12} {:<30} {:<30} {:>6} {:>6} {:>6}  state",
        "incident", "entity", "first_at", "last_at", "events", "alerts", "peak"
    );
    for r in &rows {
        println!(
            "{:<28} {:<12} {:<30} {:<30} {:>6} {:>6} {:>6.3}  {}",
            crate::text::printable(&r.id),
            crate::text::printable(&r.entity_id),
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

/// Says that the store holds no `what` (for `entity`, when one was named).
fn none_stored(what: &str, entity: Option<&str>) {
    println!(
        "no {what} stored{}",
        entity
            .map(|e| format!(" for {}", crate::text::printable(e)))
            .unwrap_or_default()
    );
}
