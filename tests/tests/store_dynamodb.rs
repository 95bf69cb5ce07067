//! The store suite on the DynamoDB store, against a local DynamoDB-API server.
//!
//! `scripts/moto start` runs one on 127.0.0.1 and prints the `AWS_ENDPOINT_URL` and dummy
//! credentials to export; without `AWS_ENDPOINT_URL` every test here says it is skipped and
//! passes. Each test creates its own tables under a unique prefix and deletes them at the end.
//!
//! Besides the shared contract cases: anomaly listings agree with the SQLite store's, and
//! throttling injected at the HTTP level is absorbed by the SDK's retry configuration (or,
//! past the last attempt, reported as `Pipeline.Retryable.StoreThrottled`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Duration, TimeZone, Utc};
use pipeline_aws::aws_sdk_dynamodb::Client;
use pipeline_aws::aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use pipeline_aws::aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use pipeline_aws::aws_sdk_dynamodb::error::BoxError;
use pipeline_aws::{DynamoStore, Tables};
use pipeline_core::detect::EntityState;
use pipeline_core::persist::Status;
use pipeline_core::store::EntityStore;
use pipeline_core::store::EventStore;
use pipeline_core::store::Inspect;
use pipeline_core::store::{EntityCommit, EntityWrite, EventWrite, WriteCondition, WriteResult};
use pipeline_sqlite::SqliteStore;
use pipeline_tests::fixtures::{now, payments, raw_batch};
use pipeline_tests::store_suite;
use serde_json::{Value, json};

/// Whether a local DynamoDB endpoint is configured; says why not when it is not. With
/// `PIPELINE_REQUIRE_AWS` set (as `scripts/test` sets it) a missing endpoint fails the test
/// instead of skipping it.
fn emulator() -> bool {
    let skip = |why: String| {
        if std::env::var_os("PIPELINE_REQUIRE_AWS").is_some_and(|v| !v.is_empty() && v != "0") {
            panic!("PIPELINE_REQUIRE_AWS is set but {why}");
        }
        println!("skipped: {why}");
        false
    };
    let config = pipeline_handlers::Config::from_env().unwrap();
    let Some(url) = config.endpoint_override.as_deref() else {
        return skip("AWS_ENDPOINT_URL not set (run via scripts/test)".into());
    };
    // These tests create and delete tables: never against anything but a local server.
    if config.loopback_endpoint().is_none() {
        return skip(format!(
            "AWS_ENDPOINT_URL={url} is not a loopback address (start a server with scripts/moto)"
        ));
    }
    true
}

/// A unique table prefix for one store of one test.
fn prefix(test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "t{nanos}-{}-{}",
        N.fetch_add(1, Ordering::SeqCst),
        test.replace('_', "-")
    )
}

/// Fresh tables; dropping the guard deletes them.
struct Fresh {
    client: Client,
    tables: Tables,
}

impl Fresh {
    async fn delete(self) {
        for t in [
            &self.tables.events,
            &self.tables.entities,
            &self.tables.quarantine,
        ] {
            let _ = self.client.delete_table().table_name(t).send().await;
        }
    }
}

async fn fresh_store_with(test: &str, client: Client) -> (DynamoStore, Fresh) {
    let tables = Tables::with_prefix(&prefix(test));
    let store = DynamoStore::with_client(client.clone(), tables.clone());
    store.create_tables().await.expect("create tables");
    (store, Fresh { client, tables })
}

async fn fresh_store(test: &str) -> (DynamoStore, Fresh) {
    let sdk = pipeline_aws::sdk_config().await;
    let client = Client::from_conf(pipeline_aws::dynamodb_config(&sdk).build());
    fresh_store_with(test, client).await
}

/// Runs a one-store contract case on fresh tables named after `test`, deleted afterwards
/// (nothing when no emulator is configured).
async fn on_fresh_tables<F, Fut>(test: &str, case: F)
where
    F: FnOnce(DynamoStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if !emulator() {
        return;
    }
    let (store, t) = fresh_store(test).await;
    case(store).await;
    t.delete().await;
}

#[tokio::test]
async fn upsert_outcomes() {
    on_fresh_tables("upsert", store_suite::upsert_outcomes).await;
}

