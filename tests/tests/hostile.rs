//! The hostile-input suite: seeded property tests over the decoders and every stage.
//!
//! Generated inputs: random bytes, invalid UTF-8, truncated and deeply nested JSON, duplicate
//! keys, wrong types in every field, extreme numbers, control and Unicode characters,
//! far-past, far-future and invalid timestamps, oversized fields, malformed Kafka and
//! EventBridge envelopes, and stage documents with any part replaced. What must hold, whatever
//! the input: no panic; one outcome per input; counts reconcile; every quarantine entry has a
//! reason; a bad document is a fatal (never retried) error, not a retryable one; and running
//! the same batch again changes nothing in the store.
//!
//! The seed is fixed, so every run tries the same cases and a failure reproduces; change
//! [`SEED`] to explore others. [`CASES`] cases in all, split over the properties below.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use chrono::{TimeZone, Utc};
use lambda_runtime::{Context, LambdaEvent};
use pipeline_core::ErrorClass;
use pipeline_core::batch::{Batch, RawEvent};
use pipeline_core::event::Provenance;
use pipeline_core::persist::Status;
use pipeline_core::store::Inspect;
use pipeline_core::store::Store;
use pipeline_handlers::{Config, Handler, Pipeline};
use pipeline_ingest::{self as ingest, Item};
use pipeline_sqlite::SqliteStore;
use pipeline_tests::fixtures::events_dir;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

const SEED: [u8; 32] = *b"pipeline hostile input suite v1.";
/// Cases in all: decoders, stage documents and the whole chain.
const CASES: u32 = 10_000;
const DECODER_CASES: u32 = 3_000;
const DOCUMENT_CASES: u32 = 4_500;
const CHAIN_CASES: u32 = CASES - DECODER_CASES - DOCUMENT_CASES;

fn runner(cases: u32) -> TestRunner {
    let config = RunnerConfig {
        cases,
        failure_persistence: None,
        // Shrinking a failure of the chain can take long; the seed reproduces it anyway.
        max_shrink_iters: 200,
        ..RunnerConfig::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---- generators -------------------------------------------------------------------------

/// Short text of any characters (controls, combining marks, astral planes included).
fn short_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter)
}

/// Strings people should not send: control characters, escapes, RTL marks, emoji, NULs,
/// lone combining marks, and now and then a very long one.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => short_text(),
        2 => prop::sample::select(vec![
            "acct-1",
            "\u{1b}[2J\u{7}",
            "a\u{0}b",
            "\u{202e}gnp.exe",
            "evt with space",
            "",
            "\u{301}",
            "💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳💳",
        ])
        .prop_map(str::to_owned),
        1 => (1usize..80_000).prop_map(|n| "x".repeat(n)),
    ]
}

fn extreme_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(1e308)),
        Just(json!(-1e308)),
        Just(json!(1e-308)),
        Just(json!(0)),
        Just(json!(-0.0)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<i64>().prop_map(|i| json!(i)),
    ]
}

fn timestamp() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("0001-01-01T00:00:00Z")),
        Just(json!("9999-12-31T23:59:59.999999999Z")),
        Just(json!("2026-13-45T25:61:61Z")),
        Just(json!("2026-11-01T10:00:00")),
        Just(json!("2026-11-01T10:00:00+23:59")),
        Just(json!("2026-11-01T10:00:00-23:59")),
        Just(json!("1970-01-01T00:00:00Z")),
        Just(json!("2099-01-01T00:00:00Z")),
        Just(json!(1_700_000_000)),
        (0i64..4_000_000_000).prop_map(|s| {
            let t = Utc.timestamp_opt(s, 0).single().unwrap_or_default();
            json!(t.to_rfc3339())
        }),
    ]
}

