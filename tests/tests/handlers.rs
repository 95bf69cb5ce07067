//! Every function's handler on its `events/` samples: good samples pass through, bad samples
//! end as quarantine entries (or, for a document that is not a batch at all, as the fatal
//! `Pipeline.Fatal.BadBatch` error the state machine catches), and nothing is lost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use pipeline_core::batch::{Batch, RawEvent, Stage, ValidEvent};
use pipeline_core::detect::ScoredEvent;
use pipeline_core::enrich::EnrichedEvent;
use pipeline_core::persist::Status;
use pipeline_core::store::Inspect;
use pipeline_handlers::{CollectSink, Config, Handler, Ingest, Pipeline};
use pipeline_sqlite::SqliteStore;
use pipeline_tests::fixtures::events_dir;
use serde_json::Value;

fn sample(path: &str) -> Value {
    let p = events_dir().join(path);
    serde_json::from_str(&fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

fn ev(path: &str) -> LambdaEvent<Value> {
    LambdaEvent::new(sample(path), Context::default())
}

fn pipeline() -> Pipeline<SqliteStore> {
    Pipeline::new(
        Config::defaults().unwrap(),
        SqliteStore::in_memory().unwrap(),
    )
    .unwrap()
}

fn conserved<T>(b: &Batch<T>) {
    assert_eq!(
        b.input_count,
        b.events.len() + b.quarantine.len(),
        "batch {} lost events",
        b.batch_id
    );
}

#[tokio::test]
async fn ingest_msk_good_and_bad() {
    let p = pipeline();
    let sink = CollectSink::default();
    let r = Ingest::new(p.config(), &sink)
        .handle(ev("ingest/msk-good.json"))
        .await
        .unwrap();
    let batches = sink.take();
    assert_eq!(r.batches.len(), 1);
    assert_eq!(batches[0].events.len(), 9);
    assert!(batches[0].quarantine.is_empty());

    Ingest::new(p.config(), &sink)
        .handle(ev("ingest/msk-bad.json"))
        .await
        .unwrap();
    let b = &sink.take()[0];
    conserved(b);
    assert_eq!(b.input_count, 5);
    let codes: Vec<&str> = b
        .quarantine
        .iter()
        .map(|q| q.reasons[0].code.as_str())
        .collect();
    assert_eq!(codes, ["bad_base64", "malformed_json"]);
    assert!(b.quarantine.iter().all(|q| q.stage == Stage::Ingest));
    // The undecodable records travel on: validate keeps them in the quarantine list.
    let v = p.validate(b.clone());
    conserved(&v);
    assert_eq!(
        v.quarantine.len(),
        5,
        "3 invalid events + 2 undecodable records"
    );
}

#[tokio::test]
async fn ingest_eventbridge_samples() {
    let p = pipeline();
    let sink = CollectSink::default();
    Ingest::new(p.config(), &sink)
        .handle(ev("ingest/eventbridge-good.json"))
        .await
        .unwrap();
    assert_eq!(sink.take()[0].events.len(), 9);
    Ingest::new(p.config(), &sink)
        .handle(ev("ingest/eventbridge-single.json"))
        .await
        .unwrap();
    assert_eq!(sink.take()[0].events.len(), 1);
    Ingest::new(p.config(), &sink)
        .handle(ev("ingest/eventbridge-bad.json"))
        .await
        .unwrap();
    let v = p.validate(sink.take().remove(0));
    assert_eq!((v.events.len(), v.quarantine.len()), (0, 3));
    Ingest::new(p.config(), &sink)
        .handle(ev("ingest/eventbridge-bad-detail.json"))
        .await
        .unwrap();
    let b = sink.take().remove(0);
    assert_eq!(b.quarantine[0].reasons[0].code, "bad_detail");
    conserved(&b);
}

#[tokio::test]
async fn ingest_rejects_unknown_envelopes_with_a_stable_error_type() {
    let p = pipeline();
    let e = LambdaEvent::new(serde_json::json!({"hello": "world"}), Context::default());
    let err = Ingest::new(p.config(), &CollectSink::default())
        .handle(e)
        .await
        .unwrap_err();
    let d: Diagnostic = err.into();
    assert_eq!(d.error_type, "Pipeline.Fatal.UnrecognisedInput");
}

#[tokio::test]
async fn validate_samples() {
    let p = pipeline();
    let good = p
        .validate_stage()
        .handle(ev("validate/good.json"))
        .await
        .unwrap();
    assert_eq!((good.events.len(), good.quarantine.len()), (9, 0));
    let bad = p
        .validate_stage()
        .handle(ev("validate/bad.json"))
        .await
        .unwrap();
    conserved(&bad);
    // The valid event and its repeat (line 5): a repeat is persist's to call `duplicate`.
    assert_eq!(bad.events.len(), 2);
    let all: Vec<&str> = bad
        .quarantine
        .iter()
        .flat_map(|q| q.reasons.iter().map(|r| r.code.as_str()))
        .collect();
    for code in [
        "malformed_json",
        "schema",
        "unknown_currency",
        "bad_timestamp",
        "future_timestamp",
    ] {
        assert!(all.contains(&code), "{code} missing from {all:?}");
    }
    // The output is exactly the next stage's input shape.
    let _: Batch<ValidEvent> =
        serde_json::from_value(serde_json::to_value(&good).unwrap()).unwrap();
}

#[tokio::test]
async fn validate_rejects_a_non_batch_as_fatal() {
    let p = pipeline();
    let err = p
        .validate_stage()
        .handle(ev("detect/bad.json"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Pipeline.Fatal.BadBatch");
}

#[tokio::test]
async fn enrich_samples() {
    let p = pipeline();
    let good = p
        .enrich_stage()
        .handle(ev("enrich/good.json"))
        .await
        .unwrap();
    assert_eq!((good.events.len(), good.quarantine.len()), (9, 0));
    let gbp = good
        .events
        .iter()
        .find(|e| e.event.currency.as_deref() == Some("GBP"))
        .unwrap();
    assert!((gbp.enrichment.base_value - 42.0 * 1.27).abs() < 1e-9);
    let bad = p
        .enrich_stage()
        .handle(ev("enrich/bad.json"))
        .await
        .unwrap();
    conserved(&bad);
    assert_eq!(bad.quarantine.len(), 1);
    assert_eq!(bad.quarantine[0].reasons[0].code, "fx_rate_missing");
    assert_eq!(
        bad.quarantine[0].payload["currency"], "KES",
        "original payload kept"
    );
    let _: Batch<EnrichedEvent> =
        serde_json::from_value(serde_json::to_value(&good).unwrap()).unwrap();
}

#[tokio::test]
async fn detect_samples() {
    let p = pipeline();
    let out = p
        .detect_stage()
        .handle(ev("detect/good.json"))
        .await
        .unwrap();
    conserved(&out);
    let flagged: Vec<&str> = out
        .events
        .iter()
        .filter(|e| e.detection.is_anomaly)
        .map(|e| e.event.event_id.as_str())
        .collect();
    assert_eq!(
        flagged,
        ["evt-demo-007"],
        "the sixth decline in ten minutes"
    );
    let err = p
        .detect_stage()
        .handle(ev("detect/bad.json"))
        .await
        .unwrap_err();
    assert_eq!(Diagnostic::from(err).error_type, "Pipeline.Fatal.BadBatch");
    let _: Batch<ScoredEvent> =
        serde_json::from_value(serde_json::to_value(&out).unwrap()).unwrap();
}

#[tokio::test]
async fn persist_samples() {
    let p = pipeline();
    let r = p
        .persist_stage()
        .handle(ev("persist/good.json"))
        .await
        .unwrap();
    assert_eq!(r.counts.persisted, 9);
    assert_eq!(r.counts.anomalies, 1);
    assert_eq!(r.new_anomalies().count(), 1);
    let again = p
        .persist_stage()
        .handle(ev("persist/good.json"))
        .await
        .unwrap();
    assert_eq!(again.counts.duplicate, 9);
    assert_eq!(
        again.new_anomalies().count(),
        0,
        "a redelivery announces nothing"
    );

    let bad = p
        .persist_stage()
        .handle(ev("persist/bad.json"))
        .await
        .unwrap();
    assert_eq!(bad.counts.input, bad.counts.accounted());
    assert_eq!(bad.counts.conflict, 1);
    assert_eq!(bad.counts.quarantined, 4);
    let conflict = bad
        .outcomes
        .iter()
        .find(|o| o.status == Status::Conflict)
        .unwrap();
    assert_eq!(conflict.event_id.as_deref(), Some("evt-demo-001"));

    let dump = p.store().dump().await.unwrap();
    assert_eq!(
        dump.quarantine.len(),
        5,
        "4 earlier quarantine entries + the conflict"
    );
    let stored = dump
        .events
        .iter()
        .find(|e| e.event_id == "evt-demo-001")
        .unwrap();
    assert_eq!(stored.event.value, 23.5, "a conflict never overwrites");
}

#[tokio::test]
async fn raw_batch_sample_is_what_ingest_emits() {
    // The validate samples are ingest output for events/source/*.jsonl: same shape, same ids.
    let b: Batch<RawEvent> = serde_json::from_value(sample("validate/good.json")).unwrap();
    assert!(b.batch_id.starts_with("b-"));
    conserved(&b);
}

#[tokio::test]
async fn persist_quarantines_a_failed_batch_whole() {
    let p = pipeline();
    let mut doc = sample("enrich/good.json");
    doc["error"] = serde_json::json!({"Error": "Pipeline.Retryable.InjectedFault", "Cause": "{\"errorMessage\":\"boom\"}"});
    doc["failed_stage"] = "enrich".into();
    let r = p
        .persist_stage()
        .handle(LambdaEvent::new(doc, Context::default()))
        .await
        .unwrap();
    assert_eq!(r.counts.input, 9);
    assert_eq!(r.counts.quarantined, 9);
    assert_eq!(r.quarantined_by_reason.get("stage_failed"), Some(&9));

    let dump = p.store().dump().await.unwrap();
    assert_eq!(dump.quarantine.len(), 9);
    assert!(dump.events.is_empty());
    let q = &dump.quarantine[0].item;
    assert_eq!(q.stage, Stage::Enrich);
    assert!(
        q.reasons[0]
            .message
            .contains("Pipeline.Retryable.InjectedFault"),
        "{:?}",
        q.reasons
    );
    assert!(
        q.payload.get("event_id").is_some(),
        "the original event is kept"
    );
}

#[tokio::test]
async fn fault_injection_only_when_enabled() {
    let mut doc = sample("enrich/good.json");
    doc["events"][0]["event"]["attributes"]["fault_inject"] = "enrich".into();
    let off = pipeline();
    assert!(
        off.enrich_stage()
            .handle(LambdaEvent::new(doc.clone(), Context::default()))
            .await
            .is_ok()
    );
    let mut config = Config::defaults().unwrap();
    config.fault_injection = true;
    let on = Pipeline::new(config, SqliteStore::in_memory().unwrap()).unwrap();
    let err = on
        .enrich_stage()
        .handle(LambdaEvent::new(doc.clone(), Context::default()))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Pipeline.Retryable.InjectedFault");
    // Other stages are not affected by a fault aimed at enrich.
    assert!(
        on.detect_stage()
            .handle(ev("detect/good.json"))
            .await
            .is_ok()
    );
}

/// Issue 9, case 7: a stage's input is a trust boundary. A batch document whose typed events
/// break the contract (id with a space, empty entity, version 0, far-future time, control
/// characters) is not processed on trust by enrich, detect or persist: those events are
/// quarantined at that stage, the others go on, nothing is lost.
#[tokio::test]
async fn stage_documents_are_checked_again_at_every_stage() {
    let broken = |path: &str| {
        let mut doc = sample(path);
        doc["events"][0]["event"]["event_id"] = "has space".into();
        doc["events"][1]["event"]["entity_id"] = "".into();
        doc["events"][2]["event"]["version"] = 0.into();
        doc["events"][3]["event"]["occurred_at"] = "2099-01-01T00:00:00Z".into();
        doc["events"][4]["event"]["entity_id"] = "acct-\u{1b}[31m".into();
        LambdaEvent::new(doc, Context::default())
    };
    let p = pipeline();
    let quarantined_at = |out: Value, stage: &str| -> usize {
        conserved(&serde_json::from_value::<Batch<Value>>(out.clone()).unwrap());
        out["quarantine"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|q| q["stage"] == stage)
            .count()
    };
    let enriched = p
        .enrich_stage()
        .handle(broken("enrich/good.json"))
        .await
        .unwrap();
    assert_eq!(
        quarantined_at(serde_json::to_value(&enriched).unwrap(), "enrich"),
        5
    );
    assert_eq!(enriched.events.len(), 4);
    let scored = p
        .detect_stage()
        .handle(broken("detect/good.json"))
        .await
        .unwrap();
    assert_eq!(
        quarantined_at(serde_json::to_value(&scored).unwrap(), "detect"),
        5
    );
    let report = p
        .persist_stage()
        .handle(broken("persist/good.json"))
        .await
        .unwrap();
    assert_eq!(report.counts.input, report.counts.accounted());
    assert_eq!(report.counts.quarantined, 5, "{:?}", report.counts);
    assert_eq!(report.counts.persisted, 4);

    let dump = p.store().dump().await.unwrap();
    assert_eq!(dump.events.len(), 4);
    assert!(
        dump.events
            .iter()
            .all(|r| r.event_id != "has space" && !r.entity_id.is_empty())
    );
}

/// An MSK event with two partitions of `topic`: `payments-0` offsets 10..=14 and `payments-1`
/// offsets 20..=24, one generated payment each, in that order.
fn two_partition_msk(records: &[(i64, i64)]) -> Value {
    use base64::Engine;
    let payments = pipeline_tests::fixtures::payments(10, 3, 41);
    let mut map = serde_json::Map::new();
    for &(partition, offset) in records {
        let i = (partition * 5 + (offset - 10 - partition * 10)) as usize;
        let value = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(&payments[i]).unwrap());
        let list = map
            .entry(format!("payments-{partition}"))
            .or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(l) = list {
            l.push(serde_json::json!({
                "topic": "payments", "partition": partition, "offset": offset,
                "timestamp": 1761984000000_i64, "timestampType": "CREATE_TIME",
                "value": value, "headers": []
            }));
        }
    }
    serde_json::json!({"eventSource": "aws:kafka", "records": map})
}

const ALL: [(i64, i64); 10] = [
    (0, 10),
    (0, 11),
    (0, 12),
    (0, 13),
    (0, 14),
    (1, 20),
    (1, 21),
    (1, 22),
    (1, 23),
    (1, 24),
];

/// Runs each batch through the whole chain, failing (retryably, as a throttled execution
/// would) the batches that hold a record of `fail_offset` while `failing` is set.
struct ChainSink {
    pipeline: Pipeline<SqliteStore>,
    fail_offset: i64,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl pipeline_ingest::BatchSink for ChainSink {
    async fn submit(&self, batch: &Batch<RawEvent>) -> Result<(), pipeline_core::Error> {
        let holds = batch.events.iter().any(|e| {
            matches!(e.provenance, pipeline_core::event::Provenance::Kafka { offset, .. } if offset == self.fail_offset)
        });
        if holds && self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(pipeline_core::Error::StoreThrottled {
                message: "injected: execution throttled".into(),
                source: None,
            });
        }
        self.pipeline
            .run_batch(batch.clone(), pipeline_tests::fixtures::now())
            .await
            .map(|_| ())
    }
}

/// Partial batch failure: four records to a batch, the batch holding p0:14 and p1:20..22
/// fails. The answer names p0 from 14 on and all of p1 (23 and 24 went through in the next
/// batch, but Kafka commits one offset per partition); the redelivery of exactly those
/// stores the rest and counts nothing twice.
#[tokio::test]
async fn kafka_partial_batch_failure_names_the_records_to_redeliver() {
    let mut vars = std::collections::HashMap::new();
    vars.insert(
        "INGEST_REPORT_BATCH_ITEM_FAILURES".to_owned(),
        "true".to_owned(),
    );
    let config = Config::from_vars(&vars).unwrap();
    let sink = ChainSink {
        pipeline: Pipeline::new(config.clone(), SqliteStore::in_memory().unwrap()).unwrap(),
        fail_offset: 21,
        failing: std::sync::atomic::AtomicBool::new(true),
    };
    let limits = pipeline_ingest::SplitLimits {
        max_events: 4,
        ..Default::default()
    };
    let ingest = Ingest::new(&config, &sink).with_limits(limits);
    let r = ingest
        .handle(LambdaEvent::new(
            two_partition_msk(&ALL),
            Context::default(),
        ))
        .await
        .unwrap();
    let json = serde_json::to_value(&r).unwrap();
    let named: Vec<(String, i64)> = json["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["itemIdentifier"]["partition"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                f["itemIdentifier"]["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, i64)> = [(0, 14), (1, 20), (1, 21), (1, 22), (1, 23), (1, 24)]
        .iter()
        .map(|&(p, o)| (format!("payments-{p}"), o))
        .collect();
    assert_eq!(named, expected);
    assert_eq!(
        r.batches.iter().map(|b| b.failed).collect::<Vec<_>>(),
        [false, true, false]
    );
    let dump = pipeline_core::store::Inspect::dump(sink.pipeline.store())
        .await
        .unwrap();
    assert_eq!(dump.events.len(), 6, "p0:10..13 and p1:23..24 went through");

    // The event source mapping redelivers exactly the named records.
    sink.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let again: Vec<(i64, i64)> = [(0, 14), (1, 20), (1, 21), (1, 22), (1, 23), (1, 24)].into();
    let r = ingest
        .handle(LambdaEvent::new(
            two_partition_msk(&again),
            Context::default(),
        ))
        .await
        .unwrap();
    assert!(r.batch_item_failures.is_empty());
    let dump = pipeline_core::store::Inspect::dump(sink.pipeline.store())
        .await
        .unwrap();
    assert_eq!(dump.events.len(), 10, "every record stored once");
    assert_eq!(
        dump.entities.iter().map(|e| e.count).sum::<u64>(),
        10,
        "every event counted once"
    );
}

/// Without the setting (the event source mapping may not read partial responses), a failed
/// batch fails the whole invocation, as before.
#[tokio::test]
async fn without_partial_responses_a_failed_batch_fails_the_invocation() {
    let config = Config::defaults().unwrap();
    let sink = ChainSink {
        pipeline: Pipeline::new(config.clone(), SqliteStore::in_memory().unwrap()).unwrap(),
        fail_offset: 21,
        failing: std::sync::atomic::AtomicBool::new(true),
    };
    let err = Ingest::new(&config, &sink)
        .handle(LambdaEvent::new(
            two_partition_msk(&ALL),
            Context::default(),
        ))
        .await
        .unwrap_err();
    let d: Diagnostic = err.into();
    assert_eq!(d.error_type, "Pipeline.Retryable.StoreThrottled");
}

fn registry_config() -> Config {
    let mut vars = std::collections::HashMap::new();
    vars.insert(
        "PIPELINE_SCHEMA_REGISTRY".to_owned(),
        pipeline_tests::fixtures::repo_root()
            .join("schemas/registry.json")
            .display()
            .to_string(),
    );
    Config::from_vars(&vars).unwrap()
}

/// The schema-registry samples (written by scripts/make_registry_samples.py with fastavro and
/// Google's protobuf package): every format in every wire format decodes to a contract event,
/// and each one passes the whole chain.
#[tokio::test]
async fn registry_samples_decode_map_and_pass_the_chain() {
    let config = registry_config();
    let p = Pipeline::new(config.clone(), SqliteStore::in_memory().unwrap()).unwrap();
    let sink = CollectSink::default();
    Ingest::new(&config, &sink)
        .handle(ev("ingest/msk-registry.json"))
        .await
        .unwrap();
    let batch = sink.take().remove(0);
    assert!(batch.quarantine.is_empty(), "{:?}", batch.quarantine);
    let ids: Vec<&str> = batch
        .events
        .iter()
        .map(|e| e.payload["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "evt-avro-001",
            "evt-avro-002",
            "evt-avro-003",
            "evt-avro-009",
            "evt-avro-008",
            "evt-avro-004",
            "evt-json-001",
            "evt-json-003",
            "evt-proto-001",
            "evt-proto-002",
            "evt-proto-003"
        ]
    );
    assert_eq!(
        batch.events[9].payload["occurred_at"],
        "2025-11-01T08:02:00.000Z"
    );
    assert_eq!(batch.events[9].payload["attributes"]["line"], "B");
    // entity_id mapped from the record key, not from the record's account_id.
    assert_eq!(batch.events[3].payload["entity_id"], "acct-0099");
    assert_eq!(
        batch.events[3].payload["attributes"]["account_id"],
        "acct-0042"
    );
    // Handed over already decoded by the event source mapping: only the mapping applied.
    assert_eq!(
        batch.events[4].payload["occurred_at"],
        "2025-11-01T08:08:00.000Z"
    );
    let first = &batch.events[0].payload;
    assert_eq!(first["occurred_at"], "2025-11-01T08:01:00.000Z");
    assert_eq!(first["attributes"]["merchant"], "grocer");
    assert_eq!(batch.events[1].payload["attributes"]["status"], "declined");
    assert_eq!(
        batch.events[6].payload["occurred_at"],
        "2025-11-01T08:00:01.000Z"
    );
    let report = p
        .run_batch(batch, pipeline_tests::fixtures::now())
        .await
        .unwrap();
    assert_eq!(report.counts.persisted, 11, "{:?}", report.outcomes);
}

/// Each failure kind is quarantined alone with its reason and the original bytes; the good
/// record beside them goes on.
#[tokio::test]
async fn registry_failures_quarantine_only_their_record() {
    let config = registry_config();
    let sink = CollectSink::default();
    Ingest::new(&config, &sink)
        .handle(ev("ingest/msk-registry-bad.json"))
        .await
        .unwrap();
    let b = sink.take().remove(0);
    conserved(&b);
    assert_eq!(b.events.len(), 1);
    assert_eq!(b.events[0].payload["event_id"], "evt-avro-007");
    let codes: Vec<&str> = b
        .quarantine
        .iter()
        .map(|q| q.reasons[0].code.as_str())
        .collect();
    assert_eq!(
        codes,
        ["unknown_schema", "undecodable_value", "unmapped_field"]
    );
    let sample = sample("ingest/msk-registry-bad.json");
    let original = sample["records"]["payments-avro-1"][0]["value"].clone();
    assert_eq!(
        b.quarantine[0].payload, original,
        "the original bytes, base64"
    );

    // Without a registry, the binary records are not JSON: quarantined, never dropped. Only
    // the one the event source mapping had decoded to JSON reads as JSON (unmapped, so
    // validate would quarantine it in turn).
    Ingest::new(&Config::defaults().unwrap(), &sink)
        .handle(ev("ingest/msk-registry.json"))
        .await
        .unwrap();
    let b = sink.take().remove(0);
    conserved(&b);
    assert_eq!((b.events.len(), b.quarantine.len()), (1, 10));
    assert_eq!(b.events[0].payload["payment_id"], "evt-avro-008");
}

/// Issue 25, case 18: bidirectional overrides and invisible characters were accepted in
/// `entity_id` and `source` and printed raw, so `acct-1` and `acct-1` + zero-width space were two
/// entities that look the same. They are refused like control characters.
#[tokio::test]
async fn identifiers_with_bidi_overrides_or_invisible_characters_are_refused() {
    let p = pipeline();
    let event = |id: &str, entity: &str, source: &str| {
        serde_json::json!({
            "event_id": id, "event_type": "payment.authorized", "source": source,
            "entity_id": entity, "occurred_at": "2026-11-01T10:00:00Z", "value": 1.0,
        })
    };
    let batch = pipeline_tests::fixtures::raw_batch(
        "bidi",
        vec![
            event("ok", "acct-1", "psp"),
            event("rlo", "acct-\u{202e}1", "psp"),
            event("zwsp", "acct-1\u{200b}", "psp"),
            event("bom", "\u{feff}acct-1", "psp"),
            event("src", "acct-1", "p\u{2066}sp"),
        ],
    );
    let out = p.validate(batch);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].event.event_id, "ok");
    assert_eq!(out.quarantine.len(), 4);
    for q in &out.quarantine {
        assert!(
            q.reasons.iter().any(|r| r.message.contains("invisible")),
            "{q:?}"
        );
    }
}

/// With `glue:NAME` in `PIPELINE_SCHEMA_REGISTRY`, the function fetches a Glue version the
/// registry file does not list, once per process, and decodes the samples as with the file;
/// Glue not answering fails the invocation with a retryable error type.
#[tokio::test]
async fn ingest_fetches_glue_versions_once_and_fails_retryably_when_glue_does_not_answer() {
    use pipeline_ingest::{GlueSchemaVersion, StaticGlueSchemas};
    let root = pipeline_tests::fixtures::repo_root();
    let mut file: Value =
        serde_json::from_str(&fs::read_to_string(root.join("schemas/registry.json")).unwrap())
            .unwrap();
    // The Avro schema's versions come from Glue: the file keeps only its mapping, by name.
    let avro = file["schemas"][0].as_object_mut().unwrap();
    let id = avro.remove("glue_version_id").unwrap();
    let (name, schema) = (avro["name"].clone(), avro["schema"].to_string());
    file["glue_schemas"] =
        serde_json::json!([{"schema_name": name, "mapping": avro["mapping"].clone()}]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    fs::write(&path, file.to_string()).unwrap();
    let vars = std::collections::HashMap::from([(
        "PIPELINE_SCHEMA_REGISTRY".to_owned(),
        format!("{}, glue:payments", path.display()),
    )]);
    let config = Config::from_vars(&vars).unwrap();
    assert_eq!(config.glue_registry.as_deref(), Some("payments"));
    let glue = |unavailable: bool| {
        let mut g = StaticGlueSchemas::default();
        let id = id.as_str().unwrap().to_owned();
        g.versions.insert(
            id.clone(),
            GlueSchemaVersion {
                schema_name: name.as_str().unwrap().to_owned(),
                data_format: "AVRO".into(),
                definition: schema.clone(),
            },
        );
        if unavailable {
            g.unavailable.insert(id);
        }
        std::sync::Arc::new(g)
    };

    let sink = CollectSink::default();
    let ingest = Ingest::new(&config, &sink).with_glue(glue(false));
    for _ in 0..2 {
        ingest.handle(ev("ingest/msk-registry.json")).await.unwrap();
    }
    assert_eq!(ingest.glue_fetches(), 1);
    let expected = CollectSink::default();
    Ingest::new(&registry_config(), &expected)
        .handle(ev("ingest/msk-registry.json"))
        .await
        .unwrap();
    let want: Vec<Value> = expected.take()[0]
        .events
        .iter()
        .map(|e| e.payload.clone())
        .collect();
    for batch in sink.take() {
        assert!(batch.quarantine.is_empty(), "{:?}", batch.quarantine);
        let got: Vec<Value> = batch.events.iter().map(|e| e.payload.clone()).collect();
        assert_eq!(got, want);
    }

    let err = Ingest::new(&config, &sink)
        .with_glue(glue(true))
        .handle(ev("ingest/msk-registry.json"))
        .await
        .unwrap_err();
    assert_eq!(
        Diagnostic::from(err).error_type,
        "Pipeline.Retryable.SchemaUnavailable"
    );
    assert!(
        sink.take().is_empty(),
        "nothing is sent when the batch fails"
    );
}
