//! `pipeline watch` on an Express state machine and `pipeline logs`, against CloudWatch Logs on
//! a local emulator (moto, started by scripts/test). Skipped when `AWS_ENDPOINT_URL` is not
//! set, unless `PIPELINE_REQUIRE_AWS=1`.
//!
//! The log groups hold what a deployment's hold:
//! - the functions' lines, as the functions wrote them: `fixtures/function-logs.jsonl` was
//!   captured from the local stack (`scripts/local-aws`) for two executions, one clean and one
//!   whose enrich stage failed by fault injection until the state machine quarantined it
//!   (captured before the lines carried their own `timestamp`, which neither command reads:
//!   both go by CloudWatch's event time);
//! - the state machine's history events for the same two executions, in the JSON shape Step
//!   Functions writes to an Express machine's log group at level ALL without execution data
//!   (moto does not write them itself).

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_sfn::types::{CloudWatchLogsLogGroup, LogDestination, LogLevel, LoggingConfiguration};
use serde_json::Value;

const CLEAN: &str = "b-5eba357aa2c6426b-1795837262996";
const FAULTY: &str = "b-d386cfb6d66a0c24-1795837279594";
const FAULTY_BATCH: &str = "b-d386cfb6d66a0c24";

mod common;

use common::{endpoint, repo};

fn pipeline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(args)
        .current_dir(repo())
        .env_remove("PIPELINE_STACK")
        .env_remove("STATE_MACHINE_ARN")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// One Step Functions log event of an Express execution, as written at level ALL.
fn history_event(execution: &str, id: u32, kind: &str, t_ms: i64, details: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"{kind}","details":{details},"previous_event_id":"{}","event_timestamp":"{t_ms}","execution_arn":"arn:aws:states:us-east-1:123456789012:express:pipeline:{execution}:0b1c","redrive_count":"0"}}"#,
        id.saturating_sub(1)
    )
}

