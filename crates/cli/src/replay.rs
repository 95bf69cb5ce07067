//! `pipeline replay`: run quarantined events through the chain again, after the cause was fixed
//! (a contract change, an FX table with the missing currency, a corrected mapping).
//!
//! Each chosen entry runs alone, as batch `replay-<quarantine_id>`, from its original payload:
//! validate, enrich, detect, then persist, which is idempotent on `event_id`. The entry is then
//! marked with what happened (`replayed`: time, outcome, batch id):
//! - the event passes: it is stored (or found stored: `duplicate`, `stale`), and the entry is
//!   marked with that outcome; a marked-as-stored entry is never chosen again;
//! - it fails again (at any stage, or as a `conflict` with a stored record of the same
//!   version): it stays quarantined; the entry takes the new reasons and is marked
//!   `quarantined`. Persist does not write a second entry for it: the check for a conflict is
//!   made before anything is written.
//!
//! So a second replay changes nothing: stored events are not chosen again, and an entry that
//! fails again with the same reasons is left as it is. `--dry-run` reads only and prints what
//! would happen. Entries are taken oldest first, so corrections apply in the order they came.

use std::process::ExitCode;

use base64::Engine;
use chrono::{DateTime, Utc};
use pipeline_core::batch::{Batch, Quarantined, RawEvent, Stage};
use pipeline_core::persist::{Status, predict};
use pipeline_core::store::{QuarantineRecord, Replay, Store};
use pipeline_handlers::{Config, Pipeline};
use pipeline_ingest::{self as ingest, Item};
use serde::Serialize;
use serde_json::Value;

use crate::error::CliError;
use crate::stores::{StoreArgs, StoreKind};
use crate::text::printable;

/// `pipeline replay` arguments.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Only entries with a reason of this code (repeatable: any of them).
    #[arg(long = "reason", value_name = "CODE")]
    reasons: Vec<String>,
    /// Only entries quarantined at this stage (ingest, validate, enrich, detect, persist).
    #[arg(long, value_name = "STAGE")]
    stage: Option<String>,
    /// Only entries quarantined at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    since: Option<DateTime<Utc>>,
    /// Only entries quarantined before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<DateTime<Utc>>,
    /// Read only: print what replaying would do, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// One JSON line per entry, then a summary line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: StoreArgs,
}

/// Which entries a replay takes.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Any of these reason codes (empty: any).
    pub reasons: Vec<String>,
    /// This stage (`None`: any).
    pub stage: Option<String>,
    /// Quarantined at or after.
    pub since: Option<DateTime<Utc>>,
    /// Quarantined before.
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    /// Whether `q` is replayed: it matches, and no earlier replay stored its event.
    pub fn selects(&self, q: &QuarantineRecord) -> bool {
        let settled = q
            .replayed
            .as_ref()
            .is_some_and(|r| r.status != Status::Quarantined);
        !settled
            && (self.reasons.is_empty()
                || q.item
                    .reasons
                    .iter()
                    .any(|r| self.reasons.contains(&r.code)))
            && self
                .stage
                .as_deref()
                .is_none_or(|s| q.item.stage.as_str() == s)
            && self.since.is_none_or(|t| q.quarantined_at >= t)
            && self.until.is_none_or(|t| q.quarantined_at < t)
    }
}

/// What replaying one entry did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// The entry.
    pub quarantine_id: String,
    /// Its event id, when it has one.
    pub event_id: Option<String>,
    /// The outcome.
    pub status: Status,
    /// The reasons, when it failed again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<pipeline_core::batch::Reason>,
    /// Whether the store was written (false on a dry run, and for an entry that failed
    /// again exactly as before).
    pub wrote: bool,
}

