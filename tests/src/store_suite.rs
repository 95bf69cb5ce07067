//! The store suite: what every [`Store`] must guarantee, run through the real stages.
//!
//! Each case takes freshly created, empty stores. Failures panic with a message (these are
//! tests). Run by `tests/store_sqlite.rs` and `tests/store_dynamodb.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use pipeline_core::ErrorClass;
use pipeline_core::batch::{Batch, RawEvent};
use pipeline_core::persist::{PersistReport, Status};
use pipeline_core::store::{Store, StoreDump};
use pipeline_handlers::{Config, Pipeline};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::fixtures::{now, payments, raw_batch};
use pipeline_core::store::Inspect;

/// Builds a pipeline with default settings around `store`.
pub fn pipeline<S: Store>(store: S) -> Pipeline<S> {
    Pipeline::new(Config::defaults().expect("default config"), store).expect("pipeline")
}

/// Runs a batch through all stages, retrying retryable failures as Step Functions would.
pub async fn run_retrying<S: Store>(p: &Pipeline<S>, batch: &Batch<RawEvent>) -> PersistReport {
    for attempt in 1..=20 {
        match p.run_batch(batch.clone(), now()).await {
            Ok(r) => return r,
            Err(e) if e.class() == ErrorClass::Retryable && attempt < 20 => continue,
            Err(e) => panic!("batch {} failed: {e}", batch.batch_id),
        }
    }
    unreachable!()
}

fn statuses(r: &PersistReport) -> Vec<(String, Status)> {
    r.outcomes
        .iter()
        .map(|o| (o.event_id.clone().unwrap_or_default(), o.status))
        .collect()
}

fn status_of(r: &PersistReport, id: &str) -> Status {
    r.outcomes
        .iter()
        .find(|o| o.event_id.as_deref() == Some(id))
        .map(|o| o.status)
        .expect("event in report")
}

/// insert → persisted; same again → duplicate; higher version → updated; lower → stale;
/// same version, other content → conflict (quarantined, record untouched).
pub async fn upsert_outcomes<S: Store>(store: S) {
    let p = pipeline(store);
    let base = payments(3, 1, 7);
    let r = run_retrying(&p, &raw_batch("b1", base.clone())).await;
    assert!(
        statuses(&r).iter().all(|(_, s)| *s == Status::Persisted),
        "{:?}",
        statuses(&r)
    );

    let r = run_retrying(&p, &raw_batch("b2", base.clone())).await;
    assert!(
        statuses(&r).iter().all(|(_, s)| *s == Status::Duplicate),
        "{:?}",
        statuses(&r)
    );

    let id = base[0]["event_id"].as_str().unwrap().to_owned();
    let mut v2 = base[0].clone();
    v2["version"] = 2.into();
    v2["value"] = 99.5.into();
    let r = run_retrying(&p, &raw_batch("b3", vec![v2.clone()])).await;
    assert_eq!(status_of(&r, &id), Status::Updated);

    let r = run_retrying(&p, &raw_batch("b4", vec![base[0].clone()])).await;
    assert_eq!(status_of(&r, &id), Status::Stale);

    let mut clash = v2.clone();
    clash["value"] = 1.0.into();
    let r = run_retrying(&p, &raw_batch("b5", vec![clash])).await;
    assert_eq!(status_of(&r, &id), Status::Conflict);
    assert_eq!(r.counts.conflict, 1);

    let dump = p.store().dump().await.unwrap();
    let rec = dump.events.iter().find(|e| e.event_id == id).unwrap();
    assert_eq!(rec.version, 2);
    assert_eq!(rec.event.value, 99.5, "conflict must not overwrite");
    assert!(
        dump.quarantine
            .iter()
            .any(|q| q.item.event_id.as_deref() == Some(id.as_str()))
    );
    // Entity state counted each event once: the update and the redeliveries added nothing.
    assert_eq!(dump.entities.iter().map(|e| e.count).sum::<u64>(), 3);
}