/// The state machine's events for the two executions: the clean one runs the four stages; the
/// faulty one fails enrich twice, is caught by EnrichFailed and quarantined.
fn machine_events(t0: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut push = |exec: &str, id: u32, kind: &str, dt: i64, details: &str| {
        out.push((t0 + dt, history_event(exec, id, kind, t0 + dt, details)));
    };
    push(
        CLEAN,
        1,
        "ExecutionStarted",
        0,
        r#"{"roleArn":"arn:aws:iam::123456789012:role/r"}"#,
    );
    let mut id = 2;
    for (i, state) in ["Validate", "Enrich", "Detect", "Persist"]
        .iter()
        .enumerate()
    {
        let dt = 10 + 100 * i as i64;
        push(
            CLEAN,
            id,
            "TaskStateEntered",
            dt,
            &format!(r#"{{"name":"{state}"}}"#),
        );
        push(
            CLEAN,
            id + 1,
            "LambdaFunctionScheduled",
            dt + 1,
            r#"{"resource":"arn:aws:lambda:us-east-1:123456789012:function:f"}"#,
        );
        push(CLEAN, id + 2, "LambdaFunctionStarted", dt + 2, "{}");
        push(CLEAN, id + 3, "LambdaFunctionSucceeded", dt + 50, "{}");
        push(
            CLEAN,
            id + 4,
            "TaskStateExited",
            dt + 51,
            &format!(r#"{{"name":"{state}"}}"#),
        );
        id += 5;
    }
    push(CLEAN, id, "ExecutionSucceeded", 460, "{}");

    let failed = r#"{"error":"Pipeline.Retryable.InjectedFault","cause":"{\"errorType\":\"Pipeline.Retryable.InjectedFault\"}"}"#;
    let faulty: [(&str, i64, &str); 10] = [
        ("ExecutionStarted", 0, "{}"),
        ("TaskStateEntered", 10, r#"{"name":"Validate"}"#),
        ("TaskStateExited", 60, r#"{"name":"Validate"}"#),
        ("TaskStateEntered", 61, r#"{"name":"Enrich"}"#),
        ("LambdaFunctionFailed", 90, failed),
        ("LambdaFunctionFailed", 2_100, failed),
        ("TaskStateExited", 2_101, r#"{"name":"Enrich"}"#),
        ("PassStateEntered", 2_102, r#"{"name":"EnrichFailed"}"#),
        ("TaskStateEntered", 2_103, r#"{"name":"QuarantineBatch"}"#),
        ("ExecutionSucceeded", 2_300, "{}"),
    ];
    for (i, (kind, dt, details)) in faulty.into_iter().enumerate() {
        push(FAULTY, i as u32 + 1, kind, 1_000 + dt, details);
    }
    out
}

/// The SDK configuration, a CloudWatch Logs client, and a stack name no other test uses.
async fn fresh(
    prefix: &str,
) -> (
    aws_config::SdkConfig,
    aws_sdk_cloudwatchlogs::Client,
    String,
) {
    let sdk = pipeline_aws::sdk_config().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (sdk, logs, format!("{prefix}{nanos}"))
}

/// Puts `events` into a new `stream` of `group` (created if missing).
async fn put(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    events: &[(i64, String)],
) {
    let _ = logs.create_log_group().log_group_name(group).send().await;
    logs.create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap();
    let events: Vec<InputLogEvent> = events
        .iter()
        .map(|(t, m)| {
            InputLogEvent::builder()
                .timestamp(*t)
                .message(m)
                .build()
                .unwrap()
        })
        .collect();
    logs.put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events))
        .send()
        .await
        .unwrap();
}

/// An Express state machine named `stack` that logs at ALL, without execution data, into
/// `group`, as the template configures it (moto writes no events itself).
async fn express_machine(sdk: &aws_config::SdkConfig, stack: &str, group: &str) -> String {
    let sfn = aws_sdk_sfn::Client::new(sdk);
    let logging = LoggingConfiguration::builder()
        .level(LogLevel::All)
        .include_execution_data(false)
        .destinations(
            LogDestination::builder()
                .cloud_watch_logs_log_group(
                    CloudWatchLogsLogGroup::builder()
                        .log_group_arn(format!(
                            "arn:aws:logs:us-east-1:123456789012:log-group:{group}:*"
                        ))
                        .build(),
                )
                .build(),
        )
        .build();
    sfn.create_state_machine()
        .name(stack)
        .definition(r#"{"StartAt":"Done","States":{"Done":{"Type":"Pass","End":true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/pipeline-test")
        .r#type("EXPRESS".into())
        .logging_configuration(logging)
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_owned()
}

#[tokio::test]
async fn express_executions_and_batch_logs_come_from_cloudwatch_logs() {
    if endpoint().is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL not set (run via scripts/test)");
        return;
    }
    let (sdk, logs, stack) = fresh("logs").await;
    // A minute ago, so that the default windows (15 min, 1 h) hold everything.
    let t0 = chrono::Utc::now().timestamp_millis() - 60_000;

    // The functions' lines into their log groups, in the order they were written: the clean
    // execution's around t0 + 0..460, the faulty one's around t0 + 1000..3300.
    let text =
        std::fs::read_to_string(repo().join("crates/cli/tests/fixtures/function-logs.jsonl"))
            .unwrap();
    let mut by_group: std::collections::BTreeMap<String, Vec<(i64, String)>> = Default::default();
    let (mut clean_t, mut faulty_t) = (t0 + 5, t0 + 1_005);
    for line in text.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        let function = doc["span"]["function"].as_str().unwrap();
        let execution = doc["span"]["execution"]
            .as_str()
            .or(doc["execution"].as_str())
            .unwrap();
        let t = if execution == CLEAN {
            &mut clean_t
        } else {
            &mut faulty_t
        };
        *t += 37;
        by_group
            .entry(format!("/aws/lambda/{stack}-{function}"))
            .or_default()
            .push((*t, line.to_owned()));
    }
    for (group, events) in &by_group {
        put(&logs, group, "s", events).await;
    }
    let machine_group = format!("/aws/vendedlogs/states/{stack}-pipeline");
    put(&logs, &machine_group, "s", &machine_events(t0)).await;

    let arn = express_machine(&sdk, &stack, &machine_group).await;

    // watch: both executions, newest first, from the log group the machine names; the stack
    // (for persist's counts) read off that group's name.
    let view: Value = serde_json::from_str(&ok(&pipeline(&[
        "watch",
        "--once",
        "--json",
        "--state-machine-arn",
        &arn,
    ])))
    .unwrap();
    assert!(view.get("executions_note").is_none(), "{view}");
    let xs = view["executions"].as_array().unwrap();
    let names: Vec<&str> = xs.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, [FAULTY, CLEAN], "{view}");
    let (faulty, clean) = (&xs[0], &xs[1]);
    assert_eq!(faulty["status"], "SUCCEEDED");
    assert_eq!(faulty["failed_stage"], "enrich");
    assert_eq!(faulty["error"], "Pipeline.Retryable.InjectedFault");
    assert_eq!(faulty["counts"]["input"], 3);
    assert_eq!(faulty["counts"]["quarantined"], 3);
    assert_eq!(clean["status"], "SUCCEEDED");
    assert!(clean.get("failed_stage").is_none(), "{clean}");
    assert_eq!(clean["counts"]["input"], 9);
    assert_eq!(clean["counts"]["persisted"], 9);
    let start = chrono::DateTime::parse_from_rfc3339(clean["start"].as_str().unwrap()).unwrap();
    let stop = chrono::DateTime::parse_from_rfc3339(clean["stop"].as_str().unwrap()).unwrap();
    assert_eq!((stop - start).num_milliseconds(), 460);
    // The text view shows the same.
    let text = ok(&pipeline(&["watch", "--once", "--state-machine-arn", &arn]));
    let row = text.lines().find(|l| l.contains(FAULTY)).unwrap();
    assert!(
        row.contains("enrich") && row.contains("InjectedFault") && row.contains("3/0/3"),
        "{row}"
    );

    // logs --batch: the faulty batch's lines from every function it reached and the machine's
    // events, in time order; nothing of the clean batch.
    let out = ok(&pipeline(&[
        "logs",
        "--batch",
        FAULTY_BATCH,
        "--stack",
        &stack,
    ]));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sources: Vec<&str> = lines
        .iter()
        .map(|l| l["source"].as_str().unwrap())
        .collect();
    let functions: Vec<&str> = sources.iter().copied().filter(|s| *s != "states").collect();
    assert_eq!(
        functions,
        [
            "ingest", "ingest", "validate", "enrich", "enrich", "enrich", "enrich", "persist",
            "persist"
        ],
        "{out}"
    );
    assert_eq!(
        sources.iter().filter(|s| **s == "states").count(),
        10,
        "{out}"
    );
    let times: Vec<&str> = lines
        .iter()
        .map(|l| l["timestamp"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "time order: {times:?}"
    );
    assert!(!out.contains(CLEAN), "{out}");

    // logs --event: the one line naming the event; --execution reads the stack off the machine.
    let out = ok(&pipeline(&[
        "logs",
        "--event",
        "evt-demo-007",
        "--state-machine-arn",
        &arn,
    ]));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("anomaly scored"), "{out}");
    let out = ok(&pipeline(&[
        "logs",
        "--execution",
        CLEAN,
        "--stack",
        &stack,
    ]));
    let n = out
        .lines()
        .filter(|l| !l.contains(r#""source":"states""#))
        .count();
    assert_eq!(n, 7, "{out}");

    // An id nobody logged is an error that says where it looked.
    let out = pipeline(&["logs", "--batch", "b-nobody", "--stack", &stack]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no log line of batch b-nobody"));
}

/// `--follow` prints what is already there, then lines that arrive later (also those stamped
/// before lines already printed), once each.
#[tokio::test]
async fn follow_prints_new_lines_as_they_arrive() {
    if endpoint().is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL not set (run via scripts/test)");
        return;
    }
    let (_, logs, stack) = fresh("follow").await;
    let group = format!("/aws/lambda/{stack}-validate");
    let line = |n: u32| {
        format!(
            r#"{{"level":"INFO","message":"stage done {n}","span":{{"function":"validate","batch_id":"b-f","execution":"b-f-1"}}}}"#
        )
    };
    let now = chrono::Utc::now().timestamp_millis();
    put(&logs, &group, "s", &[(now - 2_000, line(1))]).await;

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args([
            "logs", "--batch", "b-f", "--follow", "--json", "--stack", &stack,
        ])
        .current_dir(repo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let wait = std::time::Duration::from_secs(30);
    let first = rx.recv_timeout(wait).expect("the existing line");
    assert!(first.contains("stage done 1"), "{first}");

    // A line that arrives later, into a second stream of the same group.
    let now = chrono::Utc::now().timestamp_millis();
    put(&logs, &group, "t", &[(now, line(2))]).await;
    let second = rx.recv_timeout(wait).expect("the new line");
    assert!(second.contains("stage done 2"), "{second}");

    // A line delivered late: stamped 40 s before the newest line printed, put after it.
    put(&logs, &group, "u", &[(now - 40_000, line(3))]).await;
    let late = rx.recv_timeout(wait);
    let _ = child.kill();
    let _ = child.wait();
    let late = late.expect("the line delivered late");
    assert!(late.contains("stage done 3"), "{late}");
    // Nothing was printed twice while following.
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().all(|l| !l.contains("stage done")), "{rest:?}");
}

#[tokio::test]
async fn watch_shows_the_newest_executions_and_no_start_it_did_not_read() {
    if endpoint().is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL not set (run via scripts/test)");
        return;
    }
    let (sdk, logs, stack) = fresh("busy").await;
    let now = chrono::Utc::now().timestamp_millis();
    let minute = 60_000;
    // Twelve executions, one a minute over the last 13 minutes, each done in 2 s; and one that
    // started 20 minutes ago (before the 15-minute window) and ended 10 minutes ago.
    let mut events = Vec::new();
    let mut push = |exec: &str, id: u32, kind: &str, t: i64, details: &str| {
        events.push((t, history_event(exec, id, kind, t, details)));
    };
    for i in 0..12 {
        let t = now - (13 - i) * minute;
        let exec = format!("b-busy{i:02}-{t}");
        push(&exec, 1, "ExecutionStarted", t, "{}");
        push(
            &exec,
            2,
            "TaskStateEntered",
            t + 10,
            r#"{"name":"Validate"}"#,
        );
        push(&exec, 3, "ExecutionSucceeded", t + 2_000, "{}");
    }
    let long = format!("b-long-{}", now - 20 * minute);
    push(&long, 1, "ExecutionStarted", now - 20 * minute, "{}");
    push(
        &long,
        30,
        "TaskStateEntered",
        now - 11 * minute,
        r#"{"name":"Persist"}"#,
    );
    push(&long, 31, "ExecutionSucceeded", now - 10 * minute, "{}");
    events.sort_by_key(|(t, _)| *t);
    let machine_group = format!("/aws/vendedlogs/states/{stack}-pipeline");
    put(&logs, &machine_group, "s", &events).await;
    let arn = express_machine(&sdk, &stack, &machine_group).await;

    let watch = |n: &str| -> Value {
        serde_json::from_str(&ok(&pipeline(&[
            "watch",
            "--once",
            "--json",
            "--executions",
            n,
            "--state-machine-arn",
            &arn,
        ])))
        .unwrap()
    };
    let view = watch("3");
    let xs = view["executions"].as_array().unwrap();
    let names: Vec<&str> = xs.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{view}");
    for (x, i) in xs.iter().zip([11, 10, 9]) {
        assert!(
            x["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("b-busy{i:02}-")),
            "{view}"
        );
        assert_eq!(x["status"], "SUCCEEDED", "{x}");
        let start = chrono::DateTime::parse_from_rfc3339(x["start"].as_str().unwrap()).unwrap();
        let stop = chrono::DateTime::parse_from_rfc3339(x["stop"].as_str().unwrap()).unwrap();
        assert_eq!((stop - start).num_milliseconds(), 2_000, "{x}");
    }

    // Every execution: the long one last, finished, without the start nobody read.
    let view = watch("20");
    let xs = view["executions"].as_array().unwrap();
    assert_eq!(xs.len(), 13, "{view}");
    let last = &xs[12];
    assert_eq!(last["name"].as_str(), Some(long.as_str()), "{view}");
    assert_eq!(last["status"], "SUCCEEDED");
    assert!(last.get("start").is_none_or(Value::is_null), "{last}");
    assert!(last["stop"].is_string(), "{last}");
}
