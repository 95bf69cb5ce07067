//! `pipeline watch` and `pipeline send` against a local AWS emulator (moto, started by
//! scripts/test with `eval "$(scripts/moto start)"`): watch reads back metrics put into
//! CloudWatch and an execution of a state machine; send delivers every event exactly once
//! through an EventBridge bus to an SQS queue. Skipped when `AWS_ENDPOINT_URL` is not set,
//! unless `PIPELINE_REQUIRE_AWS=1`.
//!
//! SQS has no Rust SDK in the workspace, so the queue is created and read with boto3 from the
//! Python environment scripts/moto installs (`.venv`, or `PIPELINE_PYTHON`).
//!
//! (A little over 500 lines: the emulator helpers these tests share — boto3 snippets, a
//! private moto server — read best beside the tests that use them.)

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use serde_json::Value;

mod common;

use common::{endpoint, repo};

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn pipeline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs a Python snippet with boto3 against the emulator and parses what it prints as JSON.
fn python(script: &str, args: &[&str]) -> Value {
    let python = std::env::var("PIPELINE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(".venv/bin/python"));
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("AWS_DEFAULT_REGION", region)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/moto start)", python.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn count(v: &Value, key: &str) -> i64 {
    v["metrics"][key]
        .as_i64()
        .unwrap_or_else(|| panic!("metrics.{key} is not an integer: {v}"))
}

async fn create_state_machine(sdk: &aws_config::SdkConfig, name: &str, kind: &str) -> String {
    let sfn = aws_sdk_sfn::Client::new(sdk);
    let definition = r#"{"StartAt":"Done","States":{"Done":{"Type":"Pass","End":true}}}"#;
    sfn.create_state_machine()
        .name(name)
        .definition(definition)
        .role_arn("arn:aws:iam::123456789012:role/pipeline-test")
        .r#type(kind.into())
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_owned()
}

#[tokio::test]
async fn watch_once_json_shows_metrics_and_executions() {
    if endpoint().is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL not set");
        return;
    }
    let id = nanos();
    let sdk = pipeline_aws::sdk_config().await;
    let arn = create_state_machine(&sdk, &format!("watch-{id}"), "STANDARD").await;
    let execution = format!("exec-{id}");
    aws_sdk_sfn::Client::new(&sdk)
        .start_execution()
        .state_machine_arn(&arn)
        .name(&execution)
        .input("{}")
        .send()
        .await
        .unwrap();
    let namespace = format!("PipelineTest{id}");
    let watch = || {
        json_of(&pipeline(&[
            "watch",
            "--once",
            "--json",
            "--namespace",
            &namespace,
            "--state-machine-arn",
            &arn,
        ]))
    };

    // moto (5.x) ignores the namespace of a query that has dimensions, so metrics left by
    // earlier runs on the same server show up in our unique namespace too: compare with a
    // reading taken before our data went in.
    let before = watch();
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
    let datum = |metric: &str, function: &str, value: f64, unit: StandardUnit| {
        MetricDatum::builder()
            .metric_name(metric)
            .dimensions(
                Dimension::builder()
                    .name("Function")
                    .value(function)
                    .build(),
            )
            .value(value)
            .unit(unit)
            .build()
    };
    cloudwatch
        .put_metric_data()
        .namespace(&namespace)
        .metric_data(datum("EventsIn", "ingest", 42.0, StandardUnit::Count))
        .metric_data(datum("Anomalies", "persist", 3.0, StandardUnit::Count))
        .metric_data(datum(
            "EventsQuarantined",
            "validate",
            2.0,
            StandardUnit::Count,
        ))
        .metric_data(datum(
            "EventsQuarantined",
            "enrich",
            1.0,
            StandardUnit::Count,
        ))
        .metric_data(datum(
            "EndToEndLagMs",
            "persist",
            100.0,
            StandardUnit::Milliseconds,
        ))
        .metric_data(datum(
            "EndToEndLagMs",
            "persist",
            300.0,
            StandardUnit::Milliseconds,
        ))
        .send()
        .await
        .unwrap();
    let after = watch();

    assert_eq!(after["window_minutes"], 15);
    assert_eq!(after["namespace"], namespace.as_str());
    for (metric, added) in [("EventsIn", 42), ("Anomalies", 3), ("EventsQuarantined", 3)] {
        assert_eq!(
            count(&after, metric) - count(&before, metric),
            added,
            "{metric}: before {before}\nafter {after}"
        );
    }
    for metric in ["Persisted", "Conflicts"] {
        assert!(after["metrics"][metric].is_i64(), "{metric}: {after}");
    }
    assert!(
        after["metrics"]["EndToEndLagMsAverage"].is_number(),
        "{after}"
    );
    assert!(
        after["metrics"]["EndToEndLagMsMax"].as_f64().unwrap() >= 300.0,
        "{after}"
    );
    // moto has no percentiles: the view still comes, with p99 null and a warning.
    assert!(
        after["metrics"].get("EndToEndLagMsP99").is_some(),
        "{after}"
    );
    assert!(
        after["by_function"]["EventsQuarantined"]["validate"]
            .as_i64()
            .unwrap()
            >= 2
    );

    let machine = &after["state_machine"];
    assert_eq!(machine["arn"], arn.as_str());
    assert_eq!(machine["type"], "STANDARD");
    assert!(
        machine["metrics"]["ExecutionsStarted"].is_i64(),
        "{machine}"
    );
    let executions = after["executions"].as_array().unwrap();
    let ours: Vec<&Value> = executions
        .iter()
        .filter(|x| x["name"] == execution.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "{after}");
    assert!(
        ["RUNNING", "SUCCEEDED"].contains(&ours[0]["status"].as_str().unwrap()),
        "{after}"
    );
    assert!(ours[0]["start"].as_str().unwrap().ends_with('Z'), "{after}");
    assert!(after.get("executions_note").is_none(), "{after}");
}

