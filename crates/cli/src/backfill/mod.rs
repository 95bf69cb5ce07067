//! `pipeline backfill`: load history into the deployed pipeline through the backfill state
//! machine (statemachines/backfill.asl.json, a Step Functions Distributed Map; docs/backfill.md).
//!
//! The inputs are planned (`pipeline_backfill::plan`: sharded by entity, ordered by event time,
//! cut into batch documents), each shard's objects uploaded to the stack's backfill bucket as
//! soon as the shard is cut, then the manifest; one execution is started on it and followed
//! (shards done and failed, events per second) until it ends; then every shard's reports are
//! read back and reconciled against the plan: each planned event is counted once as persisted,
//! duplicate, updated, stale, conflict or quarantined. `--dry-run` prints the plan and uploads
//! nothing (and needs no AWS).

#[cfg(feature = "aws")]
mod run;

use pipeline_backfill::{Plan, plan, plan_id};

use std::process::ExitCode;

use crate::error::CliError;

/// Arguments of `pipeline backfill`.
#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// JSON Lines files of events (`-` for stdin), in any order: each entity's events are put
    /// in event-time order.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// The stack's backfill bucket (stack output `BackfillBucketName`).
    #[arg(long, env = "BACKFILL_BUCKET")]
    pub bucket: Option<String>,
    /// Key prefix of everything this backfill puts in the bucket.
    #[arg(long, default_value = "backfill")]
    pub prefix: String,
    /// The backfill state machine (stack output `BackfillStateMachineArn`).
    #[arg(long, env = "BACKFILL_STATE_MACHINE_ARN")]
    pub state_machine_arn: Option<String>,
    /// Shards: the Distributed Map's items, each run by one child execution, one batch after
    /// another. More shards, more parallelism (up to the stack's BackfillMaxConcurrency); one
    /// shard holds at most 500 batches (about 50,000 events).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub shards: u32,
    /// Print the plan (shards, batches, executions) and upload nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds between progress checks while the execution runs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub interval: u64,
    /// Print the summary as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn backfill(args: BackfillArgs) -> Result<ExitCode, CliError> {
    if args.dry_run {
        return dry_run(&args);
    }
    #[cfg(feature = "aws")]
    {
        run::run(args)
    }
    #[cfg(not(feature = "aws"))]
    {
        Err(crate::stores::without_aws(
            "`pipeline backfill` (without --dry-run)",
        ))
    }
}

fn dry_run(args: &BackfillArgs) -> Result<ExitCode, CliError> {
    let received_at = chrono::Utc::now();
    let planned = plan(
        &args.inputs,
        args.shards,
        &args.prefix,
        received_at,
        |_, _| Ok(()),
    )?;
    let summary = serde_json::json!({
        "dry_run": true,
        "plan": &planned,
        "plan_id": plan_id(&planned),
        // One child per used shard, and one pipeline execution per batch.
        "executions": { "backfill": 1, "children": planned.shards_used, "pipeline": planned.batches },
    });
    if args.json {
        println!("{summary}");
    } else {
        print_plan(&planned);
        println!("dry run: nothing uploaded, nothing started");
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan, as text.
pub fn print_plan(p: &Plan) {
    println!(
        "plan {}: {} events ({} not JSON, quarantined at ingest) in {} of {} shards (largest {} events)",
        plan_id(p),
        p.events,
        p.not_json,
        p.shards_used,
        p.shards,
        p.largest_shard
    );
    println!(
        "  {} batch documents ({:.1} MB), run as 1 backfill execution, {} child executions, {} pipeline executions",
        p.batches,
        p.bytes as f64 / 1e6,
        p.shards_used,
        p.batches
    );
}