#[tokio::test]
async fn redelivery_is_exactly_once() {
    if !emulator() {
        return;
    }
    for seed in [1, 2, 3] {
        let (clean, a) = fresh_store("redeliver-clean").await;
        let (redelivered, b) = fresh_store("redeliver").await;
        store_suite::redelivery_is_exactly_once(clean, redelivered, seed).await;
        a.delete().await;
        b.delete().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing() {
    on_fresh_tables("concurrent", store_suite::concurrent_writers_lose_nothing).await;
}

#[tokio::test]
async fn entity_commits_are_independent() {
    on_fresh_tables("independent", store_suite::entity_commits_are_independent).await;
}

#[tokio::test]
async fn exactly_once_without_a_bound() {
    on_fresh_tables("unbounded", store_suite::exactly_once_without_a_bound).await;
}

#[tokio::test]
async fn throttled_batches_lose_nothing() {
    if !emulator() {
        return;
    }
    let (clean, a) = fresh_store("throttled-clean").await;
    let (flaky, b) = fresh_store("throttled").await;
    store_suite::throttled_batches_lose_nothing(clean, flaky).await;
    a.delete().await;
    b.delete().await;
}

#[tokio::test]
async fn quarantine_is_stored_and_counts_reconcile() {
    on_fresh_tables(
        "quarantine",
        store_suite::quarantine_is_stored_and_counts_reconcile,
    )
    .await;
}

#[tokio::test]
async fn quarantine_entries_are_listed_and_replaced() {
    on_fresh_tables(
        "quarantine-replace",
        store_suite::quarantine_entries_are_listed_and_replaced,
    )
    .await;
}

/// The quarantine table's TTL attribute (`expires_at`, a number of epoch seconds) is on every
/// item, so DynamoDB deletes entries after the retention.
#[tokio::test]
async fn quarantine_items_carry_the_ttl_attribute() {
    if !emulator() {
        return;
    }
    let (store, t) = fresh_store("quarantine-ttl").await;
    let p = store_suite::pipeline(store);
    let mut events = payments(2, 1, 5);
    events.push(serde_json::json!({"event_id": "bad ttl", "value": "x"}));
    store_suite::run_retrying(&p, &raw_batch("ttl1", events)).await;
    let items = t
        .client
        .scan()
        .table_name(&t.tables.quarantine)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1);
    let expires: i64 = items[0]["expires_at"].as_n().unwrap().parse().unwrap();
    let expected = (now() + chrono::Duration::days(30)).timestamp();
    assert_eq!(expires, expected);
    t.delete().await;
}

#[tokio::test]
async fn quarantine_is_found_by_event_id() {
    on_fresh_tables(
        "quarantine-by-id",
        store_suite::quarantine_is_found_by_event_id,
    )
    .await;
}

/// Bursts of declined payments (anomalies by failure velocity), several at the same instant,
/// so listings have anomalies, ties on the index's sort key, and several entities.
fn anomalous_events() -> Vec<Value> {
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).single().unwrap();
    let mut out = payments(30, 3, 9);
    for entity in ["acct-burst-a", "acct-burst-b"] {
        for i in 0..14 {
            out.push(json!({
                "event_id": format!("{entity}-{i:02}"),
                "event_type": "payment.authorized",
                "source": "psp-test",
                "entity_id": entity,
                // Pairs of events share a timestamp.
                "occurred_at": (start + Duration::seconds(i / 2 * 5)).to_rfc3339(),
                "value": 10.0,
                "currency": "EUR",
                "attributes": {"status": "declined", "country": "DE", "merchant": "m-1"}
            }));
        }
    }
    out
}

