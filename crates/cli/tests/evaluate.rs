//! `pipeline evaluate` and the benchmark corpus: the shipped corpus is exactly what the
//! generator writes, and evaluating a run's output gives the same figures as evaluating by
//! running the chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{pipeline, repo};
use serde_json::Value;

#[test]
fn shipped_corpus_is_what_the_generator_writes() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in ["metric", "business", "clean"] {
        let events = tmp.path().join(format!("{kind}.jsonl"));
        let labels = tmp.path().join(format!("{kind}.labels.jsonl"));
        pipeline(&[
            "generate",
            "--benchmark",
            kind,
            "--seed",
            "1",
            "-o",
            events.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
        ]);
        for (made, shipped) in [
            (&events, format!("events/benchmarks/{kind}.jsonl")),
            (&labels, format!("events/benchmarks/{kind}.labels.jsonl")),
        ] {
            let a = std::fs::read(made).unwrap();
            let b = std::fs::read(repo().join(&shipped)).unwrap();
            assert!(
                a == b,
                "{shipped} differs from `pipeline generate --benchmark {kind} --seed 1`: regenerate it"
            );
        }
    }
}

#[test]
fn evaluate_by_running_the_chain_equals_evaluating_a_run_output() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let out = tmp.path().join("out.jsonl");
    let input = "events/streams/transactions.jsonl";
    let labels = "events/streams/transactions.labels.jsonl";
    pipeline(&[
        "run",
        input,
        "--db",
        db.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--json",
    ]);
    let chain: Value = serde_json::from_slice(
        &pipeline(&["evaluate", input, "--labels", labels, "--json", "--sweep"]).stdout,
    )
    .unwrap();
    let from_output: Value = serde_json::from_slice(
        &pipeline(&[
            "evaluate",
            input,
            "--labels",
            labels,
            "--output-of",
            out.to_str().unwrap(),
            "--json",
            "--sweep",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(chain["is_anomaly"], from_output["is_anomaly"]);
    assert_eq!(chain["sweep"], from_output["sweep"]);
    let total = &chain["is_anomaly"]["total"];
    // The planted anomalies of the sample stream: failure bursts, spikes and new countries
    // (corrections, redeliveries and malformed lines are delivery labels, not anomalies).
    let (found, windows) = (
        total["windows_detected"].as_u64().unwrap(),
        total["windows"].as_u64().unwrap(),
    );
    assert!(windows >= 20, "{total}");
    assert!(found as f64 >= 0.9 * windows as f64, "{total}");
    assert!(total["score_standard"].as_f64().unwrap() > 75.0, "{total}");
    assert!(total["fp_per_1000"].as_f64().unwrap() <= 1.0, "{total}");
}

#[test]
fn evaluate_prints_a_table() {
    let out = pipeline(&[
        "evaluate",
        "events/streams/transactions.jsonl",
        "--labels",
        "events/streams/transactions.labels.jsonl",
        "--per-entity",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "standard",
        "low_fp",
        "low_fn",
        "card-gateway",
        "acct-0001",
        "total",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
}
