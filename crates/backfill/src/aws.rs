//! The backfill on AWS: put the shards' batch documents and the manifest in the backfill bucket,
//! start the backfill state machine (statemachines/backfill.asl.json), follow its Distributed
//! Map run, and read back and reconcile the reports each shard's child wrote.
//!
//! Every call has the SDK's standard retries; what still fails is an [`Error::Call`] naming the
//! call and the object or execution.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::types::ExecutionStatus;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use pipeline_core::persist::Counts;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::plan::{self, Plan};

/// How many uploads are in flight at once.
pub const UPLOADS_IN_FLIGHT: usize = 16;

/// The S3 and Step Functions clients of one backfill bucket.
#[derive(Debug, Clone)]
pub struct Backfill {
    s3: aws_sdk_s3::Client,
    sfn: aws_sdk_sfn::Client,
    bucket: String,
}

/// Where a backfill execution stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Progress {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`.
    pub status: String,
    /// The Map run's items (shards) by state, once the run exists.
    pub items: Option<Items>,
    /// The execution's error and cause, when it failed.
    pub error: Option<String>,
}

/// A Map run's item counts (`DescribeMapRun`'s `itemCounts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Items {
    /// Items in the run.
    pub total: i64,
    /// Finished successfully.
    pub succeeded: i64,
    /// Failed, timed out or aborted.
    pub failed: i64,
    /// Running now.
    pub running: i64,
}

impl Progress {
    /// Whether the execution has ended, one way or another.
    pub fn ended(&self) -> bool {
        self.status != ExecutionStatus::Running.as_str()
    }
}

