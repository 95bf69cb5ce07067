//! One stage abstraction and one Lambda handler for all of them.
//!
//! A stage is a type implementing [`Handler`]: its name ([`Handler::STAGE`]), its input and
//! output types, and [`Handler::run`]. [`serve()`] runs any of them as a Lambda function, and
//! [`Handler::handle`], the same for every stage, is one invocation: an invocation span carrying
//! the correlation fields (see [`crate::telemetry`]), fault injection when enabled, the input
//! decoded into the stage's type (so a malformed document fails with `Pipeline.Fatal.BadBatch`,
//! not a runtime type name), `run`, the stage's latency, and one error line with the
//! `error_type` the state machine matches when it fails. What a stage logs and counts of its
//! own (quarantined events, anomalies, persist's outcomes) is in its `run`.
//!
//! From a function's `main.rs` to its stage's logic: `serve` (this file, with `handle`) →
//! the stage's `run` (`crate::stages::<stage>`), which calls the core's plain function.

use std::future::Future;
use std::time::Instant;

use lambda_runtime::{LambdaEvent, service_fn};
use pipeline_core::Error;
use pipeline_core::batch::{Batch, Stage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;

use crate::config::TelemetryConfig;
use crate::error::FunctionError;
use crate::telemetry::{invocation_span, metric, record_batch};

/// A pipeline stage as a Lambda function runs it: a name, a typed input and output, and
/// [`Handler::run`]; [`Handler::handle`] is the invocation around it, the same for all.
pub trait Handler: Send + Sync + Sized {
    /// The stage it runs (its metric dimension and log `function` field).
    const STAGE: Stage;
    /// What the invocation's document must be, as a `Pipeline.Fatal.BadBatch` error names it.
    const EXPECTS: &'static str;
    /// What it takes.
    type Input: DeserializeOwned + Send;
    /// What it returns.
    type Output: Serialize + Send;

    /// Whether events of this invocation may ask for injected faults (`fault_inject`): only
    /// with fault injection enabled, and never on a path that must not fail on purpose.
    fn injects_faults(&self, doc: &Value) -> bool;

    /// Decodes the invocation's document.
    fn decode(doc: Value) -> Result<Self::Input, FunctionError> {
        parse(doc, Self::EXPECTS)
    }

    /// Runs the stage on one input, with the logs and metrics of its own.
    fn run(
        &self,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, FunctionError>> + Send;

    /// Handles one invocation (what [`serve()`] calls, and what tests call with fixtures).
    fn handle(
        &self,
        event: LambdaEvent<Value>,
    ) -> impl Future<Output = Result<Self::Output, FunctionError>> + Send {
        let span = invocation_span(Self::STAGE, &event.context);
        correlate(&span, &event.payload);
        logged(async move {
            let started = Instant::now();
            let after = inject_fault(
                self.injects_faults(&event.payload),
                Self::STAGE,
                &event.payload,
            )?;
            let out = self.run(Self::decode(event.payload)?).await?;
            if after == AfterRun::Fail {
                return Err(failed_after_run(Self::STAGE));
            }
            metrics::histogram!(metric::STAGE_LATENCY_MS)
                .record(started.elapsed().as_secs_f64() * 1000.0);
            Ok(out)
        })
        .instrument(span)
    }
}

/// Runs `handler` as a Lambda function: installs logging and the EMF metrics recorder from
/// `telemetry`, then serves invocations until the runtime stops.
pub async fn serve<H: Handler>(
    handler: H,
    telemetry: &TelemetryConfig,
) -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init(telemetry);
    let metrics = crate::telemetry::init_metrics(H::STAGE, telemetry)?;
    let handler = &handler;
    metrics_cloudwatch_embedded::lambda::service::run(
        metrics,
        service_fn(move |event| handler.handle(event)),
    )
    .await
}

/// What an injected fault does to one invocation, once the stage has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterRun {
    /// Nothing: answer as usual.
    Answer,
    /// The stage's effects happen, then the invocation fails (a timeout or a lost answer
    /// after the work was done: the state machine retries work that already landed).
    Fail,
}

