//! What the `pipeline` command's integration tests share: the repository root, and running the
//! built binary there with the run required to succeed.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pipeline_core::store::StoreDump;
use serde_json::Value;

/// The repository root (where `events/` is).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The emulator the AWS tests talk to (`AWS_ENDPOINT_URL`, set by scripts/test); `None` skips
/// them, unless `PIPELINE_REQUIRE_AWS=1` says they must run.
pub fn endpoint() -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(e) if !e.is_empty() => Some(e),
        _ if std::env::var("PIPELINE_REQUIRE_AWS").is_ok_and(|v| v == "1") => {
            panic!("PIPELINE_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set")
        }
        _ => None,
    }
}

/// Runs `pipeline ARGS` in the repository root; fails the test with its output unless it
/// succeeds.
pub fn pipeline(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pipeline {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A record without its wall-clock fields.
pub fn comparable(mut r: Value) -> Value {
    if let Some(o) = r.as_object_mut() {
        o.remove("first_persisted_at");
        o.remove("last_persisted_at");
    }
    if let Some(e) = r.pointer_mut("/enrichment").and_then(Value::as_object_mut) {
        e.remove("ingestion_lag_ms");
    }
    r
}

/// Asserts that two stores hold the same records, entity states and quarantine entries.
pub fn assert_same(clean: &StoreDump, other: &StoreDump, what: &str) {
    let records = |d: &StoreDump| -> BTreeMap<String, Value> {
        d.events
            .iter()
            .map(|r| {
                (
                    r.event_id.clone(),
                    comparable(serde_json::to_value(r).unwrap()),
                )
            })
            .collect()
    };
    let (a, b) = (records(clean), records(other));
    assert_eq!(a.len(), b.len(), "{what}: number of records");
    for (id, rec) in &a {
        assert_eq!(Some(rec), b.get(id), "{what}: record {id}");
    }
    assert_eq!(clean.entities, other.entities, "{what}: entity states");
    let quarantine = |d: &StoreDump| -> BTreeMap<String, Vec<String>> {
        d.quarantine
            .iter()
            .map(|q| {
                let codes = q.item.reasons.iter().map(|r| r.code.clone()).collect();
                (q.quarantine_id.clone(), codes)
            })
            .collect()
    };
    assert_eq!(quarantine(clean), quarantine(other), "{what}: quarantine");
}