#[tokio::test]
async fn anomaly_listings_match_the_sqlite_store() {
    if !emulator() {
        return;
    }
    let (store, t) = fresh_store("anomalies").await;
    // One alert per anomalous event (no incidents), so that the listings have many anomalies
    // and ties on the index's sort key.
    let mut config = pipeline_handlers::Config::defaults().unwrap();
    config.detect.incident_quiet = chrono::Duration::zero();
    let dynamo = pipeline_handlers::Pipeline::new(config.clone(), store).unwrap();
    let sqlite =
        pipeline_handlers::Pipeline::new(config, SqliteStore::in_memory().unwrap()).unwrap();
    let batch = raw_batch("a1", anomalous_events());
    let r = store_suite::run_retrying(&dynamo, &batch).await;
    store_suite::run_retrying(&sqlite, &batch).await;
    assert!(
        r.counts.anomalies >= 10,
        "the fixture must produce anomalies: {:?}",
        r.counts
    );

    let ids = |v: Vec<pipeline_core::store::EventRecord>| {
        v.into_iter().map(|r| r.event_id).collect::<Vec<_>>()
    };
    for limit in [0, 1, 3, 4, 7, 100] {
        for entity in [
            None,
            Some("acct-burst-a"),
            Some("acct-burst-b"),
            Some("acct-0"),
            Some("nobody"),
        ] {
            let d = ids(dynamo
                .store()
                .list_anomalies(entity, limit)
                .await
                .unwrap()
                .records);
            let s = ids(sqlite
                .store()
                .list_anomalies(entity, limit)
                .await
                .unwrap()
                .records);
            assert_eq!(d, s, "list_anomalies({entity:?}, {limit})");
        }
    }
    // The index is sparse: it holds the anomalies and nothing else.
    let all = dynamo
        .store()
        .list_anomalies(None, 1000)
        .await
        .unwrap()
        .records;
    assert_eq!(all.len(), r.counts.anomalies);
    assert!(all.iter().all(|r| r.detection.is_anomaly));
    t.delete().await;
}

#[tokio::test]
async fn metrics_count_writes_and_capacity() {
    if !emulator() {
        return;
    }
    let (store, t) = fresh_store("metrics").await;
    let p = store_suite::pipeline(store);
    let r = store_suite::run_retrying(&p, &raw_batch("m1", payments(20, 2, 4))).await;
    assert_eq!(r.counts.persisted, 20);
    let m = p.store().metrics();
    // One transaction per entity (two entities in one batch), carrying its state and its
    // records, each item at the transactional price of twice a put's units.
    assert_eq!(m.events.requests, 20);
    assert_eq!(m.entities.requests, 2);
    assert_eq!(m.write_requests, 2);
    assert!(m.estimated_write_capacity_units >= 44, "{m:?}");
    // Detect reads the entities; persist reads the records and the entities (at once).
    // Enrich reads nothing: a fourth read here is a round trip back on the critical path.
    assert_eq!(m.read_requests, 3, "{m:?}");
    t.delete().await;
}

/// Injects DynamoDB throttling errors at the HTTP level, where the SDK's retry classifier and
/// backoff see them exactly as they would see DynamoDB's. Clones share their counters: the
/// client gets one, the test keeps one to arm it.
///
/// - [`InjectThrottles::throttle`]: the next requests never reach the table (each is turned
///   into a harmless `DescribeLimits` before it is sent) and their responses become
///   `ProvisionedThroughputExceededException`: a real throttle, nothing applied.
/// - [`InjectThrottles::lose_responses`]: the next requests are applied, then their responses
///   become throttles: a write that landed although its caller saw it fail.
/// - [`InjectThrottles::answer_with`]: the next responses are replaced by these 200 bodies
///   (a `BatchGetItem` that leaves keys unprocessed).
///
/// Arm it only while the store sends one request at a time: the interceptor pairs a rewritten
/// request with the next response it sees.
#[derive(Debug, Clone, Default)]
struct InjectThrottles {
    before_send: Arc<AtomicUsize>,
    after_apply: Arc<AtomicUsize>,
    neutered: Arc<AtomicUsize>,
    injected: Arc<AtomicUsize>,
    canned: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

impl InjectThrottles {
    fn throttle(&self, n: usize) {
        self.before_send.store(n, Ordering::SeqCst);
    }
    fn lose_responses(&self, n: usize) {
        self.after_apply.store(n, Ordering::SeqCst);
    }
    fn answer_with(&self, bodies: Vec<String>) {
        *self.canned.lock().unwrap() = bodies.into();
    }
    fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }
}