fn same_dump(a: &StoreDump, b: &StoreDump) {
    assert_eq!(a.events.len(), b.events.len(), "record count");
    for (x, y) in a.events.iter().zip(&b.events) {
        assert_eq!(x, y, "record {}", x.event_id);
    }
    assert_eq!(a.entities, b.entities, "entity state");
    assert_eq!(a.quarantine, b.quarantine, "quarantine");
}

/// Redelivering random subsets of what was already delivered, shuffled and interleaved with
/// new batches, five times, leaves the store exactly as one clean delivery does.
pub async fn redelivery_is_exactly_once<S: Store>(clean: S, redelivered: S, seed: u64) {
    let events = payments(240, 4, seed);
    let batches: Vec<Vec<Value>> = events.chunks(60).map(<[Value]>::to_vec).collect();
    let clean = pipeline(clean);
    for (i, b) in batches.iter().enumerate() {
        run_retrying(&clean, &raw_batch(&format!("c{i}"), b.clone())).await;
    }

    let p = pipeline(redelivered);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut delivered: Vec<Value> = Vec::new();
    let mut redeliveries = 0;
    for (i, b) in batches.iter().enumerate() {
        run_retrying(&p, &raw_batch(&format!("n{i}"), b.clone())).await;
        delivered.extend(b.iter().cloned());
        let times = if i + 1 == batches.len() {
            5 - redeliveries
        } else {
            rng.random_range(0..=2usize).min(5 - redeliveries)
        };
        for _ in 0..times {
            let mut subset: Vec<Value> = delivered
                .iter()
                .filter(|_| rng.random_bool(0.4))
                .cloned()
                .collect();
            subset.shuffle(&mut rng);
            for (j, chunk) in subset.chunks(100).enumerate() {
                let r = run_retrying(
                    &p,
                    &raw_batch(&format!("r{redeliveries}-{j}"), chunk.to_vec()),
                )
                .await;
                assert!(
                    r.outcomes.iter().all(|o| o.status == Status::Duplicate),
                    "a redelivered event was not a duplicate: {:?}",
                    statuses(&r)
                );
            }
            redeliveries += 1;
        }
    }
    assert_eq!(redeliveries, 5);
    same_dump(
        &clean.store().dump().await.unwrap(),
        &p.store().dump().await.unwrap(),
    );
}

/// An entity's order-independent figures: id, count, failures, first and last event time.
type Counted = (String, u64, u64, Option<i64>, Option<i64>);

/// Two writers delivering overlapping streams of the same two entities at the same time end
/// with the same records (ids, versions, content) and the same per-entity counts as one
/// sequential delivery on a fresh store. (Scores depend on the order events were seen in, so
/// they are not compared.)
pub async fn concurrent_writers_lose_nothing<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let all = payments(80, 2, 11);
    let a: Vec<Value> = all[..56].to_vec();
    let b: Vec<Value> = all[24..].to_vec();

    let clean = pipeline(pipeline_sqlite::SqliteStore::in_memory().unwrap());
    for (i, chunk) in a.chunks(8).chain(b.chunks(8)).enumerate() {
        run_retrying(&clean, &raw_batch(&format!("s{i}"), chunk.to_vec())).await;
    }

    let mut tasks = Vec::new();
    for (name, events) in [("wa", a), ("wb", b)] {
        let p = Arc::new(pipeline(store.clone()));
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            for (i, chunk) in events.chunks(8).enumerate() {
                let r = run_retrying(&p, &raw_batch(&format!("{name}{i}"), chunk.to_vec())).await;
                assert_eq!(r.counts.input, r.counts.accounted());
                n += r.counts.persisted;
            }
            n
        }));
    }
    let mut persisted = 0;
    for t in tasks {
        persisted += t.await.unwrap();
    }
    assert_eq!(persisted, 80, "each event persisted by exactly one writer");

    let (want, got) = (
        clean.store().dump().await.unwrap(),
        store.dump().await.unwrap(),
    );
    let records = |d: &StoreDump| -> Vec<(String, u32, String)> {
        d.events
            .iter()
            .map(|r| (r.event_id.clone(), r.version, r.content_hash.clone()))
            .collect()
    };
    assert_eq!(records(&want), records(&got), "the same records");
    let counts = |d: &StoreDump| -> Vec<Counted> {
        d.entities
            .iter()
            .map(|s| {
                let e = s.entity_id.clone();
                (e, s.count, s.failures_total, s.first_seen, s.last_seen)
            })
            .collect()
    };
    assert_eq!(
        counts(&want),
        counts(&got),
        "an event lost or counted twice"
    );
}