/// Any JSON value, nested up to a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        extreme_number(),
        short_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(short_text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A well-formed event, from a small pool of ids and entities so that repeats, corrections
/// and conflicts happen inside batches and between them.
fn good_event() -> impl Strategy<Value = Value> {
    (
        0u8..6,
        0u8..3,
        1u32..3,
        1u32..100_000,
        0i64..600,
        prop::sample::select(vec!["EUR", "USD", "JPY", "KES", "XXX"]),
        prop::sample::select(vec!["approved", "declined", "failed"]),
    )
        .prop_map(|(id, entity, version, cents, minute, currency, status)| {
            let t = Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap()
                + chrono::Duration::minutes(minute);
            json!({
                "event_id": format!("evt-{id}"),
                "event_type": "payment.authorized",
                "source": "hostile",
                "entity_id": format!("acct-{entity}"),
                "occurred_at": t.to_rfc3339(),
                "version": version,
                "value": f64::from(cents) / 100.0,
                "currency": currency,
                "attributes": {"status": status, "country": "DE", "merchant": "m-1"}
            })
        })
}

const FIELDS: [&str; 11] = [
    "event_id",
    "event_type",
    "source",
    "entity_id",
    "occurred_at",
    "value",
    "currency",
    "version",
    "attributes",
    "schema_version",
    "extra",
];

/// A replacement for one field: a wrong type, an extreme number, a nasty string, a bad time,
/// or nothing at all (the field removed).
fn field_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => any_json().prop_map(Some),
        2 => extreme_number().prop_map(Some),
        2 => nasty_string().prop_map(|s| Some(Value::String(s))),
        2 => timestamp().prop_map(Some),
        1 => prop::collection::btree_map(short_text(), short_text(), 0..40)
            .prop_map(|m| Some(json!(m))),
        1 => Just(None),
    ]
}

/// An event with up to three fields replaced or removed.
fn hostile_event() -> impl Strategy<Value = Value> {
    (
        good_event(),
        prop::collection::vec((prop::sample::select(FIELDS.to_vec()), field_value()), 0..4),
    )
        .prop_map(|(mut ev, changes)| {
            if let Some(o) = ev.as_object_mut() {
                for (field, value) in changes {
                    match value {
                        Some(v) => o.insert(field.to_owned(), v),
                        None => o.remove(field),
                    };
                }
            }
            ev
        })
}

/// One line of a JSON Lines file, as bytes: an event, mangled or not.
fn hostile_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => hostile_event().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => (hostile_event(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let mut b = serde_json::to_vec(&v).unwrap();
            b.truncate(i.index(b.len() + 1));
            b
        }),
        1 => (hostile_event(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, i, x)| {
            // Invalid UTF-8 somewhere inside.
            let mut b = serde_json::to_vec(&v).unwrap();
            b.insert(i.index(b.len() + 1), 0x80 | (x & 0x3f));
            b
        }),
        1 => (1usize..5000).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes()),
        1 => (good_event(), nasty_string()).prop_map(|(v, s)| {
            // A duplicate key: the entity given twice.
            let text = serde_json::to_string(&v).unwrap();
            let dup = serde_json::to_string(&s).unwrap();
            text.replacen('{', &format!("{{\"entity_id\":{dup},"), 1).into_bytes()
        }),
        // A byte-order mark before an event (a file saved on Windows, or concatenated ones).
        1 => hostile_event().prop_map(|v| {
            let mut b = "\u{feff}".as_bytes().to_vec();
            b.extend(serde_json::to_vec(&v).unwrap());
            b
        }),
    ]
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An MSK event: well-formed around hostile record values, or with its envelope broken.
fn kafka_event() -> impl Strategy<Value = Value> {
    let record = (hostile_line(), 0u64..1000).prop_map(|(bytes, offset)| {
        json!({"topic": "payments", "partition": 0, "offset": offset,
               "timestamp": 1_700_000_000_000u64, "timestampType": "CREATE_TIME",
               "key": null, "value": b64(&bytes), "headers": []})
    });
    let record_or_junk = prop_oneof![4 => record, 1 => any_json()];
    prop_oneof![
        3 => prop::collection::vec(record_or_junk.clone(), 0..5)
            .prop_map(|rs| json!({"eventSource": "aws:kafka", "records": {"payments-0": rs}})),
        1 => prop::collection::vec(record_or_junk, 0..5)
            .prop_map(|rs| json!({"eventSource": "aws:kafka", "records": rs})),
        1 => any_json().prop_map(|r| json!({"eventSource": "aws:kafka", "records": r})),
        1 => any_json().prop_map(|p| json!({"eventSource": "aws:kafka", "records": {"payments-0": p}})),
    ]
}

/// An EventBridge event with a hostile detail.
fn eventbridge_event() -> impl Strategy<Value = Value> {
    prop_oneof![hostile_event(), any_json()].prop_map(|detail| {
        json!({"version": "0", "id": "x", "source": "payments", "detail-type": "payment",
               "time": "2026-11-01T10:00:00Z", "region": "us-east-1", "account": "1",
               "resources": [], "detail": detail})
    })
}

