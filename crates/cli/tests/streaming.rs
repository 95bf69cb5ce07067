//! `pipeline run` streams its input, validates on a reader thread, and commits in groups; the
//! way it ran before (the whole input decoded and cut in memory, then every batch through
//! [`Pipeline::run_batch`] on a store that commits every call) is kept here as the reference.
//! Both must end with the same outcomes, in the same order, and the same stored records,
//! entity states and quarantine entries: on the sample stream, and on a generated stream with
//! redeliveries, corrections and bad lines (10,000 events by default;
//! `PIPELINE_COMPARE_EVENTS=200000 cargo test --release -p pipeline-cli --test streaming` for
//! the 200k comparison).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use chrono::Utc;
use common::{assert_same, pipeline};
use pipeline_core::store::Inspect;
use pipeline_handlers::{Config, Pipeline};
use pipeline_ingest::{self as ingest, SplitLimits};
use pipeline_sqlite::SqliteStore;
use serde_json::Value;

/// What an outcome line says that does not depend on the wall clock: event id, status, score,
/// anomaly flag and reason codes (messages quote the batch's receive time).
fn outcome(v: &Value) -> Value {
    let codes: Vec<Value> = v["reasons"]
        .as_array()
        .map(|rs| rs.iter().map(|r| r["code"].clone()).collect())
        .unwrap_or_default();
    serde_json::json!([
        v["event_id"],
        v["status"],
        v["score"],
        v["is_anomaly"],
        codes
    ])
}

/// The reference: the input decoded and cut whole, each batch through all stages on a store
/// without group commit.
async fn reference(input: &str, db: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(input).unwrap();
    let items = ingest::decode_lines(input, text.lines().enumerate().map(|(i, l)| (i + 1, l)));
    let batches = ingest::split(items, Utc::now(), SplitLimits::default());
    let p = Pipeline::new(Config::from_env().unwrap(), SqliteStore::open(db).unwrap()).unwrap();
    let mut out = Vec::new();
    for b in batches {
        let report = p.run_batch(b, Utc::now()).await.unwrap();
        for o in &report.outcomes {
            out.push(outcome(&serde_json::to_value(o).unwrap()));
        }
    }
    out
}

async fn compare(input: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (old_db, new_db) = (dir.path().join("old.db"), dir.path().join("new.db"));
    let expected = reference(input, &old_db).await;

    let output = dir.path().join("out.jsonl");
    pipeline(&[
        "run",
        input,
        "--db",
        new_db.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let got: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| outcome(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(got.len(), expected.len(), "{input}: number of outcomes");
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "{input}: outcome {i}");
    }
    let old = SqliteStore::open(&old_db).unwrap().dump().await.unwrap();
    let new = SqliteStore::open(&new_db).unwrap().dump().await.unwrap();
    assert!(!old.events.is_empty() && !old.quarantine.is_empty());
    assert_same(&old, &new, input);
}

#[tokio::test]
async fn the_sample_stream_ends_as_before() {
    let sample = common::repo().join("events/streams/transactions.jsonl");
    compare(sample.to_str().unwrap()).await;
}

#[tokio::test]
async fn a_generated_stream_ends_as_before() {
    let events: usize = std::env::var("PIPELINE_COMPARE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.jsonl");
    pipeline(&[
        "generate",
        "--events",
        &events.to_string(),
        "--entities",
        "500",
        "--seed",
        "11",
        "-o",
        path.to_str().unwrap(),
    ]);
    compare(path.to_str().unwrap()).await;
}