/// Exactly-once does not depend on how many events arrive between a write and its retry: a
/// batch whose entity commit landed but whose answer was lost, retried, then 150 newer events
/// of the same entity in one batch (more than the state remembers ids of, and more than one
/// DynamoDB transaction carries), then the first batch redelivered: every event counted once.
pub async fn exactly_once_without_a_bound<S: Store>(store: S) {
    let flaky = crate::flaky::FlakyStore::new(store, usize::MAX, 0);
    let p = pipeline(flaky);
    let first = payments(10, 1, 41);
    p.store().lose_commits(1);
    let r = run_retrying(&p, &raw_batch("x1", first.clone())).await;
    assert_eq!(r.counts.input, 10);
    assert_eq!(
        r.counts.persisted + r.counts.duplicate,
        10,
        "{:?}",
        statuses(&r)
    );
    let later = payments(150, 1, 42);
    let r = run_retrying(&p, &raw_batch("x2", later)).await;
    assert_eq!(r.counts.persisted, 150);
    let r = run_retrying(&p, &raw_batch("x3", first)).await;
    assert_eq!(r.counts.duplicate, 10, "{:?}", statuses(&r));
    let dump = p.store().inner().dump().await.unwrap();
    assert_eq!(dump.events.len(), 160);
    assert_eq!(dump.entities.len(), 1);
    assert_eq!(dump.entities[0].count, 160, "counted once each");
}

/// A store that throttles in the middle of a batch, retried until it passes, ends exactly
/// like an undisturbed one.
pub async fn throttled_batches_lose_nothing<S: Store>(clean: S, flaky_inner: S) {
    let events = payments(120, 3, 5);
    let clean = pipeline(clean);
    for (i, b) in events.chunks(40).enumerate() {
        run_retrying(&clean, &raw_batch(&format!("t{i}"), b.to_vec())).await;
    }
    let reference = clean.store().dump().await.unwrap();
    // Let three calls through, then fail four: the failures land mid-batch (after reads,
    // around the state and record writes), and each failed batch is retried whole.
    let flaky = crate::flaky::FlakyStore::new(flaky_inner, 3, 4);
    let p = pipeline(flaky);
    for (i, b) in events.chunks(40).enumerate() {
        run_retrying(&p, &raw_batch(&format!("t{i}"), b.to_vec())).await;
    }
    assert_eq!(p.store().injected(), 4, "throttles were injected");
    same_dump(&reference, &p.store().inner().dump().await.unwrap());
}

/// Quarantined events are stored with every reason, and reconcile with the counts.
pub async fn quarantine_is_stored_and_counts_reconcile<S: Store>(store: S) {
    let p = pipeline(store);
    let mut events = payments(5, 2, 3);
    events.push(serde_json::json!({"event_id": "bad 1", "value": "x"}));
    events.push(
        serde_json::json!({"event_id": "cur", "event_type": "payment.authorized", "source": "s",
        "entity_id": "a", "occurred_at": "2026-11-01T00:00:00Z", "value": 1, "currency": "XYZ"}),
    );
    let r = run_retrying(&p, &raw_batch("q1", events)).await;
    assert_eq!(r.counts.input, 7);
    assert_eq!(r.counts.accounted(), 7);
    assert_eq!(r.counts.quarantined, 2);
    let dump = p.store().dump().await.unwrap();
    assert_eq!(dump.quarantine.len(), 2);
    let bad = dump
        .quarantine
        .iter()
        .find(|q| q.item.event_id.as_deref() == Some("bad 1"))
        .unwrap();
    assert!(
        bad.item.reasons.len() >= 4,
        "every reason kept: {:?}",
        bad.item.reasons
    );
    assert_eq!(bad.item.payload["value"], "x", "original payload kept");
    // Default retention: the entry expires 30 days after it was quarantined (the DynamoDB
    // table's TTL attribute).
    for q in &dump.quarantine {
        assert_eq!(
            q.expires_at,
            Some((q.quarantined_at + chrono::Duration::days(30)).timestamp()),
            "{}",
            q.quarantine_id
        );
    }
}