#[tokio::test]
async fn watch_says_express_executions_are_not_listable() {
    if endpoint().is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL not set");
        return;
    }
    let sdk = pipeline_aws::sdk_config().await;
    let arn = create_state_machine(&sdk, &format!("watch-express-{}", nanos()), "EXPRESS").await;
    let view = json_of(&pipeline(&[
        "watch",
        "--once",
        "--json",
        "--state-machine-arn",
        &arn,
    ]));
    assert_eq!(view["state_machine"]["type"], "EXPRESS");
    assert_eq!(view["executions"], serde_json::json!([]));
    assert!(
        view["executions_note"]
            .as_str()
            .unwrap()
            .contains("not listable"),
        "{view}"
    );
    // The text view says it too.
    let out = pipeline(&["watch", "--once", "--state-machine-arn", &arn]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("not listable"));
}

const CREATE_QUEUE: &str = r#"
import boto3, json, sys
sqs = boto3.client("sqs")
url = sqs.create_queue(QueueName=sys.argv[1])["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
print(json.dumps({"url": url, "arn": arn}))
"#;

const DRAIN_QUEUE: &str = r#"
import boto3, json, sys
sqs = boto3.client("sqs")
bodies, empty = [], 0
while empty < 2:
    msgs = sqs.receive_message(QueueUrl=sys.argv[1], MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    empty = empty + 1 if not msgs else 0
    for m in msgs:
        bodies.append(json.loads(m["Body"]))
        sqs.delete_message(QueueUrl=sys.argv[1], ReceiptHandle=m["ReceiptHandle"])
print(json.dumps(bodies))
"#;

#[tokio::test]
async fn send_delivers_every_event_exactly_once() {
    if endpoint().is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL not set");
        return;
    }
    let id = nanos();
    let bus = format!("ingest-{id}");
    let sdk = pipeline_aws::sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    events.create_event_bus().name(&bus).send().await.unwrap();
    let queue = python(CREATE_QUEUE, &[&format!("tap-{id}")]);
    let rule = format!("tap-{id}");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(r#"{"source": ["com.example.events"], "detail-type": ["business.events"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("tap")
                .arn(queue["arn"].as_str().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let summary = json_of(&pipeline(&[
        "send",
        "events/source/payments-good.jsonl",
        "--bus",
        &bus,
        "--json",
    ]));
    assert_eq!(summary["events"], 9, "{summary}");
    assert_eq!(summary["sent"], 9, "{summary}");
    assert_eq!(summary["events_sent"], 9, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["calls"], 1, "{summary}");
    assert_eq!(summary["failures"], serde_json::json!([]), "{summary}");

    let bodies = python(DRAIN_QUEUE, &[queue["url"].as_str().unwrap()]);
    let mut received: Vec<String> = Vec::new();
    for body in bodies.as_array().unwrap() {
        assert_eq!(body["source"], "com.example.events", "{body}");
        assert_eq!(body["detail-type"], "business.events", "{body}");
        let inside = body["detail"]["events"].as_array().unwrap();
        assert_eq!(inside.len(), 1, "one event per entry by default: {body}");
        received.extend(
            inside
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_owned()),
        );
    }
    received.sort();
    let mut expected: Vec<String> =
        std::fs::read_to_string(repo().join("events/source/payments-good.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["event_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
    expected.sort();
    assert_eq!(expected.len(), 9);
    assert_eq!(received, expected, "every event exactly once");
}

#[tokio::test]
async fn send_packs_several_events_per_entry() {
    if endpoint().is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL not set");
        return;
    }
    let bus = format!("ingest-batch-{}", nanos());
    let sdk = pipeline_aws::sdk_config().await;
    aws_sdk_eventbridge::Client::new(&sdk)
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();
    let summary = json_of(&pipeline(&[
        "send",
        "events/source/payments-good.jsonl",
        "--bus",
        &bus,
        "--events-per-entry",
        "4",
        "--json",
    ]));
    assert_eq!(summary["entries"], 3, "9 events, 4 per entry: {summary}");
    assert_eq!(summary["sent"], 3, "{summary}");
    assert_eq!(summary["events_sent"], 9, "{summary}");
}

#[test]
fn send_to_a_missing_bus_fails_with_the_service_error() {
    if endpoint().is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL not set");
        return;
    }
    let out = pipeline(&[
        "send",
        "events/source/payments-good.jsonl",
        "--bus",
        &format!("no-such-bus-{}", nanos()),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ResourceNotFoundException"), "{stderr}");
}

#[test]
fn watch_without_a_state_machine_says_which_flag_to_set() {
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["watch", "--once"])
        .env_remove("STATE_MACHINE_ARN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--state-machine-arn") && stderr.contains("STATE_MACHINE_ARN"),
        "{stderr}"
    );
}

/// A moto server of this test's own, on a free 127.0.0.1 port, stopped when dropped. The
/// shared server cannot stand for "an emulator without metric data": other tests put metrics
/// into it, and moto ignores the namespace of a query with dimensions.
struct OwnMoto {
    child: std::process::Child,
    url: String,
}

impl OwnMoto {
    fn start() -> Self {
        let bin = repo().join(".venv/bin/moto_server");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/moto start once)", bin.display()));
        let moto = OwnMoto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("moto_server on port {port} did not come up in 30 s");
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_on_an_emulator_without_metrics_says_so_instead_of_printing_zeros() {
    if endpoint().is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL not set");
        return;
    }
    let moto = OwnMoto::start();
    let arn = python(
        r#"
import json, sys
import boto3
sfn = boto3.client("stepfunctions", endpoint_url=sys.argv[1],
                   aws_access_key_id="test", aws_secret_access_key="test")
definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
arn = sfn.create_state_machine(name="quiet", definition=json.dumps(definition),
                               roleArn="arn:aws:iam::123456789012:role/x", type="STANDARD")["stateMachineArn"]
print(json.dumps(arn))
"#,
        &[&moto.url],
    );
    let arn = arn.as_str().unwrap();
    let watch = |json: bool| {
        let mut args = vec!["watch", "--once", "--state-machine-arn", arn];
        if json {
            args.push("--json");
        }
        Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(&args)
            .env("AWS_ENDPOINT_URL", &moto.url)
            .current_dir(repo())
            .output()
            .unwrap()
    };
    let view = json_of(&watch(true));
    let note = view["metrics_note"]
        .as_str()
        .unwrap_or_else(|| panic!("no metrics_note: {view}"));
    assert!(note.contains("no metric data"), "{note}");
    assert!(note.contains("unknown, not zero"), "{note}");
    let text = watch(false);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("no metric data"), "{text}");
}
