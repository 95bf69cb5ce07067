//! [`DynamoStore`]: the production [`Store`](pipeline_core::store::Store), on three DynamoDB tables.
//!
//! The store only reads and writes conditionally; every decision (what to insert, replace or
//! skip, how to fold events into entity state) is made in [`pipeline_core::persist`], so it
//! behaves like the SQLite store, which the shared store suite (`tests/src/store_suite.rs`) checks.
//!
//! - Reads by key are `BatchGetItem`s of at most 100 keys, strongly consistent, with the
//!   unprocessed keys read again after a jittered exponential pause (bounded).
//! - Each record write is one conditional `PutItem` (`attribute_not_exists(event_id)` or
//!   `version = :v`) asking for the old item on failure
//!   (`ReturnValuesOnConditionCheckFailure: ALL_OLD`), so a lost race costs no second read.
//!   Writes run concurrently, at most [`WRITE_CONCURRENCY`] at a time; writes of the same
//!   `event_id` run one after the other in input order, as the SQLite store runs them.
//! - New events are committed with the entity state that counts them in one
//!   `TransactWriteItems` (state: `attribute_not_exists(entity_id)` or `version = :prev`;
//!   records: `attribute_not_exists(event_id)`), at most 99 records and ~3 MB per transaction.
//!   A cancelled transaction is a conflict (read again) unless a reason says throttling.
//! - Record and state items carry a token of the write that stored them, so a write whose
//!   first attempt landed but whose response was lost is reported `Written` when the SDK's
//!   retry of it fails its condition, not as a conflict with itself (see `item::write_token`).
//! - Throttling and transient failures are retried by the SDK (see [`crate::dynamodb_config`]);
//!   what still fails becomes a retryable core error, and the batch is retried whole.
//!
//! Unlike SQLite's, a `write_events` call is not one transaction: a failure part way leaves
//! some records written. That is safe because it only carries replacements (corrections),
//! which touch no entity state, and every write is conditional: the retried batch finds those
//! records and skips them. New events go through `commit_entity`, which is atomic.
//!
//! (About 570 lines: one `Store` implementation, whose batching, pagination and conditional
//! writes mirror each other and read best side by side; the item encoding and the errors
//! already live in `item` and `error`.)

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, Put, ReturnConsumedCapacity,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::{StreamExt, TryStreamExt, stream};
use pipeline_core::Error as CoreError;
use pipeline_core::detect::EntityState;
use pipeline_core::store::{
    Batching, CommitLimits, EntityCommit, EntityStore, EntityWrite, EventRecord, EventStore,
    EventWrite, Inspect, Listing, QuarantineRecord, QuarantineStore, StoreDump, WriteCondition,
    WriteResult, readable,
};

use crate::error::Error;
use crate::item::{self, ANOMALY_ENTITY, ANOMALY_INDEX, ENTITY_KEY, EVENT_KEY, Item};
use crate::metrics::{Counters, StoreMetrics, Table};
use crate::tables::{self, Tables};

mod read;

use read::newest_first;

/// Most items one `TransactWriteItems` may carry.
const TRANSACT_MAX_ITEMS: usize = 100;
/// Most keys one `BatchGetItem` may ask for.
const BATCH_GET_MAX: usize = 100;
/// Conditional writes in flight at once per call. 64, so that a batch of 100 events (rarely more
/// than 64 entities) commits in one round of round trips instead of three or four: persist's
/// transaction rounds were the largest share of a record's p99 in the latency model
/// (docs/capacity.md: p99 323 ms with 16, 264 ms with 64).
pub const WRITE_CONCURRENCY: usize = 64;
/// `BatchGetItem` calls in flight at once per read.
const READ_CONCURRENCY: usize = 4;
/// Requests for one chunk of keys before unprocessed keys become an error.
const UNPROCESSED_ATTEMPTS: usize = 8;

/// The pause schedule between `BatchGetItem` calls that left keys unprocessed.
///
/// The SDK's retry strategy only sees failed requests; a `BatchGetItem` that succeeds with
/// `UnprocessedKeys` (partial throttling, or the 16 MB response limit) is a success to it, so
/// the store re-asks for the rest itself. AWS asks for exponential backoff there; `backon`
/// supplies the jittered exponential schedule (25 ms doubling to at most 2 s, plus up to as
/// much again of jitter), the loop stops after [`UNPROCESSED_ATTEMPTS`] requests.
fn unprocessed_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(25))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(UNPROCESSED_ATTEMPTS - 1)
        .with_jitter()
}