/// A store finds an event's quarantine entries by `event_id`, every stage's, oldest first,
/// and nothing for an id that was never quarantined (what `pipeline show` prints).
pub async fn quarantine_is_found_by_event_id<S: Store>(store: S) {
    let p = pipeline(store);
    let mut events = payments(3, 1, 7);
    events.push(serde_json::json!({"event_id": "bad 2", "value": "x"}));
    run_retrying(&p, &raw_batch("q2", events)).await;
    let found = p.store().quarantine_of("bad 2").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].item.event_id.as_deref(), Some("bad 2"));
    assert_eq!(found[0].batch_id, "q2");
    let dump = p.store().dump().await.unwrap();
    let stored: Vec<_> = dump
        .quarantine
        .iter()
        .filter(|q| q.item.event_id.as_deref() == Some("bad 2"))
        .collect();
    assert_eq!(found.iter().collect::<Vec<_>>(), stored);
    assert!(
        p.store()
            .quarantine_of("never-seen")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A 1 MB event (issue 9, case 9) ends as a bounded quarantine record the store accepts
/// (DynamoDB refuses items over 400 KB), and the other events of its batch are persisted.
pub async fn oversized_events_are_quarantined_within_item_limits<S: Store>(store: S) {
    let p = pipeline(store);
    let huge = "x".repeat(1024 * 1024);
    let mut lines: Vec<String> = payments(3, 1, 11).iter().map(Value::to_string).collect();
    lines.push(format!(
        r#"{{"event_id":"huge-1","event_type":"payment.authorized","source":"s","entity_id":"a","occurred_at":"2026-11-01T00:00:00Z","value":1,"attributes":{{"note":"{huge}"}}}}"#
    ));
    let items = pipeline_ingest::decode_lines(
        "big.jsonl",
        lines.iter().enumerate().map(|(i, l)| (i + 1, l.as_str())),
    );
    let mut persisted = 0;
    for batch in p.split(items, now()) {
        let r = run_retrying(&p, &batch).await;
        assert_eq!(r.counts.accounted(), r.counts.input);
        persisted += r.counts.persisted;
    }
    assert_eq!(persisted, 3);
    let found = p.store().quarantine_of("huge-1").await.unwrap();
    assert_eq!(found.len(), 1);
    let q = &found[0].item;
    assert_eq!(
        q.payload["bytes"].as_u64().unwrap() as usize,
        lines[3].len()
    );
    assert_eq!(q.payload["sha256"].as_str().unwrap().len(), 64);
    assert!(q.reasons.iter().any(|r| r.code == "too_large"));
}

/// Several entity commits in one call are independent: each is written whole or not at all,
/// by its own conditions, whatever happens to the others (the embedded store runs them in one
/// transaction; DynamoDB one transaction each).
pub async fn entity_commits_are_independent<S: Store>(store: S) {
    use pipeline_core::store::{EntityCommit, EntityWrite};

    let p = pipeline(store);
    run_retrying(&p, &raw_batch("m1", payments(9, 3, 61))).await;
    let dump = p.store().dump().await.unwrap();
    assert_eq!(dump.entities.len(), 3);
    let template = dump.events[0].clone();
    let record = |id: &str, entity: &str| {
        let mut r = template.clone();
        r.event_id = id.to_owned();
        r.entity_id = entity.to_owned();
        r
    };
    let [a, b, c] = [0, 1, 2].map(|i| dump.entities[i].clone());
    let existing = dump
        .events
        .iter()
        .find(|r| r.entity_id == b.entity_id)
        .unwrap()
        .event_id
        .clone();
    let bump = |s: &pipeline_core::detect::EntityState| {
        let mut s = s.clone();
        s.version += 1;
        s
    };
    let mut fresh = pipeline_core::detect::EntityState::new("acct-fresh");
    fresh.version = 1;
    let commits = vec![
        // Written: the next version, a new record.
        EntityCommit {
            state: bump(&a),
            inserts: vec![record("m-new-1", &a.entity_id)],
        },
        // Conflict: one of its records exists, so its new one must not be written either.
        EntityCommit {
            state: bump(&b),
            inserts: vec![
                record("m-new-2", &b.entity_id),
                record(&existing, &b.entity_id),
            ],
        },
        // Conflict: not the next version.
        EntityCommit {
            state: c.clone(),
            inserts: vec![record("m-new-3", &c.entity_id)],
        },
        // Written: an entity never seen, at version 1.
        EntityCommit {
            state: fresh,
            inserts: vec![record("m-new-4", "acct-fresh")],
        },
    ];
    let answers = p.store().commit_entities(&commits).await.unwrap();
    p.store().flush().await.unwrap();
    assert_eq!(
        answers,
        vec![
            EntityWrite::Written,
            EntityWrite::Conflict,
            EntityWrite::Conflict,
            EntityWrite::Written
        ]
    );
    let ids: Vec<String> = ["m-new-1", "m-new-2", "m-new-3", "m-new-4"]
        .map(String::from)
        .to_vec();
    let mut found: Vec<&String> = Vec::new();
    let stored = p.store().get_events(&ids).await.unwrap();
    for id in &ids {
        if stored.contains_key(id) {
            found.push(id);
        }
    }
    assert_eq!(found, vec!["m-new-1", "m-new-4"]);
    let entities = [
        a.entity_id.clone(),
        b.entity_id.clone(),
        c.entity_id.clone(),
    ];
    let states = p.store().get_entities(&entities).await.unwrap();
    assert_eq!(states[&a.entity_id].version, a.version + 1);
    assert_eq!(
        states[&b.entity_id].version, b.version,
        "conflict: unchanged"
    );
    assert_eq!(
        states[&c.entity_id].version, c.version,
        "conflict: unchanged"
    );
}

/// `list_quarantine` returns every entry oldest first; `put_quarantine` keeps the first write
/// of an id while `replace_quarantine` overwrites it (how a replay marks an entry).
pub async fn quarantine_entries_are_listed_and_replaced<S: Store>(store: S) {
    let p = pipeline(store);
    let mut events = payments(2, 1, 9);
    events.push(serde_json::json!({"event_id": "bad l1", "value": "x"}));
    run_retrying(&p, &raw_batch("l1", events)).await;
    let later = vec![serde_json::json!({"event_id": "bad l2", "value": "y"})];
    let mut batch = raw_batch("l2", later);
    batch.received_at = now() + chrono::Duration::minutes(1);
    p.run_batch(batch, now() + chrono::Duration::minutes(1))
        .await
        .unwrap();
    let listed = p.store().list_quarantine().await.unwrap();
    let ids: Vec<Option<&str>> = listed.iter().map(|q| q.item.event_id.as_deref()).collect();
    assert_eq!(ids, [Some("bad l1"), Some("bad l2")], "oldest first");

    let mut marked = listed[0].clone();
    marked.replayed = Some(pipeline_core::store::Replay {
        at: now(),
        status: pipeline_core::persist::Status::Quarantined,
        batch_id: "replay-x".into(),
    });
    let mut other = listed[0].clone();
    other.batch_id = "not kept".into();
    p.store().put_quarantine(&[other]).await.unwrap();
    let again = p.store().list_quarantine().await.unwrap();
    assert_eq!(again[0], listed[0], "put_quarantine keeps the first write");
    p.store().replace_quarantine(&marked).await.unwrap();
    let again = p.store().list_quarantine().await.unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(again[0], marked, "replace_quarantine overwrites");
    assert_eq!(
        p.store().quarantine_of("bad l1").await.unwrap(),
        vec![marked]
    );
}
