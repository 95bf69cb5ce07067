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

#[test]
fn an_event_is_scored_where_it_was_stored_not_where_an_invalid_line_put_it() {
    // Issue 25, case 11: the entity, time and source of an event were taken from the first raw
    // line with its id, even an invalid one, so the event was scored under the wrong entity
    // (and that line's escape sequences were printed as a stream name).
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let labels = tmp.path().join("labels.jsonl");
    let mut lines = vec![
        // Invalid (the value is text), but it names the id first.
        r#"{"event_id":"e-5","event_type":"metric.cpu","source":"evil\u001b[2J","entity_id":"intruder","occurred_at":"2026-11-01T00:05:00Z","value":"x"}"#.to_owned(),
    ];
    for i in 0..10 {
        lines.push(format!(
            r#"{{"event_id":"e-{i}","event_type":"metric.cpu","source":"host","entity_id":"h-1","occurred_at":"2026-11-01T00:{i:02}:00Z","value":{}}}"#,
            10 + i % 3
        ));
    }
    std::fs::write(&input, lines.join("\n")).unwrap();
    std::fs::write(&labels, r#"{"event_id":"e-5"}"#).unwrap();
    let (input_s, labels_s) = (input.to_str().unwrap(), labels.to_str().unwrap());
    let db = tmp.path().join("p.db");
    let out = tmp.path().join("out.jsonl");
    pipeline(&[
        "run",
        input_s,
        "--db",
        db.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    for extra in [vec![], vec!["--output-of", out.to_str().unwrap()]] {
        let mut args = vec![
            "evaluate",
            input_s,
            "--labels",
            labels_s,
            "--json",
            "--per-entity",
        ];
        args.extend(extra.iter().copied());
        let v: Value = serde_json::from_slice(&pipeline(&args).stdout).unwrap();
        let by_entity = v["is_anomaly"]["by_entity"].as_object().unwrap();
        let by_kind = v["is_anomaly"]["by_kind"].as_object().unwrap();
        assert_eq!(
            by_entity.keys().collect::<Vec<_>>(),
            ["h-1"],
            "{args:?}: {v}"
        );
        assert_eq!(
            by_kind.keys().collect::<Vec<_>>(),
            ["host"],
            "{args:?}: {v}"
        );
        assert_eq!(by_entity["h-1"]["events"], 10, "{args:?}");
    }
    let text =
        String::from_utf8(pipeline(&["evaluate", input_s, "--labels", labels_s]).stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "{text}");
}