fn quarantine_reasons_present(items: &[Item]) -> Result<(), TestCaseError> {
    for item in items {
        if let Item::Quarantined(q) = item {
            prop_assert!(!q.reasons.is_empty(), "a quarantine entry without a reason");
        }
    }
    Ok(())
}

// ---- properties -------------------------------------------------------------------------

#[test]
fn decoders_keep_every_input_and_never_panic() {
    let per = DECODER_CASES / 3;
    runner(per)
        .run(&prop::collection::vec(hostile_line(), 0..12), |lines| {
            let bytes = lines.join(&b'\n');
            let items = ingest::decode_byte_lines("hostile.jsonl", &bytes);
            let nonblank = bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .count();
            prop_assert_eq!(items.len(), nonblank, "one item per non-blank line");
            // A byte-order mark costs nothing: the line decodes as it would without one.
            for line in &lines {
                if let Some(rest) = line.strip_prefix("\u{feff}".as_bytes()) {
                    let event = |b: &[u8]| {
                        matches!(
                            ingest::decode_byte_line("hostile.jsonl", 1, b),
                            Some(ingest::Item::Event(_))
                        )
                    };
                    prop_assert_eq!(event(line), event(rest));
                }
            }
            quarantine_reasons_present(&items)
        })
        .unwrap();
    runner(per)
        .run(&kafka_event(), |event| {
            match ingest::decode(&event) {
                Ok(items) => {
                    quarantine_reasons_present(&items)?;
                    let records = &event["records"];
                    let something = match records {
                        Value::Object(m) => m.values().any(|v| v != &json!([])),
                        Value::Array(a) => !a.is_empty(),
                        Value::Null => false,
                        _ => true,
                    };
                    prop_assert!(
                        !something || !items.is_empty(),
                        "records vanished: {records}"
                    );
                }
                Err(e) => prop_assert_eq!(e.class(), ErrorClass::Fatal),
            }
            Ok(())
        })
        .unwrap();
    runner(DECODER_CASES - 2 * per)
        .run(&eventbridge_event(), |event| {
            match ingest::decode(&event) {
                Ok(items) => {
                    quarantine_reasons_present(&items)?;
                    prop_assert!(!items.is_empty(), "the detail vanished");
                }
                Err(e) => prop_assert_eq!(e.class(), ErrorClass::Fatal),
            }
            Ok(())
        })
        .unwrap();
}

/// Every JSON pointer into `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

fn sample(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(events_dir().join(path)).unwrap()).unwrap()
}

