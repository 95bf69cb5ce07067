//! The state machine definition agrees with the error contract: every Task retries exactly the
//! transient errors (Lambda service errors and every `Pipeline.Retryable.*` name), never a
//! fatal one, and catches everything else into the quarantine path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use pipeline_core::{Error, ErrorClass};
use pipeline_tests::fixtures::repo_root;
use serde_json::Value;

fn asl() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("statemachines/pipeline.asl.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn stage_tasks_retry_transient_errors_and_catch_the_rest() {
    let asl = asl();
    let states = asl["States"].as_object().unwrap();
    let retryable: BTreeSet<&str> = Error::ALL_ERROR_TYPES
        .iter()
        .filter(|(_, c)| *c == ErrorClass::Retryable)
        .map(|(n, _)| *n)
        .collect();
    let fatal: BTreeSet<&str> = Error::ALL_ERROR_TYPES
        .iter()
        .filter(|(_, c)| *c == ErrorClass::Fatal)
        .map(|(n, _)| *n)
        .collect();
    let mut order = Vec::new();
    let mut state = asl["StartAt"].as_str().unwrap();
    loop {
        order.push(state);
        let s = &states[state];
        let retried: BTreeSet<&str> = s["Retry"][0]["ErrorEquals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for r in &retryable {
            assert!(retried.contains(r), "{state} does not retry {r}");
        }
        for f in &fatal {
            assert!(!retried.contains(f), "{state} retries the fatal {f}");
        }
        assert!(
            retried.contains("Lambda.TooManyRequestsException"),
            "{state} must retry Lambda throttling"
        );
        assert_eq!(s["Retry"][0]["JitterStrategy"], "FULL");
        let catch = &s["Catch"][0];
        assert_eq!(catch["ErrorEquals"][0], "States.ALL");
        assert_eq!(
            catch["ResultPath"], "$.error",
            "the batch must travel on with the error"
        );
        let failed = &states[catch["Next"].as_str().unwrap()];
        assert_eq!(failed["Next"], "QuarantineBatch");
        match s.get("Next").and_then(Value::as_str) {
            Some(next) => state = next,
            None => break,
        }
    }
    assert_eq!(order, ["Validate", "Enrich", "Detect", "Persist"]);
    assert!(
        states["QuarantineBatch"]["Retry"].is_array(),
        "the quarantine path itself retries"
    );
}

#[test]
fn placeholders_are_the_documented_substitutions() {
    let text =
        std::fs::read_to_string(repo_root().join("statemachines/pipeline.asl.json")).unwrap();
    let mut found = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("${") {
        let end = rest[i..].find('}').unwrap();
        found.insert(rest[i + 2..i + end].to_owned());
        rest = &rest[i + end..];
    }
    let expected: BTreeSet<String> = [
        "ValidateFunctionArn",
        "EnrichFunctionArn",
        "DetectFunctionArn",
        "PersistFunctionArn",
    ]
    .map(String::from)
    .into();
    assert_eq!(found, expected);
}

fn backfill_asl() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("statemachines/backfill.asl.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every state of `node` and of the maps inside it, with its name.
fn all_states(node: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (name, state) in node["States"].as_object().unwrap() {
        out.push((name.clone(), state.clone()));
        if let Some(inner) = state.get("ItemProcessor") {
            out.extend(all_states(inner));
        }
    }
    out
}

#[test]
fn backfill_runs_one_child_per_shard_and_each_shards_batches_in_order() {
    let asl = backfill_asl();
    let shards = &asl["States"]["Shards"];
    assert_eq!(shards["Type"], "Map");
    assert_eq!(
        shards["ItemProcessor"]["ProcessorConfig"]["Mode"],
        "DISTRIBUTED"
    );
    assert_eq!(
        shards["ItemReader"]["Resource"],
        "arn:aws:states:::s3:getObject"
    );
    assert_eq!(shards["ItemReader"]["ReaderConfig"]["InputType"], "JSON");
    assert_eq!(shards["MaxConcurrencyPath"], "$.max_concurrency");
    // The concurrency is the template parameter, turned into a number by the first state.
    assert_eq!(
        asl["States"]["Settings"]["Parameters"]["max_concurrency.$"],
        "States.StringToJson('${BackfillMaxConcurrency}')"
    );
    // Inside a child: the batches one at a time, in the manifest's order.
    let batches = &shards["ItemProcessor"]["States"]["Batches"];
    assert_eq!(batches["Type"], "Map");
    assert_eq!(batches["MaxConcurrency"], 1);
    assert_eq!(
        batches["ItemProcessor"]["ProcessorConfig"]["Mode"],
        "INLINE"
    );
    let run = &batches["ItemProcessor"]["States"]["RunBatch"];
    assert_eq!(
        run["Resource"],
        "arn:aws:states:::states:startExecution.sync:2"
    );
    assert_eq!(
        run["Parameters"]["StateMachineArn"],
        "${PipelineStateMachineArn}"
    );
    assert_eq!(run["Parameters"]["Name.$"], "$.name");
    // Every task is bounded in time and retried: a child fails only when a call keeps failing.
    let tasks: Vec<(String, Value)> = all_states(&asl)
        .into_iter()
        .filter(|(_, s)| s["Type"] == "Task")
        .collect();
    assert_eq!(tasks.len(), 3, "LoadBatch, RunBatch, WriteTotals");
    for (name, task) in &tasks {
        assert!(task["TimeoutSeconds"].as_u64().unwrap() > 0, "{name}");
        assert!(
            task["Retry"][0]["MaxAttempts"].as_u64().unwrap() >= 3,
            "{name}"
        );
    }
    // The pipeline execution a batch runs is waited for longer than the pipeline can take
    // (four stages of at most 60 s each, retried).
    assert!(run["TimeoutSeconds"].as_u64().unwrap() >= 600);
}