/// A [`Store`](pipeline_core::store::Store) on DynamoDB. Cheap to build (no request is made); build it once per process.
#[derive(Debug)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
    counters: Counters,
}

impl DynamoStore {
    /// A store on `tables`, with a client from the shared SDK configuration plus the store's
    /// retry and timeout settings ([`crate::dynamodb_config`]).
    pub fn new(sdk: &aws_config::SdkConfig, tables: Tables) -> Self {
        Self::with_client(
            Client::from_conf(crate::dynamodb_config(sdk).build()),
            tables,
        )
    }

    /// A store using `client` as it is (tests add interceptors to theirs).
    pub fn with_client(client: Client, tables: Tables) -> Self {
        DynamoStore {
            client,
            tables,
            counters: Counters::default(),
        }
    }

    /// The table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Requests and capacity used since the store was built or last reset.
    pub fn metrics(&self) -> StoreMetrics {
        self.counters.snapshot()
    }

    /// Sets the metrics back to zero.
    pub fn reset_metrics(&self) {
        self.counters.reset();
    }

    /// Creates the missing tables (on demand, with the anomaly index) and waits until they are
    /// ACTIVE; existing tables are left alone.
    pub async fn create_tables(&self) -> Result<(), Error> {
        tables::create(&self.client, &self.tables).await
    }

    /// One conditional record write.
    async fn put_event(&self, w: EventWrite) -> Result<WriteResult, Error> {
        let table = self.tables.events.as_str();
        let token = item::write_token();
        let item = item::event_item(&w.record, &token)?;
        let size = item::item_size(&item);
        let req = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let req = match w.condition {
            WriteCondition::Absent => req.condition_expression("attribute_not_exists(event_id)"),
            WriteCondition::VersionIs(v) => req
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
        };
        match req.send().await {
            Ok(out) => {
                let reported = out.consumed_capacity().and_then(|c| c.capacity_units());
                self.counters.written(Table::Events, reported, size);
                Ok(WriteResult::Written)
            }
            Err(e) => {
                let old = match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(c)) => c.item().cloned(),
                    _ => return Err(Error::sdk("PutItem", table, e)),
                };
                self.counters.failed(Table::Events, old.as_ref());
                if old.as_ref().is_some_and(|o| item::written_by(o, &token)) {
                    // An earlier attempt of this very write landed and the SDK retried it.
                    return Ok(WriteResult::Written);
                }
                let current = match old {
                    Some(old) => Some(item::event_of(table, &old)?),
                    // DynamoDB returns no item when none exists; a server that ignores
                    // ReturnValuesOnConditionCheckFailure also returns none, so read to be sure.
                    None => self.get_event(&w.record.event_id).await?,
                };
                Ok(WriteResult::ConditionFailed {
                    current: current.map(Box::new),
                })
            }
        }
    }

    /// One entity commit as one `TransactWriteItems`: the state `Put` (conditional on its
    /// version) and one `Put` per record (conditional on its absence).
    async fn commit_entity_inner(&self, c: &EntityCommit) -> Result<EntityWrite, Error> {
        let entities = self.tables.entities.as_str();
        let events = self.tables.events.as_str();
        // The stored version must be state.version − 1 (absent counts as 0). Version 0 is never
        // a valid write; like the SQLite store, report it as a conflict.
        let Some(prev) = c.state.version.checked_sub(1) else {
            return Ok(EntityWrite::Conflict);
        };
        let token = item::write_token();
        let build = |what: &'static str| move |source| Error::Build { what, source };
        let mut writes = Vec::with_capacity(c.inserts.len() + 1);
        let mut sizes = Vec::with_capacity(c.inserts.len() + 1);

        let state_item = item::entity_item(&c.state, &token)?;
        sizes.push((Table::Entities, item::item_size(&state_item)));
        let put = Put::builder()
            .table_name(entities)
            .set_item(Some(state_item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let put = if prev == 0 {
            put.condition_expression("attribute_not_exists(entity_id)")
        } else {
            put.condition_expression("version = :prev")
                .expression_attribute_values(":prev", AttributeValue::N(prev.to_string()))
        };
        writes.push(
            TransactWriteItem::builder()
                .put(put.build().map_err(build("entity Put"))?)
                .build(),
        );
        for r in &c.inserts {
            let record = item::event_item(r, &token)?;
            sizes.push((Table::Events, item::item_size(&record)));
            let put = Put::builder()
                .table_name(events)
                .set_item(Some(record))
                .condition_expression("attribute_not_exists(event_id)")
                .build()
                .map_err(build("record Put"))?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }

        // The request token makes the SDK's retries of a transaction that landed (response
        // lost) succeed as no-ops instead of failing their own conditions.
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .client_request_token(&token)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match res {
            Ok(out) => {
                let reported: Vec<(Table, f64)> = out
                    .consumed_capacity()
                    .iter()
                    .filter_map(|cc| {
                        let table = match cc.table_name()? {
                            t if t == entities => Table::Entities,
                            t if t == events => Table::Events,
                            _ => return None,
                        };
                        Some((table, cc.capacity_units()?))
                    })
                    .collect();
                self.counters.transaction(&sizes, &reported);
                Ok(EntityWrite::Written)
            }
            Err(e) => {
                let reasons = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(t)) => {
                        t.cancellation_reasons().to_vec()
                    }
                    _ => return Err(Error::sdk("TransactWriteItems", entities, e)),
                };
                self.counters.transaction_cancelled(sizes.len());
                let code = |r: &CancellationReason| r.code().unwrap_or("None").to_owned();
                if reasons.iter().any(|r| {
                    matches!(
                        code(r).as_str(),
                        "ThrottlingError"
                            | "ProvisionedThroughputExceeded"
                            | "RequestLimitExceeded"
                    )
                }) {
                    return Err(Error::Throttled {
                        operation: "TransactWriteItems",
                        table: entities.to_owned(),
                        detail: reasons.iter().map(code).collect::<Vec<_>>().join(", "),
                        source: Box::new(e),
                    });
                }
                // Either a condition failed (the entity moved on, or a record exists), or
                // another transaction held one of the items: both mean "read again".
                // Unless the transaction that moved the entity on was this one: an earlier
                // attempt that landed after the request token expired, or on a server that
                // ignores tokens.
                let state_now = match reasons.first().and_then(|r| r.item()) {
                    Some(old) => Some(old.clone()),
                    None => {
                        self.get_item(entities, ENTITY_KEY, &c.state.entity_id)
                            .await?
                    }
                };
                let ours = state_now.is_some_and(|old| item::written_by(&old, &token));
                Ok(if ours {
                    EntityWrite::Written
                } else {
                    EntityWrite::Conflict
                })
            }
        }
    }

    /// Stores one quarantine record unless one with its id exists (the first one is kept, as
    /// the SQLite store keeps it).
    async fn put_quarantine_one(&self, q: &QuarantineRecord, replace: bool) -> Result<(), Error> {
        let table = self.tables.quarantine.as_str();
        let item = item::quarantine_item(q)?;
        let size = item::item_size(&item);
        let res = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            // First write wins, unless the entry is being updated on purpose (a replay).
            .set_condition_expression(
                (!replace).then(|| "attribute_not_exists(quarantine_id)".to_owned()),
            )
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match res {
            Ok(out) => {
                let reported = out.consumed_capacity().and_then(|c| c.capacity_units());
                self.counters.written(Table::Quarantine, reported, size);
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                self.counters.failed(Table::Quarantine, None);
                Ok(())
            }
            Err(e) => Err(Error::sdk("PutItem", table, e)),
        }
    }
}

