//! The backfill on AWS: upload as the plan is cut, start, follow, reconcile.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pipeline_aws::backfill::{Backfill, Progress};
use pipeline_core::persist::Counts;
use serde::{Deserialize, Serialize};

use super::BackfillArgs;
use super::plan::{self, Plan};
use crate::error::CliError;

/// Progress checks that may fail in a row before the command gives up following.
const MAX_POLL_FAILURES: u32 = 10;

/// One batch's line in a shard's reports object (what WriteTotals writes).
#[derive(Debug, Deserialize)]
struct BatchReport {
    batch_id: String,
    counts: Counts,
}

/// What `pipeline backfill` prints (`--json`: exactly this).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The backfill execution.
    pub execution_arn: String,
    /// How it ended.
    pub status: String,
    /// Its error and cause, when it failed.
    pub error: Option<String>,
    /// The plan.
    pub plan: Plan,
    /// The plan's id (the manifest's name).
    pub plan_id: String,
    /// The manifest's key.
    pub manifest: String,
    /// Where the shards' reports are.
    pub results: String,
    /// Batches whose report was read back.
    pub batches_reported: usize,
    /// The outcomes of every reported event.
    pub totals: Counts,
    /// Shards without reports for all their batches, in order (their child failed or never
    /// ran): redrive the execution.
    pub shards_missing: Vec<u32>,
    /// Every planned event is accounted for exactly once.
    pub reconciled: bool,
    /// Seconds from the start of the execution to its end.
    pub run_s: f64,
    /// Events reported per second of `run_s`.
    pub events_per_s: f64,
}