/// With fault injection enabled, fails `stage` when an event asks for it in
/// `attributes.fault_inject` (tests drive the state machine's Retry and Catch paths this way):
/// - the stage's name: fails that stage every time, before it runs;
/// - `chaos:RATE` (e.g. `chaos:0.2`): every stage fails at random with probability RATE, in
///   equal parts before it runs (`InjectedFault`), as throttled by the store past the SDK's
///   retries (`StoreThrottled`), and after its effects landed (see [`AfterRun::Fail`]).
fn inject_fault(enabled: bool, stage: Stage, doc: &Value) -> Result<AfterRun, FunctionError> {
    if !enabled {
        return Ok(AfterRun::Answer);
    }
    let events = doc
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for e in events.filter_map(|e| e.get("payload").or_else(|| e.get("event"))) {
        let Some(asked) = e
            .pointer("/attributes/fault_inject")
            .and_then(Value::as_str)
        else {
            continue;
        };
        let event_id = || {
            e.get("event_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        if asked == stage.as_str() {
            return Err(FunctionError(Error::InjectedFault {
                stage: stage.as_str(),
                event_id: event_id(),
            }));
        }
        if let Some(rate) = asked
            .strip_prefix("chaos:")
            .and_then(|r| r.parse::<f64>().ok())
        {
            let roll = chance();
            return if roll < rate / 3.0 {
                Err(FunctionError(Error::InjectedFault {
                    stage: stage.as_str(),
                    event_id: event_id(),
                }))
            } else if roll < rate * 2.0 / 3.0 {
                Err(FunctionError(Error::StoreThrottled {
                    message: format!("injected throttle in {}", stage.as_str()),
                    source: None,
                }))
            } else if roll < rate {
                Ok(AfterRun::Fail)
            } else {
                Ok(AfterRun::Answer)
            };
        }
    }
    Ok(AfterRun::Answer)
}

/// A number in [0, 1), different on every call (std's per-instance random hash keys; no RNG
/// dependency for a test-only path).
fn chance() -> f64 {
    use std::hash::BuildHasher;
    let h = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The error an [`AfterRun::Fail`] fault answers with.
fn failed_after_run(stage: Stage) -> FunctionError {
    FunctionError(Error::InjectedFault {
        stage: stage.as_str(),
        event_id: "(after the stage ran)".into(),
    })
}

/// Decodes `payload` as `T`, or fails the invocation as a malformed batch (not retryable).
pub(crate) fn parse<T: DeserializeOwned>(
    payload: Value,
    expected: &'static str,
) -> Result<T, FunctionError> {
    serde_json::from_value(payload)
        .map_err(|source| FunctionError(Error::BadBatch { expected, source }))
}

/// Records the batch's correlation fields off the raw document before anything can fail, so
/// that the line reporting a failure (a fault, a malformed batch, a store error) names its
/// batch and execution too: what `pipeline logs --batch` finds.
fn correlate(span: &tracing::Span, payload: &Value) {
    #[derive(serde::Deserialize)]
    struct Key {
        batch_id: String,
        received_at: chrono::DateTime<chrono::Utc>,
    }
    if let Ok(k) = <Key as serde::Deserialize>::deserialize(payload) {
        let execution = Batch::<Value> {
            batch_id: k.batch_id.clone(),
            received_at: k.received_at,
            input_count: 0,
            events: Vec::new(),
            quarantine: Vec::new(),
        }
        .execution_name();
        record_batch(span, &k.batch_id, &execution);
    }
}

/// Runs an invocation and logs its failure, with the error type the state machine's Retry and
/// Catch match, inside the invocation span (the runtime's own report has no correlation fields).
async fn logged<T>(
    work: impl Future<Output = Result<T, FunctionError>>,
) -> Result<T, FunctionError> {
    let result = work.await;
    if let Err(e) = &result {
        tracing::error!(error_type = e.error_type(), error = %e.0, "invocation failed");
    }
    result
}
