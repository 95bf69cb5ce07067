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

#[test]
fn evaluate_nab_scores_a_corpus_in_nabs_layout() {
    let out = pipeline(&[
        "evaluate",
        "--nab",
        "events/nab-sample",
        "--json",
        "--sweep",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The three totals, under NAB's profile names.
    for name in ["standard", "reward_low_FP_rate", "reward_low_FN_rate"] {
        let score = v["profiles"][name].as_f64().unwrap();
        assert!((-1000.0..=100.0).contains(&score), "{name}: {score}");
        // The normalisation NAB's runner applies to the raw total.
        let t = &v["total"];
        let (raw, null, perfect) = (
            t["raw"][name].as_f64().unwrap(),
            t["null"][name].as_f64().unwrap(),
            t["perfect"][name].as_f64().unwrap(),
        );
        assert!((score - 100.0 * (raw - null) / (perfect - null)).abs() < 1e-9);
    }
    let streams = v["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2);
    let spiky = streams
        .iter()
        .find(|s| s["stream"] == "spiky/one_spike.csv")
        .unwrap();
    assert_eq!(spiky["rows"], 400);
    assert_eq!(spiky["probation"], 60);
    assert_eq!(spiky["windows"], 1);
    // The spike at row 300 is found inside its window (rows 290–309).
    assert_eq!(spiky["windows_found"], 1, "{spiky}");
    assert_eq!(v["groups"]["quiet"]["windows"], 0);
    assert!(v["sweep"]["standard"].is_object());
    assert_eq!(v["unscored_rows"], 0);

    let table = pipeline(&["evaluate", "--nab", "events/nab-sample"]);
    let text = String::from_utf8(table.stdout).unwrap();
    for needle in [
        "spiky/one_spike.csv",
        "quiet",
        "total",
        "NAB score (is_anomaly)",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
}

#[test]
fn evaluate_nab_refuses_labels_for_a_stream_it_does_not_have() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path();
    std::fs::create_dir_all(corpus.join("data/g")).unwrap();
    std::fs::create_dir_all(corpus.join("labels")).unwrap();
    std::fs::write(
        corpus.join("data/g/a.csv"),
        "timestamp,value\n2015-01-01 00:00:00,1\n",
    )
    .unwrap();
    std::fs::write(
        corpus.join("labels/combined_windows.json"),
        r#"{"g/a.csv": [], "g/missing.csv": [["2015-01-01 00:00:00.000000", "2015-01-01 01:00:00.000000"]]}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["evaluate", "--nab", corpus.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("g/missing.csv"), "{err}");
}
