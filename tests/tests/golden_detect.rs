//! Golden tests for detection: each `tests/golden/detect/<case>.jsonl` stream is run through
//! validate → enrich → detect → persist in batches of ten on a fresh embedded store, and the
//! per-event verdicts are compared with `<case>.expected.json`. Set `UPDATE_GOLDEN=1` to
//! rewrite the expected files after an intended change, then review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::Path;

use pipeline_handlers::{Config, Pipeline};
use pipeline_ingest as ingest;
use pipeline_ingest::SplitLimits;
use pipeline_sqlite::SqliteStore;
use pipeline_tests::fixtures::{now, repo_root};
use serde_json::{Value, json};

async fn verdicts(stream: &Path) -> Value {
    let text = fs::read_to_string(stream).unwrap();
    let p = Pipeline::new(
        Config::defaults().unwrap(),
        SqliteStore::in_memory().unwrap(),
    )
    .unwrap()
    .with_limits(SplitLimits {
        max_events: 10,
        ..SplitLimits::default()
    });
    let items = ingest::decode_lines("golden", text.lines().enumerate().map(|(i, l)| (i + 1, l)));
    let mut out = Vec::new();
    for batch in p.split(items, now()) {
        let scored = p.detect(p.enrich(p.validate(batch))).await.unwrap();
        for e in &scored.events {
            let mut v = json!({
                "event_id": e.event.event_id,
                "is_anomaly": e.detection.is_anomaly,
                "score": e.detection.score,
                "reasons": e.detection.reasons,
            });
            // The incident an anomalous event belongs to, and one its time closed.
            if let Some(i) = &e.detection.incident {
                v["incident"] = json!(i);
            }
            if let Some(c) = &e.detection.closes {
                v["closes"] = json!(c);
            }
            out.push(v);
        }
        assert!(
            scored.quarantine.is_empty(),
            "golden streams are valid: {:?}",
            scored.quarantine
        );
        p.persist(scored, now()).await.unwrap();
    }
    Value::Array(out)
}

#[tokio::test]
async fn detection_matches_golden_files() {
    let dir = repo_root().join("tests/golden/detect");
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    cases.retain(|p| p.extension().is_some_and(|x| x == "jsonl"));
    cases.sort();
    assert!(
        cases.len() >= 6,
        "golden cases missing in {}",
        dir.display()
    );
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for case in cases {
        let got = verdicts(&case).await;
        let expected_path = case.with_extension("expected.json");
        if update {
            fs::write(
                &expected_path,
                serde_json::to_string_pretty(&got).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let expected: Value =
            serde_json::from_str(&fs::read_to_string(&expected_path).unwrap_or_else(|_| {
                panic!(
                    "{} missing: run with UPDATE_GOLDEN=1 and review it",
                    expected_path.display()
                )
            }))
            .unwrap();
        if got != expected {
            failures.push(format!(
                "{}:\nexpected {}\n     got {}",
                case.display(),
                serde_json::to_string(&expected).unwrap(),
                serde_json::to_string(&got).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