pub fn run(args: BackfillArgs) -> Result<ExitCode, CliError> {
    let bucket = args.bucket.clone().ok_or_else(|| {
        CliError::Config(
            "no bucket: pass --bucket or set BACKFILL_BUCKET (the stack output BackfillBucketName)"
                .into(),
        )
    })?;
    let arn = args.state_machine_arn.clone().ok_or_else(|| {
        CliError::Config("no state machine: pass --state-machine-arn or set BACKFILL_STATE_MACHINE_ARN (the stack output BackfillStateMachineArn)".into())
    })?;
    let runtime = crate::input::runtime()?;
    let sdk = runtime.block_on(crate::send::aws_config())?;
    let client = Backfill::new(&sdk, bucket);

    // Plan and upload, one shard at a time.
    let received_at = chrono::Utc::now();
    let uploading = bar(
        "uploading {pos}/{len} shards ({msg})",
        u64::from(args.shards),
    );
    let mut uploaded_bytes = 0usize;
    let planned = plan::plan(
        &args.inputs,
        args.shards,
        &args.prefix,
        received_at,
        |_, objects| {
            runtime.block_on(client.put_all(objects, |n| uploaded_bytes += n))?;
            uploading.inc(1);
            uploading.set_message(format!("{:.1} MB", uploaded_bytes as f64 / 1e6));
            Ok(())
        },
    )?;
    uploading.finish_and_clear();
    if planned.events == 0 {
        return Err(CliError::Config(
            "nothing to backfill: the inputs hold no events".into(),
        ));
    }
    let plan_id = plan::plan_id(&planned);
    let manifest = format!("{}/manifests/{plan_id}.json", args.prefix);
    let body = serde_json::to_vec(&planned.manifest).map_err(|e| CliError::Input {
        path: manifest.clone(),
        message: format!("cannot encode the manifest: {e}"),
    })?;
    runtime.block_on(client.put(&manifest, body))?;
    if !args.json {
        super::print_plan(&planned);
        println!("uploaded to s3://{}/{}/", client.bucket(), args.prefix);
    }

    // Start and follow.
    let run_id = format!("{plan_id}-{}", received_at.timestamp_millis());
    let results = format!("{}/results/{run_id}", args.prefix);
    let input = serde_json::json!({ "manifest": manifest, "results": results });
    let execution_arn =
        runtime.block_on(client.start(&arn, &format!("backfill-{run_id}"), &input))?;
    if !args.json {
        println!("started {execution_arn}");
    }
    let started = Instant::now();
    let progress = runtime.block_on(follow(&client, &execution_arn, &planned, args.interval))?;
    let run_s = started.elapsed().as_secs_f64();

    // Reconcile.
    let mut totals = Counts::default();
    let mut batches_reported = 0;
    let mut shards_missing = Vec::new();
    for shard in &planned.manifest {
        let key = format!("{results}/shard-{}.json", shard.shard);
        let Some(bytes) = runtime.block_on(client.get(&key))? else {
            shards_missing.push(shard.shard);
            continue;
        };
        let reports: Vec<BatchReport> =
            serde_json::from_slice(&bytes).map_err(|e| CliError::Input {
                path: format!("s3://{}/{key}", client.bucket()),
                message: format!("not a shard's reports: {e}"),
            })?;
        // The reports are the shard's batches, all of them, in the order planned.
        let ids = reports.iter().map(|r| r.batch_id.as_str());
        let planned_ids = shard.batches.iter().map(|b| plan::batch_id_of_key(&b.key));
        if !ids.eq(planned_ids) {
            shards_missing.push(shard.shard);
        }
        for r in &reports {
            totals.merge(&r.counts);
        }
        batches_reported += reports.len();
    }
    let reconciled = shards_missing.is_empty()
        && totals.input == planned.events
        && totals.accounted() == totals.input;
    let reported = totals.accounted();
    let summary = Summary {
        execution_arn,
        status: progress.status,
        error: progress.error,
        plan_id,
        manifest,
        results,
        batches_reported,
        totals,
        shards_missing,
        reconciled,
        run_s: (run_s * 1000.0).round() / 1000.0,
        events_per_s: if run_s > 0.0 {
            (reported as f64 / run_s).round()
        } else {
            0.0
        },
        plan: planned,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        print_summary(&summary);
    }
    Ok(if summary.status == "SUCCEEDED" && summary.reconciled {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// Polls the execution until it ends, showing shards done and failed and events per second.
async fn follow(
    client: &Backfill,
    execution_arn: &str,
    planned: &Plan,
    interval: u64,
) -> Result<Progress, CliError> {
    let shards = planned.shards_used as u64;
    let shown = bar("{pos}/{len} shards done ({msg})", shards);
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last = None;
    let mut failures = 0;
    loop {
        // The execution runs on whatever happens here: a poll that fails is tried again, and
        // only a run of failures stops the command (the execution goes on; its ARN is printed).
        let p = match client.progress(execution_arn).await {
            Ok(p) => {
                failures = 0;
                p
            }
            Err(e) if failures + 1 < MAX_POLL_FAILURES => {
                failures += 1;
                shown.suspend(|| eprintln!("backfill: checking progress failed ({failures} in a row), trying again: {e}"));
                tokio::time::sleep(Duration::from_secs(interval)).await;
                continue;
            }
            Err(e) => {
                eprintln!(
                    "backfill: {MAX_POLL_FAILURES} progress checks in a row failed; the execution goes on: {execution_arn}"
                );
                return Err(e.into());
            }
        };
        if let Some(items) = p.items {
            let done = u64::try_from(items.succeeded).unwrap_or(0);
            // Events are known per shard, not per finished shard: the rate is an estimate.
            let events = planned.events as f64 * done as f64 / shards.max(1) as f64;
            let rate = events / started.elapsed().as_secs_f64().max(1e-3);
            let msg = format!(
                "{} failed, {} running, ~{rate:.0} events/s",
                items.failed, items.running
            );
            shown.set_position(done);
            shown.set_message(msg.clone());
            if !terminal && last != Some(items) {
                eprintln!("backfill: {done}/{shards} shards done, {msg}");
            }
            last = Some(items);
        }
        if p.ended() {
            shown.finish_and_clear();
            return Ok(p);
        }
        tokio::time::sleep(Duration::from_secs(interval)).await;
    }
}

fn bar(template: &str, len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&format!("{{elapsed_precise}} {template}")) {
        bar.set_style(style);
    }
    bar
}

fn print_summary(s: &Summary) {
    println!(
        "{} after {:.1} s: {} of {} batches reported, {:.0} events/s",
        s.status, s.run_s, s.batches_reported, s.plan.batches, s.events_per_s
    );
    if let Some(e) = &s.error {
        println!("  error: {e}");
    }
    let t = &s.totals;
    println!(
        "  {} events: {} persisted, {} duplicate, {} updated, {} stale, {} conflict, {} quarantined; {} anomalies",
        t.input,
        t.persisted,
        t.duplicate,
        t.updated,
        t.stale,
        t.conflict,
        t.quarantined,
        t.anomalies
    );
    if s.reconciled {
        println!(
            "  reconciled: every one of the {} planned events counted once",
            s.plan.events
        );
    } else {
        println!(
            "  NOT reconciled: {} planned, {} reported; shards without reports: {:?} (redrive the execution: aws stepfunctions redrive-execution --execution-arn {})",
            s.plan.events, t.input, s.shards_missing, s.execution_arn
        );
    }
    println!("  reports: s3://…/{}/", s.results);
}
