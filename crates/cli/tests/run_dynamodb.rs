//! `pipeline run --store dynamodb --create-tables` twice against a DynamoDB-API server
//! (moto, started by scripts/test): the second run writes nothing and the tables are identical.
//! Skipped when `AWS_ENDPOINT_URL` is not set, unless `PIPELINE_REQUIRE_AWS=1`.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use serde_json::Value;

mod common;

use common::{endpoint, repo};
use pipeline_core::store::Inspect;

fn run(tables: &pipeline_aws::Tables) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args([
            "run",
            "events/streams/transactions.jsonl",
            "--store",
            "dynamodb",
            "--create-tables",
            "--json",
        ])
        .args([
            "--events-table",
            &tables.events,
            "--entities-table",
            &tables.entities,
        ])
        .args(["--quarantine-table", &tables.quarantine])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn run_twice_on_dynamodb_changes_nothing() {
    if endpoint().is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL not set (run via scripts/test)");
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tables = pipeline_aws::Tables::with_prefix(&format!("cli{nanos}"));
    let first = run(&tables);
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap();
    assert!(first["reconciled"].as_bool().unwrap());
    assert!(n(&first, "persisted") > 2500, "{first}");
    let store = pipeline_aws::DynamoStore::new(&pipeline_aws::sdk_config().await, tables.clone());
    let after_first = store.dump().await.unwrap();
    assert_eq!(after_first.events.len() as u64, n(&first, "persisted"));

    let second = run(&tables);
    assert!(second["reconciled"].as_bool().unwrap());
    for k in ["persisted", "updated", "conflict", "anomalies"] {
        assert_eq!(n(&second, k), 0, "second run {k}: {second}");
    }
    assert_eq!(
        n(&second, "duplicate") + n(&second, "stale") + n(&second, "quarantined"),
        n(&second, "input")
    );
    assert_eq!(
        store.dump().await.unwrap(),
        after_first,
        "the second run changed the tables"
    );
}

#[test]
fn create_tables_refuses_real_aws_without_consent() {
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args([
            "run",
            "events/source/payments-good.jsonl",
            "--store",
            "dynamodb",
            "--create-tables",
        ])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("real AWS account"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pipeline ARGS` (which must succeed), its stdout as text.
fn stdout(args: &[&str]) -> String {
    String::from_utf8(common::pipeline(args).stdout).unwrap()
}

/// `show`, `anomalies` and `report` read DynamoDB with `--store dynamodb` and print what they
/// print for the embedded store after the same run: same anomalies, same record summary, same
/// quarantine reasons, same report charts.
#[tokio::test]
async fn show_anomalies_and_report_read_dynamodb_like_the_embedded_store() {
    if endpoint().is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL not set (run via scripts/test)");
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tables = pipeline_aws::Tables::with_prefix(&format!("inspect{nanos}"));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let db = db.to_str().unwrap();
    let inputs = [
        "events/source/payments-good.jsonl",
        "events/source/payments-bad.jsonl",
    ];
    let dynamo: Vec<&str> = vec![
        "--store",
        "dynamodb",
        "--events-table",
        &tables.events,
        "--entities-table",
        &tables.entities,
        "--quarantine-table",
        &tables.quarantine,
    ];
    let embedded = ["--db", db];
    stdout(&[&["run"][..], &inputs, &dynamo, &["--create-tables"]].concat());
    stdout(&[&["run"][..], &inputs, &embedded].concat());

    let from_dynamo = stdout(&[&["anomalies", "--json"][..], &dynamo].concat());
    let from_sqlite = stdout(&[&["anomalies", "--json"][..], &embedded].concat());
    assert!(!from_dynamo.trim().is_empty(), "the sample has an anomaly");
    assert_eq!(from_dynamo, from_sqlite);

    let show = |args: &[&str]| -> Value { serde_json::from_str(&stdout(args)).unwrap() };
    for id in ["evt-demo-001", "evt-bad-001"] {
        let d = show(&[&["show", id][..], &dynamo].concat());
        let s = show(&[&["show", id][..], &embedded].concat());
        assert_eq!(d["record"], s["record"], "{id}");
        let reasons = |v: &Value| -> Vec<Value> {
            v["quarantine"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| q["item"]["reasons"].clone())
                .collect()
        };
        assert_eq!(reasons(&d), reasons(&s), "{id}");
    }
    let bad = show(&[&["show", "evt-bad-001"][..], &dynamo].concat());
    assert_eq!(bad["quarantine"].as_array().unwrap().len(), 1, "{bad}");
    assert!(bad["record"].is_null());

    // The HTML report draws the same entities, marks and flags from either store (the
    // summary differs only in when things were written, so the entity sections are compared).
    let page = |store: &[&str], name: &str| -> String {
        let path = dir.path().join(name);
        let path = path.to_str().unwrap();
        stdout(&[&["report", "-o", path][..], store].concat());
        let html = std::fs::read_to_string(path).unwrap();
        let at = html.find("<section id=\"entities\">").unwrap();
        html[at..].to_owned()
    };
    let from_dynamo = page(&dynamo, "dynamo.html");
    assert_eq!(from_dynamo, page(&embedded, "sqlite.html"));
    assert!(
        from_dynamo.contains("class=\"mark\""),
        "an anomaly is marked"
    );
}