impl Backfill {
    /// Clients for `bucket`. With an endpoint override (`AWS_ENDPOINT_URL*`, an emulator), S3 is
    /// addressed path-style: an emulator on 127.0.0.1 has no per-bucket host names.
    pub fn new(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let mut s3 = aws_sdk_s3::config::Builder::from(sdk);
        if sdk.endpoint_url().is_some() {
            s3 = s3.force_path_style(true);
        }
        Backfill {
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            sfn: aws_sdk_sfn::Client::new(sdk),
            bucket: bucket.into(),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Puts one object.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), Error> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| Error::call(format!("PutObject s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    /// Puts objects, [`UPLOADS_IN_FLIGHT`] at a time (one shard's batches). Stops at the first
    /// that fails.
    pub async fn put_all(&self, objects: crate::Objects) -> Result<(), Error> {
        let mut puts = futures::stream::iter(
            objects
                .into_iter()
                .map(|(key, body)| async move { self.put(&key, body).await }),
        )
        .buffer_unordered(UPLOADS_IN_FLIGHT);
        while let Some(put) = puts.next().await {
            put?;
        }
        Ok(())
    }

    /// An object's bytes, `None` when there is no such key.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let got = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let out = match got {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => {
                return Err(Error::call(
                    format!("GetObject s3://{}/{key}", self.bucket),
                    e,
                ));
            }
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| Error::call(format!("reading s3://{}/{key}", self.bucket), e))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    /// Starts the backfill state machine on `input`; answers the execution's ARN.
    pub async fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &Value,
    ) -> Result<String, Error> {
        let out = self
            .sfn
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| Error::call(format!("StartExecution on {state_machine_arn}"), e))?;
        Ok(out.execution_arn)
    }

    /// The execution's status and its Map run's item counts.
    pub async fn progress(&self, execution_arn: &str) -> Result<Progress, Error> {
        let exec = self
            .sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| Error::call(format!("DescribeExecution {execution_arn}"), e))?;
        let error = match (exec.error(), exec.cause()) {
            (None, None) => None,
            (e, c) => Some(format!("{}: {}", e.unwrap_or(""), c.unwrap_or(""))),
        };
        let runs = self
            .sfn
            .list_map_runs()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| Error::call(format!("ListMapRuns {execution_arn}"), e))?;
        let items = match runs.map_runs().first() {
            None => None,
            Some(run) => {
                let arn = run.map_run_arn();
                let described = self
                    .sfn
                    .describe_map_run()
                    .map_run_arn(arn)
                    .send()
                    .await
                    .map_err(|e| Error::call(format!("DescribeMapRun {arn}"), e))?;
                described.item_counts().map(|c| Items {
                    total: c.total(),
                    succeeded: c.succeeded(),
                    failed: c.failed() + c.timed_out() + c.aborted(),
                    running: c.running(),
                })
            }
        };
        Ok(Progress {
            status: exec.status.as_str().to_owned(),
            items,
            error,
        })
    }

    /// Puts the plan's manifest; answers its key (`<prefix>/manifests/<plan id>.json`).
    pub async fn put_manifest(&self, planned: &Plan, prefix: &str) -> Result<String, Error> {
        let key = format!("{prefix}/manifests/{}.json", plan::plan_id(planned));
        let body = serde_json::to_vec(&planned.manifest).map_err(|source| Error::Json {
            what: format!("manifest {key}"),
            source,
        })?;
        self.put(&key, body).await?;
        Ok(key)
    }

    /// Starts a run of the manifest: execution `backfill-<plan id>-<received ms>`, whose shards
    /// write their reports under `<prefix>/results/<plan id>-<received ms>`.
    pub async fn start_run(
        &self,
        state_machine_arn: &str,
        planned: &Plan,
        manifest: &str,
        prefix: &str,
        received_at: DateTime<Utc>,
    ) -> Result<Started, Error> {
        let run_id = format!(
            "{}-{}",
            plan::plan_id(planned),
            received_at.timestamp_millis()
        );
        let results = format!("{prefix}/results/{run_id}");
        let input = serde_json::json!({ "manifest": manifest, "results": results });
        let execution_arn = self
            .start(state_machine_arn, &format!("backfill-{run_id}"), &input)
            .await?;
        Ok(Started {
            execution_arn,
            results,
        })
    }

    /// Reads every shard's reports and checks them against the plan: each shard's reports are
    /// its batches, all of them, in the planned order, and every planned event is counted once.
    pub async fn reconcile(&self, planned: &Plan, results: &str) -> Result<Reconciled, Error> {
        let mut out = Reconciled::default();
        for shard in &planned.manifest {
            let key = format!("{results}/shard-{}.json", shard.shard);
            let Some(bytes) = self.get(&key).await? else {
                out.shards_missing.push(shard.shard);
                continue;
            };
            let reports: Vec<BatchReport> =
                serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                    what: format!("s3://{}/{key}, a shard's reports", self.bucket),
                    source,
                })?;
            let ids = reports.iter().map(|r| r.batch_id.as_str());
            let planned_ids = shard.batches.iter().map(|b| plan::batch_id_of_key(&b.key));
            if !ids.eq(planned_ids) {
                out.shards_missing.push(shard.shard);
            }
            for r in &reports {
                out.totals.merge(&r.counts);
            }
            out.batches_reported += reports.len();
        }
        out.reconciled = out.shards_missing.is_empty()
            && out.totals.input == planned.events
            && out.totals.accounted() == out.totals.input;
        Ok(out)
    }
}

/// A started run.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// The backfill execution.
    pub execution_arn: String,
    /// Where its shards write their reports.
    pub results: String,
}

/// One batch's line in a shard's reports object (what the definition's WriteTotals writes).
#[derive(Debug, Deserialize)]
struct BatchReport {
    batch_id: String,
    counts: Counts,
}

/// What the shards' reports came to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciled {
    /// Batches whose report was read back.
    pub batches_reported: usize,
    /// The outcomes of every reported event.
    pub totals: Counts,
    /// Shards without reports for all their batches, in order (their child failed or never
    /// ran): redrive the execution.
    pub shards_missing: Vec<u32>,
    /// Every planned event is accounted for exactly once.
    pub reconciled: bool,
}
