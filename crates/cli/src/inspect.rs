//! `pipeline show` and `pipeline anomalies`: read back what a store holds (the embedded
//! file, or with `--store dynamodb` the local stack's or a deployment's tables), so nobody
//! needs SQL or boto3 to check a run.

use std::process::ExitCode;

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
            StoreKind::Embedded => show_in(&target.existing_sqlite()?, event_id).await,
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
    let records = runtime.block_on(async {
        Ok::<_, CliError>(match target.store {
            StoreKind::Embedded => {
                target
                    .existing_sqlite()?
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

/// `s` with every control character written as an escape (`\u{1b}`), so that stored text —
/// which producers control — can never drive the terminal it is printed on.
fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
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
    }
}