#[async_trait]
impl EventStore for DynamoStore {
    async fn get_events(&self, ids: &[String]) -> Result<HashMap<String, EventRecord>, CoreError> {
        let table = self.tables.events.as_str();
        let items = self.batch_get(table, EVENT_KEY, ids).await?;
        let mut out = HashMap::with_capacity(items.len());
        for i in &items {
            let r = item::event_of(table, i)?;
            out.insert(r.event_id.clone(), r);
        }
        Ok(out)
    }
    async fn write_events(&self, writes: Vec<EventWrite>) -> Result<Vec<WriteResult>, CoreError> {
        // Group writes of the same event_id, in input order: groups run concurrently, each
        // group's writes one after the other, so a later write sees the earlier one's effect.
        let mut groups: Vec<Vec<(usize, EventWrite)>> = Vec::new();
        let mut group_of: HashMap<String, usize> = HashMap::new();
        for (i, w) in writes.into_iter().enumerate() {
            let g = *group_of
                .entry(w.record.event_id.clone())
                .or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
            if let Some(group) = groups.get_mut(g) {
                group.push((i, w));
            }
        }
        let runs: Vec<_> = groups
            .into_iter()
            .map(|group| async move {
                let mut out = Vec::with_capacity(group.len());
                for (i, w) in group {
                    out.push((i, self.put_event(w).await?));
                }
                Ok::<_, Error>(out)
            })
            .collect();
        let done: Vec<Vec<(usize, WriteResult)>> = stream::iter(runs)
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect()
            .await?;
        let mut results: Vec<(usize, WriteResult)> = done.into_iter().flatten().collect();
        results.sort_by_key(|(i, _)| *i);
        Ok(results.into_iter().map(|(_, r)| r).collect())
    }
}

