//! `pipeline run --store dynamodb --create-tables` twice against a DynamoDB-API server
//! (moto, started by scripts/test): the second run writes nothing and the tables are identical.
//! Skipped when `AWS_ENDPOINT_URL` is not set, unless `PIPELINE_REQUIRE_AWS=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use pipeline_core::store::Store;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn endpoint() -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(e) if !e.is_empty() => Some(e),
        _ if std::env::var("PIPELINE_REQUIRE_AWS").is_ok_and(|v| v == "1") => {
            panic!("PIPELINE_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set")
        }
        _ => None,
    }
}

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