#[test]
fn stages_take_any_document_without_panic_or_retry() {
    let samples = [
        "validate/good.json",
        "enrich/good.json",
        "detect/good.json",
        "persist/good.json",
    ]
    .map(sample);
    let rt = rt();
    // One pipeline for all cases: building one compiles the contract (~10 ms in a debug build).
    let p = Pipeline::new(
        Config::defaults().unwrap(),
        SqliteStore::in_memory().unwrap(),
    )
    .unwrap();
    let strategy = (
        0usize..4,
        0usize..4,
        any::<prop::sample::Index>(),
        prop_oneof![3 => field_value(), 1 => any_json().prop_map(Some)],
        any::<bool>(),
    );
    runner(DOCUMENT_CASES)
        .run(&strategy, |(doc_i, stage, at, value, whole)| {
            // A sample of any stage, one part replaced (or removed), given to any stage.
            let mut doc = samples[doc_i].clone();
            if whole {
                doc = value.clone().unwrap_or(Value::Null);
            } else {
                let mut ps = Vec::new();
                pointers(&doc, String::new(), &mut ps);
                if !ps.is_empty() {
                    let p = &ps[at.index(ps.len())];
                    let (parent, key) = p.rsplit_once('/').unwrap();
                    match (doc.pointer_mut(parent), value) {
                        (Some(Value::Object(m)), Some(v)) => {
                            m.insert(key.replace("~1", "/").replace("~0", "~"), v);
                        }
                        (Some(Value::Object(m)), None) => {
                            m.remove(&key.replace("~1", "/").replace("~0", "~"));
                        }
                        (Some(Value::Array(a)), v) => {
                            if let Ok(i) = key.parse::<usize>() {
                                if i < a.len() {
                                    a[i] = v.unwrap_or(Value::Null);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            let event = LambdaEvent::new(doc, Context::default());
            let result: Result<(usize, usize), _> = rt.block_on(async {
                match stage {
                    0 => p
                        .validate_stage()
                        .handle(event)
                        .await
                        .map(|b| (b.input_count, b.events.len() + b.quarantine.len())),
                    1 => p
                        .enrich_stage()
                        .handle(event)
                        .await
                        .map(|b| (b.input_count, b.events.len() + b.quarantine.len())),
                    2 => p
                        .detect_stage()
                        .handle(event)
                        .await
                        .map(|b| (b.input_count, b.events.len() + b.quarantine.len())),
                    _ => p
                        .persist_stage()
                        .handle(event)
                        .await
                        .map(|r| (r.counts.input, r.counts.accounted())),
                }
            });
            match result {
                Ok((input, accounted)) => {
                    prop_assert_eq!(input, accounted, "stage {} lost events", stage)
                }
                Err(e) => {
                    let kind = e.error_type();
                    prop_assert!(
                        kind.starts_with("Pipeline.Fatal."),
                        "a bad document must fail for good, not be retried: {kind}"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}

/// What the store holds about a batch's events: their records, their entities' states and
/// their quarantine entries.
async fn touched<S: Store>(store: &S, payloads: &[Value]) -> Touched {
    let field = |k: &str| -> Vec<String> {
        let mut v: Vec<String> = payloads
            .iter()
            .filter_map(|p| p.get(k).and_then(Value::as_str).map(str::to_owned))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let ids = field("event_id");
    let records: std::collections::BTreeMap<_, _> =
        store.get_events(&ids).await.unwrap().into_iter().collect();
    let entities: std::collections::BTreeMap<_, _> = store
        .get_entities(&field("entity_id"))
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut quarantine = Vec::new();
    for id in &ids {
        quarantine.extend(store.quarantine_of(id).await.unwrap());
    }
    (records, entities, quarantine)
}

type Touched = (
    std::collections::BTreeMap<String, pipeline_core::store::EventRecord>,
    std::collections::BTreeMap<String, pipeline_core::detect::EntityState>,
    Vec<pipeline_core::store::QuarantineRecord>,
);

#[test]
fn the_chain_gives_one_outcome_per_event_and_a_second_run_changes_nothing() {
    let rt = rt();
    let received = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    // One store for all cases, so that later cases also meet what earlier ones stored under
    // the same small pool of ids (redeliveries, corrections, conflicts across batches).
    let case = AtomicUsize::new(0);
    let p = Pipeline::new(
        Config::defaults().unwrap(),
        SqliteStore::in_memory().unwrap(),
    )
    .unwrap();
    runner(CHAIN_CASES)
        .run(
            &prop::collection::vec(hostile_event(), 1..8),
            |mut payloads| {
                // Cases share ids in groups of 10: later cases meet what earlier ones stored,
                // and no id collects thousands of quarantine entries to read back.
                let epoch = case.fetch_add(1, Ordering::Relaxed) / 10;
                for p in &mut payloads {
                    for k in ["event_id", "entity_id"] {
                        if let Some(Value::String(id)) = p.get_mut(k) {
                            *id = format!("{epoch}-{id}");
                        }
                    }
                }
                let n = payloads.len();
                let batch = Batch {
                    batch_id: "hostile".into(),
                    received_at: received,
                    input_count: n,
                    events: payloads
                        .iter()
                        .cloned()
                        .enumerate()
                        .map(|(i, payload)| RawEvent {
                            payload,
                            provenance: Provenance::File {
                                path: "hostile".into(),
                                line: i + 1,
                            },
                        })
                        .collect(),
                    quarantine: Vec::new(),
                };
                let (first, before, second, after) = rt.block_on(async {
                    let first = p.run_batch(batch.clone(), received).await;
                    let before = touched(p.store(), &payloads).await;
                    let second = p.run_batch(batch.clone(), received).await;
                    let after = touched(p.store(), &payloads).await;
                    (first, before, second, after)
                });
                let first = first.map_err(|e| TestCaseError::fail(format!("first run: {e}")))?;
                let second = second.map_err(|e| TestCaseError::fail(format!("second run: {e}")))?;
                prop_assert_eq!(first.outcomes.len(), n, "one outcome per event");
                prop_assert_eq!(first.counts.input, first.counts.accounted());
                for o in first.outcomes.iter().chain(&second.outcomes) {
                    if o.status == Status::Quarantined {
                        prop_assert!(!o.reasons.is_empty(), "quarantined without a reason");
                    }
                }
                prop_assert!(
                    second
                        .outcomes
                        .iter()
                        .all(|o| !matches!(o.status, Status::Persisted | Status::Updated)),
                    "the second run wrote again: {:?}",
                    second.outcomes.iter().map(|o| o.status).collect::<Vec<_>>()
                );
                prop_assert_eq!(before, after, "the second run changed the store");
                Ok(())
            },
        )
        .unwrap();
    // The store as a whole still reads back (nothing stored that cannot be decoded).
    let dump = rt.block_on(p.store().dump()).unwrap();
    assert!(!dump.events.is_empty(), "some cases stored events");
}

/// A value for a stream: mostly ordinary, often extreme but finite (up to ±f64::MAX, tiny and
/// subnormal ones), so that every value test meets numbers its statistics can overflow on.
fn stream_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => 1.0f64..200.0,
        1 => Just(f64::MAX),
        1 => Just(-f64::MAX),
        1 => Just(9e307),
        1 => Just(-1e308),
        1 => 1e300f64..1.7e308,
        1 => Just(f64::MIN_POSITIVE / 4.0),
        1 => Just(0.0),
    ]
}

#[test]
fn huge_finite_values_through_every_detector_keep_every_number_finite_and_the_store_readable() {
    // Issue 25, case 1: a value near f64::MAX that triggered a value test once overflowed a
    // statistic, stored as `null`, and the record could not be read back (nor the store
    // dumped). Every number the detectors write must be finite.
    const STREAM_CASES: u32 = 100;
    let rt = rt();
    let p = Pipeline::new(
        Config::defaults().unwrap(),
        SqliteStore::in_memory().unwrap(),
    )
    .unwrap();
    let received = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let case = AtomicUsize::new(0);
    // Runs of one value as well as single ones, so that the levels move to extreme values
    // (a shift) and the flatline test counts repeats of them.
    let run_of = (
        stream_value(),
        prop_oneof![3 => Just(1usize), 1 => 2usize..40],
    );
    let step = (
        run_of,
        any::<bool>(),
        0u8..3,
        prop_oneof![8 => Just(60i64), 1 => Just(-7200i64), 1 => Just(86_400i64)],
    );
    runner(STREAM_CASES)
        .run(
            &(prop::collection::vec(step, 10..60), 1usize..40),
            |(steps, batch_size)| {
                let k = case.fetch_add(1, Ordering::Relaxed);
                let mut t = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
                let mut payloads: Vec<Value> = Vec::new();
                for ((value, repeats), declined, country, dt) in &steps {
                    for _ in 0..*repeats {
                        t += chrono::Duration::seconds(*dt);
                        let country = ["DE", "FR", "BR"][usize::from(*country)];
                        payloads.push(json!({
                            "event_id": format!("huge-{k}-{}", payloads.len()),
                            "event_type": "payment.authorized",
                            "source": "hostile",
                            "entity_id": format!("huge-{k}"),
                            "occurred_at": t.to_rfc3339(),
                            "value": value,
                            "attributes": {
                                "status": if *declined { "declined" } else { "approved" },
                                "country": country,
                            },
                        }));
                    }
                }
                let tag = format!("huge-{k}");
                let run = |payloads: &[Value]| {
                    rt.block_on(in_batches(&p, payloads, batch_size, &tag, received))
                };
                run(&payloads).map_err(|e| TestCaseError::fail(format!("run: {e}")))?;
                let before = rt.block_on(touched(p.store(), &payloads));
                for r in before.0.values() {
                    let v = serde_json::to_value(&r.detection).unwrap();
                    let mut at = Vec::new();
                    nulls(&v, String::new(), &mut at);
                    prop_assert!(at.is_empty(), "{}: null (non-finite) at {at:?}", r.event_id);
                }
                run(&payloads).map_err(|e| TestCaseError::fail(format!("rerun: {e}")))?;
                prop_assert_eq!(before, rt.block_on(touched(p.store(), &payloads)));
                Ok(())
            },
        )
        .unwrap();
    let dump = rt.block_on(p.store().dump()).unwrap();
    assert!(dump.events.iter().any(|r| r.detection.is_anomaly));
}

#[test]
fn an_envelope_of_any_size_gives_one_item_per_record() {
    // Issue 25, case 3's class: a Kafka trigger payload of n records, some of them bad, is
    // n items, whatever n (up to a few thousand here; the CLI test sends 60,000 in one line).
    runner(60)
        .run(&(0usize..3000, 0usize..20), |(n, bad)| {
            let value = b64(br#"{"event_id":"k","value":1}"#);
            let records: Vec<Value> = (0..n)
                .map(|i| {
                    let v = if i < bad { json!("!!") } else { json!(value) };
                    json!({"topic":"t","partition":i % 3,"offset":i,"value":v})
                })
                .collect();
            let items = ingest::decode(&json!({"eventSource":"aws:kafka","records":{"t":records}}))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(items.len(), n);
            let quarantined = items
                .iter()
                .filter(|i| matches!(i, ingest::Item::Quarantined(_)))
                .count();
            prop_assert_eq!(quarantined, bad.min(n));
            Ok(())
        })
        .unwrap();
}

#[test]
fn out_of_order_streams_give_the_same_records_at_any_batch_split() {
    // Issue 25, case 5's class: events of a few entities with their times jittered (some
    // late beyond the velocity window, some ahead), cut at two batch sizes, store the same
    // records (scores, reasons, incidents, enrichment) and entity states.
    let rt = rt();
    let received = Utc.with_ymd_and_hms(2026, 11, 9, 0, 0, 0).unwrap();
    let case = AtomicUsize::new(0);
    let step = (
        0u8..3,
        prop_oneof![3 => -90i64..90, 1 => Just(-3 * 3600i64), 1 => Just(2 * 3600i64)],
        1.0f64..200.0,
        any::<bool>(),
    );
    runner(40)
        .run(
            &(prop::collection::vec(step, 5..80), 1usize..9, 9usize..60),
            |(steps, small, large)| {
                let k = case.fetch_add(1, Ordering::Relaxed);
                let base = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
                let payloads: Vec<Value> = steps
                    .iter()
                    .enumerate()
                    .map(|(i, (entity, jitter, value, declined))| {
                        let at = base
                            + chrono::Duration::minutes(i as i64)
                            + chrono::Duration::seconds(*jitter);
                        json!({
                            "event_id": format!("ooo-{k}-{i}"),
                            "event_type": "payment.authorized",
                            "source": "hostile",
                            "entity_id": format!("ooo-{k}-{entity}"),
                            "occurred_at": at.to_rfc3339(),
                            "value": value,
                            "attributes": {"status": if *declined { "declined" } else { "approved" }},
                        })
                    })
                    .collect();
                let run = |size: usize| {
                    rt.block_on(async {
                        let p = Pipeline::new(
                            Config::defaults().unwrap(),
                            SqliteStore::in_memory().unwrap(),
                        )
                        .unwrap();
                        in_batches(&p, &payloads, size, "ooo", received)
                            .await
                            .unwrap();
                        let mut d = p.store().dump().await.unwrap();
                        for r in &mut d.events {
                            r.first_persisted_at = received;
                            r.last_persisted_at = received;
                        }
                        for e in &mut d.entities {
                            e.version = 0;
                        }
                        d
                    })
                };
                let (a, b) = (run(small), run(large));
                prop_assert_eq!(a.events, b.events, "records at batch sizes {} and {}", small, large);
                prop_assert_eq!(a.entities, b.entities);
                Ok(())
            },
        )
        .unwrap();
}

/// Runs `payloads` through the chain in batches of `size` (ids `<tag>-<n>`).
async fn in_batches(
    p: &Pipeline<SqliteStore>,
    payloads: &[Value],
    size: usize,
    tag: &str,
    received: chrono::DateTime<Utc>,
) -> Result<(), pipeline_core::Error> {
    for (b, chunk) in payloads.chunks(size).enumerate() {
        let batch = Batch {
            batch_id: format!("{tag}-{b}"),
            received_at: received,
            input_count: chunk.len(),
            events: chunk
                .iter()
                .cloned()
                .map(|payload| RawEvent {
                    payload,
                    provenance: Provenance::default(),
                })
                .collect(),
            quarantine: Vec::new(),
        };
        p.run_batch(batch, received).await?;
    }
    Ok(())
}

/// JSON pointers of the nulls in `v` (a non-finite number serialises as null).
fn nulls(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Null => out.push(at),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                nulls(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                nulls(x, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}