impl Intercept for InjectThrottles {
    fn name(&self) -> &'static str {
        "InjectThrottles"
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if take(&self.before_send) {
            let req = ctx.request_mut();
            req.headers_mut()
                .insert("x-amz-target", "DynamoDB_20120810.DescribeLimits");
            req.headers_mut().insert("content-length", "2");
            *req.body_mut() = "{}".into();
            self.neutered.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(body) = self.canned.lock().unwrap().pop_front() {
            let resp = ctx.response_mut();
            *resp.status_mut() = 200u16.try_into()?;
            resp.headers_mut().remove("x-amz-crc32");
            resp.headers_mut().remove("content-length");
            *resp.body_mut() = body.into();
            return Ok(());
        }
        if take(&self.neutered) || take(&self.after_apply) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            let resp = ctx.response_mut();
            *resp.status_mut() = 400u16.try_into()?;
            resp.headers_mut().remove("x-amz-crc32");
            resp.headers_mut().remove("content-length");
            resp.headers_mut()
                .insert("x-amzn-errortype", "ProvisionedThroughputExceededException");
            *resp.body_mut() = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected by the test"}"#.into();
        }
        Ok(())
    }
}

/// A store whose client carries a throttle injector.
async fn throttled_store(test: &str) -> (DynamoStore, Fresh, InjectThrottles) {
    let sdk = pipeline_aws::sdk_config().await;
    let inject = InjectThrottles::default();
    let conf = pipeline_aws::dynamodb_config(&sdk)
        .interceptor(inject.clone())
        .build();
    let (store, t) = fresh_store_with(test, Client::from_conf(conf)).await;
    (store, t, inject)
}