/// Replays every entry `filter` selects, oldest first.
pub async fn replay<S: Store>(
    p: &Pipeline<S>,
    filter: &Filter,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Attempt>, CliError> {
    let entries = p.store().list_quarantine().await?;
    let mut out = Vec::new();
    for q in entries.iter().filter(|q| filter.selects(q)) {
        out.push(replay_one(p, q, dry_run, now).await?);
    }
    if !dry_run {
        p.store().flush().await?;
    }
    Ok(out)
}

async fn replay_one<S: Store>(
    p: &Pipeline<S>,
    q: &QuarantineRecord,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Attempt, CliError> {
    let batch_id = format!("replay-{}", q.quarantine_id);
    let Some(payload) = payload_of(q) else {
        // Ingest refuses it again, for the reason it gave the first time.
        return fail(p, q, q.item.clone(), batch_id, dry_run, now).await;
    };
    let batch = Batch {
        batch_id: batch_id.clone(),
        received_at: now,
        input_count: 1,
        events: vec![RawEvent {
            payload,
            provenance: q.item.provenance.clone(),
        }],
        quarantine: Vec::new(),
    };
    // Each stage either passes the event on or quarantines it: the first quarantine ends the
    // replay of this entry as a failure.
    let valid = p.validate(batch);
    if let Some(f) = valid.quarantine.first() {
        return fail(p, q, f.clone(), batch_id, dry_run, now).await;
    }
    let enriched = p.enrich(valid);
    if let Some(f) = enriched.quarantine.first() {
        return fail(p, q, f.clone(), batch_id, dry_run, now).await;
    }
    let scored = p.detect(enriched).await?;
    if let Some(f) = scored.quarantine.first() {
        return fail(p, q, f.clone(), batch_id, dry_run, now).await;
    }
    let Some(ev) = scored.events.first() else {
        // A stage returned neither the event nor a quarantine entry for it: a bug, reported
        // rather than guessed at.
        return Err(CliError::Config(format!(
            "replaying {}: the chain returned nothing for the event",
            q.quarantine_id
        )));
    };
    let status = match predict(p.store(), ev).await? {
        (Status::Conflict, reason) => {
            let f = Quarantined {
                stage: pipeline_core::batch::Stage::Persist,
                reasons: reason.into_iter().collect(),
                ..q.item.clone()
            };
            return fail(p, q, f, batch_id, dry_run, now).await;
        }
        (status, _) if dry_run => status,
        (status, _) => {
            let report = p.persist(scored, now).await?;
            report.outcomes.first().map_or(status, |o| o.status)
        }
    };
    settle(p, q, status, &batch_id, dry_run, now).await
}

/// The event failed again as `f`: the entry takes the new reasons (unless they are exactly
/// the ones an earlier replay left), marked `quarantined`.
async fn fail<S: Store>(
    p: &Pipeline<S>,
    q: &QuarantineRecord,
    f: Quarantined,
    batch_id: String,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Attempt, CliError> {
    let unchanged = q.replayed.is_some() && q.item.reasons == f.reasons && q.item.stage == f.stage;
    let wrote = !dry_run && !unchanged;
    if wrote {
        let record = QuarantineRecord {
            item: Quarantined {
                stage: f.stage,
                reasons: f.reasons.clone(),
                ..q.item.clone()
            },
            replayed: Some(Replay {
                at: now,
                status: Status::Quarantined,
                batch_id,
            }),
            ..q.clone()
        };
        p.store().replace_quarantine(&record).await?;
    }
    Ok(Attempt {
        quarantine_id: q.quarantine_id.clone(),
        event_id: q.item.event_id.clone(),
        status: Status::Quarantined,
        reasons: f.reasons,
        wrote,
    })
}

/// The event is stored (or was found stored): mark the entry.
async fn settle<S: Store>(
    p: &Pipeline<S>,
    q: &QuarantineRecord,
    status: Status,
    batch_id: &str,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Attempt, CliError> {
    if !dry_run {
        let record = QuarantineRecord {
            replayed: Some(Replay {
                at: now,
                status,
                batch_id: batch_id.to_owned(),
            }),
            ..q.clone()
        };
        p.store().replace_quarantine(&record).await?;
    }
    Ok(Attempt {
        quarantine_id: q.quarantine_id.clone(),
        event_id: q.item.event_id.clone(),
        status,
        reasons: Vec::new(),
        wrote: !dry_run,
    })
}

/// The payload to run again. An entry quarantined at ingest keeps the record's raw text (its
/// bytes as base64 when they were not UTF-8), which is decoded again with exactly the rules
/// ingest applies (a repeated key is refused, not resolved by the last one winning); `None`
/// when ingest refuses it again or it is not an event object, so that the entry keeps the
/// reason it was given. Entries of later stages keep the event itself.
fn payload_of(q: &QuarantineRecord) -> Option<Value> {
    if q.item.stage != Stage::Ingest {
        return Some(q.item.payload.clone());
    }
    let bytes = match &q.item.payload {
        Value::String(text) if q.item.reasons.iter().any(|r| r.code == "invalid_utf8") => {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?
        }
        Value::String(text) => text.clone().into_bytes(),
        other @ Value::Object(_) => return Some(other.clone()),
        _ => return None,
    };
    match ingest::decode_byte_line("replay", 1, &bytes)? {
        Item::Event(raw) if raw.payload.is_object() => Some(raw.payload),
        Item::Event(_) | Item::Quarantined(_) => None,
    }
}

#[derive(Serialize)]
struct Summary {
    selected: usize,
    stored: usize,
    still_quarantined: usize,
    by_status: std::collections::BTreeMap<String, usize>,
    dry_run: bool,
}

/// `pipeline replay`.
pub fn run(args: ReplayArgs) -> Result<ExitCode, CliError> {
    let filter = Filter {
        reasons: args.reasons.clone(),
        stage: args.stage.clone(),
        since: args.since,
        until: args.until,
    };
    let stages = Stage::ALL.map(Stage::as_str);
    if let Some(s) = &filter.stage
        && !stages.contains(&s.as_str())
    {
        return Err(CliError::Config(format!(
            "--stage {s}: expected one of {}",
            stages.join(", ")
        )));
    }
    let runtime = crate::input::runtime()?;
    let attempts = runtime.block_on(async {
        let config = Config::from_env()?;
        match args.target.store {
            StoreKind::Embedded => {
                let p = Pipeline::new(config, args.target.existing_sqlite()?)?;
                replay(&p, &filter, args.dry_run, Utc::now()).await
            }
            #[cfg(feature = "aws")]
            StoreKind::Dynamodb => {
                let p = Pipeline::new(config, args.target.dynamodb().await)?;
                replay(&p, &filter, args.dry_run, Utc::now()).await
            }
            #[cfg(not(feature = "aws"))]
            StoreKind::Dynamodb => Err(crate::stores::without_aws("--store dynamodb")),
        }
    })?;
    let mut by_status = std::collections::BTreeMap::new();
    for a in &attempts {
        *by_status.entry(a.status.as_str().to_owned()).or_insert(0) += 1;
    }
    let still = attempts
        .iter()
        .filter(|a| a.status == Status::Quarantined)
        .count();
    let summary = Summary {
        selected: attempts.len(),
        stored: attempts.len() - still,
        still_quarantined: still,
        by_status,
        dry_run: args.dry_run,
    };
    if args.json {
        for a in &attempts {
            println!("{}", serde_json::to_string(a).unwrap_or_default());
        }
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        for a in &attempts {
            let reasons: Vec<&str> = a.reasons.iter().map(|r| r.code.as_str()).collect();
            println!(
                "{:<12} {:<28} {}{}",
                a.status.as_str(),
                printable(a.event_id.as_deref().unwrap_or("-")),
                printable(&a.quarantine_id),
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", printable(&reasons.join(", ")))
                }
            );
        }
        println!(
            "{} {} entries: {} stored, {} still quarantined{}",
            if args.dry_run {
                "would replay"
            } else {
                "replayed"
            },
            summary.selected,
            summary.stored,
            summary.still_quarantined,
            if args.dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
