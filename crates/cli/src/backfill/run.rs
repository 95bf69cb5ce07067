//! The backfill on AWS, as the command runs it: upload as the plan is cut, start, follow with a
//! progress line, reconcile, print (the calls are `pipeline_backfill::aws`'s).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pipeline_backfill::aws::{Backfill, Progress, Reconciled};
use pipeline_backfill::{Plan, plan, plan_id};
use serde::Serialize;

use super::BackfillArgs;
use crate::error::CliError;

/// Progress checks that may fail in a row before the command gives up following.
const MAX_POLL_FAILURES: u32 = 10;

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
    /// What the reports came to.
    #[serde(flatten)]
    pub reconciled: Reconciled,
    /// Seconds from the start of the execution to its end.
    pub run_s: f64,
    /// Events reported per second of `run_s`.
    pub events_per_s: f64,
}

pub fn run(args: BackfillArgs) -> Result<ExitCode, CliError> {
    let missing = |what: &str| {
        CliError::Config(format!(
            "no {what} (the stack outputs BackfillBucketName, BackfillStateMachineArn)"
        ))
    };
    let bucket = args
        .bucket
        .clone()
        .ok_or_else(|| missing("bucket: pass --bucket or set BACKFILL_BUCKET"))?;
    let arn = args.state_machine_arn.clone().ok_or_else(|| {
        missing("state machine: pass --state-machine-arn or set BACKFILL_STATE_MACHINE_ARN")
    })?;
    let runtime = crate::input::runtime()?;
    let client = Backfill::new(&runtime.block_on(crate::send::aws_config())?, bucket);

    // Plan and upload, one shard at a time.
    let received_at = chrono::Utc::now();
    let uploading = bar("uploading {pos}/{len} shards", u64::from(args.shards));
    let planned = plan(
        &args.inputs,
        args.shards,
        &args.prefix,
        received_at,
        |_, objects| {
            runtime.block_on(client.put_all(objects))?;
            uploading.inc(1);
            Ok(())
        },
    )?;
    uploading.finish_and_clear();
    if planned.events == 0 {
        return Err(CliError::Config(
            "nothing to backfill: the inputs hold no events".into(),
        ));
    }
    let manifest = runtime.block_on(client.put_manifest(&planned, &args.prefix))?;
    if !args.json {
        super::print_plan(&planned);
        println!("uploaded to s3://{}/{}/", client.bucket(), args.prefix);
    }
    let started =
        runtime.block_on(client.start_run(&arn, &planned, &manifest, &args.prefix, received_at))?;
    if !args.json {
        println!("started {}", started.execution_arn);
    }
    let clock = Instant::now();
    let progress = runtime.block_on(follow(
        &client,
        &started.execution_arn,
        &planned,
        args.interval,
    ))?;
    let run_s = clock.elapsed().as_secs_f64();
    let reconciled = runtime.block_on(client.reconcile(&planned, &started.results))?;
    let reported = reconciled.totals.accounted();
    let summary = Summary {
        execution_arn: started.execution_arn,
        status: progress.status,
        error: progress.error,
        plan_id: plan_id(&planned),
        manifest,
        results: started.results,
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
    let ok = summary.status == "SUCCEEDED" && summary.reconciled.reconciled;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// Polls the execution until it ends, showing shards done and failed and events per second.
async fn follow(
    client: &Backfill,
    arn: &str,
    planned: &Plan,
    interval: u64,
) -> Result<Progress, CliError> {
    let shards = planned.shards_used as u64;
    let shown = bar("{pos}/{len} shards done ({msg})", shards);
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let (mut last, mut failures) = (None, 0);
    loop {
        // The execution runs on whatever happens here: a poll that fails is tried again, and
        // only a run of failures stops the command (the execution goes on; its ARN is printed).
        let p = match client.progress(arn).await {
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
                    "backfill: {MAX_POLL_FAILURES} progress checks in a row failed; the execution goes on: {arn}"
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
    let r = &s.reconciled;
    println!(
        "{} after {:.1} s: {} of {} batches reported, {:.0} events/s",
        s.status, s.run_s, r.batches_reported, s.plan.batches, s.events_per_s
    );
    if let Some(e) = &s.error {
        println!("  error: {e}");
    }
    let t = &r.totals;
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
    if r.reconciled {
        println!(
            "  reconciled: every one of the {} planned events counted once",
            s.plan.events
        );
    } else {
        println!(
            "  NOT reconciled: {} planned, {} reported; shards without reports: {:?} (redrive the execution: aws stepfunctions redrive-execution --execution-arn {})",
            s.plan.events, t.input, r.shards_missing, s.execution_arn
        );
    }
    println!("  reports: s3://…/{}/", s.results);
}