#[tokio::test]
async fn sdk_retries_absorb_throttling() {
    if !emulator() {
        return;
    }
    let (store, t, inject) = throttled_store("sdk-throttle").await;
    let p = store_suite::pipeline(store);
    // Fewer consecutive throttles than the SDK has attempts (they all land on the batch's
    // first request, a read): the first try of the batch succeeds.
    inject.throttle(5);
    let batch = raw_batch("s1", payments(30, 2, 8));
    let r = p
        .run_batch(batch, now())
        .await
        .expect("the SDK's retries absorb the throttles");
    assert_eq!(inject.injected(), 5);
    assert!(r.outcomes.iter().all(|o| o.status == Status::Persisted));
    assert_eq!(p.store().dump().await.unwrap().events.len(), 30);

    // A request throttled on every attempt: a retryable StoreThrottled after MAX_ATTEMPTS.
    inject.throttle(1000);
    let before = inject.injected();
    let state = EntityState {
        version: 1,
        ..EntityState::new("e-throttled")
    };
    let err = p
        .store()
        .commit_entity(&EntityCommit {
            state: state.clone(),
            inserts: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.error_type(),
        "Pipeline.Retryable.StoreThrottled",
        "{err}"
    );
    assert_eq!(
        inject.injected() - before,
        pipeline_aws::MAX_ATTEMPTS as usize
    );
    // Nothing was applied: the same write succeeds once the throttling stops.
    inject.throttle(0);
    assert_eq!(
        p.store()
            .commit_entity(&EntityCommit {
                state: state.clone(),
                inserts: Vec::new()
            })
            .await
            .unwrap(),
        EntityWrite::Written
    );
    t.delete().await;
}

#[tokio::test]
async fn a_retried_write_that_had_landed_counts_as_written() {
    if !emulator() {
        return;
    }
    let (store, t, inject) = throttled_store("lost-response").await;
    let p = store_suite::pipeline(store);
    let batch = raw_batch("l1", payments(2, 1, 12));
    let scored = p.detect(p.enrich(p.validate(batch))).await.unwrap();
    let report =
        pipeline_core::persist::persist(p.store(), scored.clone(), &p.config().persist, now())
            .await
            .unwrap();
    let mut records: Vec<_> = p.store().dump().await.unwrap().events;

    // Each write lands, its response is lost, the SDK retries it, and the retry fails its own
    // condition: the store must still say Written, not report a conflict with itself.
    let mut rec = records.remove(0);
    rec.event_id = "evt-lost-response".into();
    inject.lose_responses(1);
    let w = EventWrite {
        record: rec.clone(),
        condition: WriteCondition::Absent,
    };
    assert_eq!(
        p.store().write_events(vec![w]).await.unwrap(),
        vec![WriteResult::Written]
    );
    assert_eq!(inject.injected(), 1);

    let mut state = p
        .store()
        .get_entities(&["acct-0".into()])
        .await
        .unwrap()
        .remove("acct-0")
        .unwrap();
    state.version += 1;
    inject.lose_responses(1);
    assert_eq!(
        p.store()
            .commit_entity(&EntityCommit {
                state: state.clone(),
                inserts: Vec::new()
            })
            .await
            .unwrap(),
        EntityWrite::Written
    );
    assert_eq!(inject.injected(), 2);

    // A genuine conflict is still one.
    let w = EventWrite {
        record: rec,
        condition: WriteCondition::Absent,
    };
    assert!(matches!(
        p.store().write_events(vec![w]).await.unwrap()[..],
        [WriteResult::ConditionFailed { current: Some(_) }]
    ));
    assert_eq!(
        p.store()
            .commit_entity(&EntityCommit {
                state: state.clone(),
                inserts: Vec::new()
            })
            .await
            .unwrap(),
        EntityWrite::Conflict
    );
    assert_eq!(report.counts.persisted, 2);
    t.delete().await;
}

/// A `BatchGetItem` response of the entities `table` that read the version-1 states of
/// `read` and left `ids` unprocessed.
fn unprocessed(table: &str, read: &[&str], ids: &[&str]) -> String {
    let items: Vec<Value> = read
        .iter()
        .map(|id| {
            let state = EntityState {
                version: 1,
                ..EntityState::new(id)
            };
            json!({"entity_id": {"S": id}, "version": {"N": "1"},
                   "state": {"S": serde_json::to_string(&state).unwrap()}})
        })
        .collect();
    let keys: Vec<Value> = ids
        .iter()
        .map(|id| json!({"entity_id": {"S": id}}))
        .collect();
    json!({"Responses": {table: items}, "UnprocessedKeys": {table: {"Keys": keys, "ConsistentRead": true}}})
        .to_string()
}

#[tokio::test]
async fn batch_reads_retry_unprocessed_keys() {
    if !emulator() {
        return;
    }
    let (store, t, inject) = throttled_store("unprocessed").await;
    let ids: Vec<String> = ["u-a", "u-b", "u-c"].map(String::from).to_vec();
    for id in &ids {
        let state = EntityState {
            version: 1,
            ..EntityState::new(id)
        };
        assert_eq!(
            store
                .commit_entity(&EntityCommit {
                    state: state.clone(),
                    inserts: Vec::new()
                })
                .await
                .unwrap(),
            EntityWrite::Written
        );
    }
    let table = store.tables().entities.clone();

    // Everything unprocessed, then one key: the store asks again until all are read.
    inject.answer_with(vec![
        unprocessed(&table, &[], &["u-a", "u-b", "u-c"]),
        unprocessed(&table, &["u-a", "u-c"], &["u-b"]),
    ]);
    let before = store.metrics().read_requests;
    let got = store.get_entities(&ids).await.unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(store.metrics().read_requests - before, 3);

    // Keys that stay unprocessed through every attempt: a retryable StoreThrottled.
    inject.answer_with(vec![unprocessed(&table, &[], &["u-a"]); 20]);
    let err = store.get_entities(&ids).await.unwrap_err();
    assert_eq!(
        err.error_type(),
        "Pipeline.Retryable.StoreThrottled",
        "{err}"
    );
    inject.answer_with(Vec::new());
    t.delete().await;
}

#[tokio::test]
async fn oversized_events_are_quarantined_within_item_limits() {
    on_fresh_tables(
        "oversized",
        store_suite::oversized_events_are_quarantined_within_item_limits,
    )
    .await;
}

/// The IAM actions recorded from the requests of one or more clients (see [`SharedActions`]).
#[derive(Debug, Default)]
struct Actions(std::sync::Mutex<std::collections::BTreeSet<String>>);

/// What `deploy/permissions.json` allows a function, less what `recorded` needs.
fn not_allowed(
    allowed: &Value,
    function: &str,
    recorded: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    recorded
        .iter()
        .filter(|a| allowed["principals"][function].get(a.as_str()).is_none())
        .map(|a| format!("{function}: {a}"))
        .collect()
}

/// Every AWS action the detect and persist functions' code calls, recorded from their
/// requests while they run the sample stream on DynamoDB and EventBridge (new records,
/// redeliveries, a correction, anomalies announced, a failed batch quarantined), is one the
/// allow-list grants that function — which scripts/iam_check.py in turn holds equal to what the
/// template grants. Ingest's Step Functions calls cannot run here (the emulator has no
/// StartSyncExecution) and are listed there from `crates/aws/src/sfn.rs`. Validate and enrich
/// take no client at all (their stage types hold no store), so they cannot call one.
#[tokio::test]
async fn every_action_the_functions_call_is_granted() {
    if !emulator() {
        return;
    }
    let (store, fresh) = fresh_store("permissions").await;
    drop(store);
    let sdk = pipeline_aws::sdk_config().await;
    let recorded = |actions: &Arc<Actions>| -> DynamoStore {
        let client = Client::from_conf(
            pipeline_aws::dynamodb_config(&sdk)
                .interceptor(SharedActions(Arc::clone(actions)))
                .build(),
        );
        DynamoStore::with_client(client, fresh.tables.clone())
    };
    let (detect_calls, persist_calls) =
        (Arc::new(Actions::default()), Arc::new(Actions::default()));
    let bus = format!("{}-anomalies", prefix("permissions"));
    let events = pipeline_aws::aws_sdk_eventbridge::Client::new(&sdk);
    events.create_event_bus().name(&bus).send().await.unwrap();
    let events_recorded = pipeline_aws::aws_sdk_eventbridge::Client::from_conf(
        pipeline_aws::aws_sdk_eventbridge::config::Builder::from(&sdk)
            .interceptor(SharedActions(Arc::clone(&persist_calls)))
            .build(),
    );
    let config = pipeline_handlers::Config::defaults().unwrap();
    let validate = pipeline_handlers::Validate::new(&config).unwrap();
    let enrich = pipeline_handlers::Enrich::new(&config);
    let detect = pipeline_handlers::Detect::new(&config, recorded(&detect_calls));
    let persist = pipeline_handlers::Persist::new(&config, recorded(&persist_calls))
        .with_announcer(Arc::new(pipeline_aws::EventBridgeAnnouncer::with_client(
            events_recorded,
            bus.clone(),
        )));

    let text = std::fs::read_to_string(
        pipeline_tests::fixtures::events_dir().join("streams/transactions.jsonl"),
    )
    .unwrap();
    let lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let items = pipeline_ingest::decode_lines("transactions.jsonl", lines);
    let batches = pipeline_ingest::split(items, now(), pipeline_ingest::SplitLimits::default());
    let mut anomalies = 0;
    // The whole stream, then its first two batches again: redeliveries.
    for batch in batches.iter().chain(batches.iter().take(2)) {
        {
            let valid = validate.validate(batch.clone());
            let enriched = enrich.enrich(valid);
            let scored = detect.detect(enriched).await.unwrap();
            anomalies += scored
                .events
                .iter()
                .filter(|e| e.detection.is_anomaly)
                .count();
            persist.persist(scored, now()).await.unwrap();
        }
    }
    assert!(
        anomalies > 0,
        "the sample's first batches hold anomalies to announce"
    );
    let failed: pipeline_core::persist::FailedBatch = serde_json::from_value(json!({
        "batch_id": "b-failed", "received_at": now(), "input_count": 1,
        "events": [{"payload": {"event_id": "f-1"}}], "quarantine": [],
        "error": {"Error": "Pipeline.Fatal.BadBatch", "Cause": "planted"},
        "failed_stage": "enrich"
    }))
    .unwrap();
    persist.quarantine_failed(failed, now()).await.unwrap();

    let allowed: Value = serde_json::from_str(
        &std::fs::read_to_string(
            pipeline_tests::fixtures::repo_root().join("deploy/permissions.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let calls = |a: &Arc<Actions>| a.0.lock().unwrap().clone();
    let (d, p) = (calls(&detect_calls), calls(&persist_calls));
    assert!(
        p.contains("dynamodb:PutItem") && p.contains("events:PutEvents"),
        "{p:?}"
    );
    let mut missing = not_allowed(&allowed, "DetectFunction", &d);
    missing.extend(not_allowed(&allowed, "PersistFunction", &p));
    assert_eq!(missing, Vec::<String>::new());

    // Planted: an allow-list that lost persist's PutItem is caught.
    let mut planted = allowed.clone();
    planted["principals"]["PersistFunction"]
        .as_object_mut()
        .unwrap()
        .remove("dynamodb:PutItem");
    assert_eq!(
        not_allowed(&planted, "PersistFunction", &p),
        ["PersistFunction: dynamodb:PutItem"]
    );
    fresh.delete().await;
}

/// Ingest's calls cannot be recorded on the emulator (no `StartSyncExecution`): the Step
/// Functions operations its sink's code calls, read off `crates/aws/src/sfn.rs`, are each
/// granted to the ingest function.
#[test]
fn every_step_functions_call_of_ingest_is_granted() {
    let root = pipeline_tests::fixtures::repo_root();
    let code = std::fs::read_to_string(root.join("crates/aws/src/sfn.rs")).unwrap();
    let allowed: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/permissions.json")).unwrap(),
    )
    .unwrap();
    let called: std::collections::BTreeSet<String> = code
        .split('.')
        .filter_map(|piece| {
            piece
                .strip_suffix("()")
                .or_else(|| piece.split("()").next())
        })
        .filter(|op| {
            [
                "start_execution",
                "start_sync_execution",
                "describe_execution",
                "stop_execution",
                "get_execution_history",
            ]
            .contains(op)
        })
        .map(|op| {
            let camel: String = op
                .split('_')
                .map(|w| format!("{}{}", w[..1].to_uppercase(), &w[1..]))
                .collect();
            format!("states:{camel}")
        })
        .collect();
    assert_eq!(called.len(), 3, "{called:?}");
    assert_eq!(
        not_allowed(&allowed, "IngestFunction", &called),
        Vec::<String>::new()
    );
    let mut planted = allowed.clone();
    planted["principals"]["IngestFunction"]
        .as_object_mut()
        .unwrap()
        .remove("states:DescribeExecution");
    assert_eq!(
        not_allowed(&planted, "IngestFunction", &called),
        ["IngestFunction: states:DescribeExecution"]
    );
}

/// Records into [`Actions`], which several clients (a store's and an announcer's) may share, the
/// IAM actions their requests need: the operation of each request (its `X-Amz-Target`), and for
/// `TransactWriteItems` the action of each item inside it (IAM has no transaction action: it
/// checks `PutItem`, `UpdateItem`, … per item).
#[derive(Debug)]
struct SharedActions(Arc<Actions>);

impl Intercept for SharedActions {
    fn name(&self) -> &'static str {
        "Actions"
    }

    fn read_before_transmit(
        &self,
        ctx: &pipeline_aws::aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = ctx.request();
        let Some(target) = req.headers().get("x-amz-target") else {
            return Ok(());
        };
        let (service, op) = target.split_once('.').unwrap_or(("", target));
        let prefix = if service.starts_with("DynamoDB") {
            "dynamodb"
        } else {
            "events"
        };
        let mut actions = self.0.0.lock().unwrap();
        if op == "TransactWriteItems" {
            let body: Value = serde_json::from_slice(req.body().bytes().unwrap_or_default())?;
            for item in body["TransactItems"].as_array().into_iter().flatten() {
                for kind in item.as_object().into_iter().flat_map(|o| o.keys()) {
                    let action = if kind == "ConditionCheck" {
                        "ConditionCheckItem".to_owned()
                    } else {
                        format!("{kind}Item")
                    };
                    actions.insert(format!("dynamodb:{action}"));
                }
            }
        } else {
            actions.insert(format!("{prefix}:{op}"));
        }
        Ok(())
    }
}
