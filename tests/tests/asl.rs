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