#[async_trait]
impl EntityStore for DynamoStore {
    async fn get_entities(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, EntityState>, CoreError> {
        let table = self.tables.entities.as_str();
        let items = self.batch_get(table, ENTITY_KEY, ids).await?;
        let mut out = HashMap::with_capacity(items.len());
        for i in &items {
            let s = item::entity_of(table, i)?;
            out.insert(s.entity_id.clone(), s);
        }
        Ok(out)
    }
    async fn commit_entity(&self, commit: &EntityCommit) -> Result<EntityWrite, CoreError> {
        Ok(self.commit_entity_inner(commit).await?)
    }
    /// The commits are of different entities and touch different items, so they run
    /// concurrently (at most [`WRITE_CONCURRENCY`] at a time): a batch over 44 entities costs
    /// about three transaction round trips of persist's time instead of 44.
    async fn commit_entities(
        &self,
        commits: &[EntityCommit],
    ) -> Result<Vec<EntityWrite>, CoreError> {
        // Collected first: a lazy `map` over `&EntityCommit` inside the stream trips the `Send`
        // check of the boxed future (a higher-ranked lifetime it cannot prove).
        let runs: Vec<_> = commits
            .iter()
            .map(|c| self.commit_entity_inner(c))
            .collect();
        let answers: Vec<EntityWrite> = stream::iter(runs)
            .buffered(WRITE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(answers)
    }
    /// 100 items per transaction, one of them the state; 4 MB per transaction, with room left
    /// for the state item and the attribute overhead on top of the records' JSON.
    fn commit_limits(&self) -> CommitLimits {
        CommitLimits {
            max_records: TRANSACT_MAX_ITEMS - 1,
            max_bytes: 3 * 1024 * 1024,
        }
    }
}

#[async_trait]
impl QuarantineStore for DynamoStore {
    async fn put_quarantine(&self, items: &[QuarantineRecord]) -> Result<(), CoreError> {
        let puts: Vec<_> = items
            .iter()
            .map(|q| self.put_quarantine_one(q, false))
            .collect();
        stream::iter(puts)
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
    async fn replace_quarantine(&self, record: &QuarantineRecord) -> Result<(), CoreError> {
        Ok(self.put_quarantine_one(record, true).await?)
    }
    async fn scan_quarantine_of(&self, event_id: &str) -> Result<Vec<QuarantineRecord>, CoreError> {
        let table = self.tables.quarantine.as_str();
        let records = self
            .scan_all(table, None, Some((EVENT_KEY, event_id)))
            .await?
            .iter()
            .map(|i| item::quarantine_of(table, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(records)
    }
    async fn scan_quarantine(&self) -> Result<Vec<QuarantineRecord>, CoreError> {
        Ok(self
            .scan_decoded(&self.tables.quarantine, item::quarantine_of)
            .await?)
    }
}

// Every write goes through to DynamoDB: nothing to flush or end.
impl Batching for DynamoStore {}

#[async_trait]
impl Inspect for DynamoStore {
    async fn list_anomalies(
        &self,
        entity_id: Option<&str>,
        limit: usize,
    ) -> Result<Listing, CoreError> {
        if limit == 0 {
            return Ok(Listing::default());
        }
        let table = self.tables.events.as_str();
        let items = match entity_id {
            Some(e) => self.query_anomalies(e, limit).await?,
            // Across entities the index has no single order: read it all (it holds anomalies
            // only) and sort here. Fine for inspection; not a hot path.
            None => self.scan_all(table, Some(ANOMALY_INDEX), None).await?,
        };
        let mut unreadable = Vec::new();
        let records = readable(
            table,
            items.iter().map(|i| item::event_of(table, i)),
            &mut unreadable,
        );
        Ok(Listing {
            records: newest_first(records, limit),
            unreadable,
        })
    }
    async fn scan_all(&self) -> Result<StoreDump, CoreError> {
        let t = &self.tables;
        let mut unreadable = Vec::new();
        let events = self
            .scan_readable(&t.events, item::event_of, &mut unreadable)
            .await?;
        let entities = self
            .scan_readable(&t.entities, item::entity_of, &mut unreadable)
            .await?;
        let quarantine = self
            .scan_readable(&t.quarantine, item::quarantine_of, &mut unreadable)
            .await?;
        Ok(StoreDump {
            events,
            entities,
            quarantine,
            unreadable,
        })
    }
}
