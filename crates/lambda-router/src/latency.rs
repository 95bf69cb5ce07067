//! A latency profile for the local stack: each AWS call the router forwards waits first for a
//! delay drawn from that call's distribution, so that load runs on loopback see the round trips
//! a deployment would (docs/capacity.md gives the profile and its sources).
//!
//! A profile is JSON: `{"seed": 7, "calls": {"dynamodb.TransactWriteItems": {"p50_ms": 9,
//! "p99_ms": 30}, "dynamodb.*": {...}, "lambda.Invoke": {...}}}`. A call is named
//! `service.Operation`: the operation from the JSON protocols' `X-Amz-Target` (DynamoDB, Step
//! Functions, EventBridge), `lambda.Invoke` for an invocation, and the service alone (from the
//! request's SigV4 credential scope) otherwise, which matches only `service.*`. The exact name
//! is looked up first, then `service.*`; a call in neither is not delayed.
//!
//! Delays are log-normal with the given median and 99th percentile (σ = ln(p99/p50) / 2.326),
//! the usual shape of network and service latency: a floor near the median and a long right
//! tail. Draws come from a seeded ChaCha stream, so a run's sequence of delays repeats.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874;

/// One call's latency: median and 99th percentile, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Spread {
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms (at least the median).
    pub p99_ms: f64,
}

/// A profile file's contents.
#[derive(Debug, Clone, Deserialize)]
pub struct ProfileFile {
    /// Seed of the delays' random stream.
    #[serde(default)]
    pub seed: u64,
    /// Per call name (`service.Operation` or `service.*`). (A file's `sources`, where each
    /// figure comes from, is for its reader and ignored here.)
    pub calls: BTreeMap<String, Spread>,
}

/// The loaded profile, shared by every connection.
#[derive(Debug)]
pub struct Profile {
    calls: BTreeMap<String, Spread>,
    rng: Mutex<ChaCha8Rng>,
}

impl Profile {
    /// Reads a profile file; a spread with p99 below p50, or not finite, is refused.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: ProfileFile =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::new(file)
    }

    /// A profile from its contents.
    pub fn new(file: ProfileFile) -> Result<Self, String> {
        for (name, s) in &file.calls {
            if !(s.p50_ms.is_finite()
                && s.p99_ms.is_finite()
                && s.p50_ms >= 0.0
                && s.p99_ms >= s.p50_ms)
            {
                return Err(format!("{name}: need 0 <= p50_ms <= p99_ms, got {s:?}"));
            }
        }
        Ok(Profile {
            calls: file.calls,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(file.seed)),
        })
    }

    /// The spread of a call, by exact name, then by `service.*`.
    pub fn spread(&self, call: &str) -> Option<Spread> {
        if let Some(s) = self.calls.get(call) {
            return Some(*s);
        }
        let service = call.split('.').next().unwrap_or(call);
        self.calls.get(&format!("{service}.*")).copied()
    }

    /// A delay for `call`: zero when the profile does not name it.
    pub fn delay(&self, call: &str) -> Duration {
        let Some(s) = self.spread(call) else {
            return Duration::ZERO;
        };
        let (u1, u2): (f64, f64) = match self.rng.lock() {
            Ok(mut rng) => (rng.random::<f64>(), rng.random::<f64>()),
            Err(_) => (0.5, 0.25),
        };
        Duration::from_secs_f64(lognormal_ms(s, u1, u2) / 1000.0)
    }
}

/// A log-normal draw (ms) with `s`'s median and p99, from two uniform draws in [0, 1) (Box–Muller).
pub fn lognormal_ms(s: Spread, u1: f64, u2: f64) -> f64 {
    if s.p50_ms <= 0.0 {
        return 0.0;
    }
    let sigma = (s.p99_ms / s.p50_ms).ln() / Z99;
    let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    s.p50_ms * (sigma * z).exp()
}

/// The call a request makes: `lambda.Invoke` for an invocation, `service.Operation` from
/// `X-Amz-Target` (`DynamoDB_20120810.PutItem` → `dynamodb.PutItem`), else the SigV4 scope's
/// service alone.
pub fn call_of(invoke: bool, target: Option<&str>, authorization: Option<&str>) -> String {
    if invoke {
        return "lambda.Invoke".into();
    }
    if let Some((prefix, op)) = target.and_then(|t| t.split_once('.')) {
        let service = match prefix {
            p if p.starts_with("DynamoDB") => "dynamodb",
            p if p.starts_with("AWSStepFunctions") => "states",
            p if p.starts_with("AWSEvents") => "events",
            p if p.starts_with("Logs") => "logs",
            p => return format!("{}.{op}", p.to_lowercase()),
        };
        return format!("{service}.{op}");
    }
    // `Credential=AKID/20261207/us-east-1/s3/aws4_request`
    authorization
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .map_or_else(|| "unknown".into(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_named_by_target_invocation_or_scope() {
        assert_eq!(call_of(true, None, None), "lambda.Invoke");
        assert_eq!(
            call_of(false, Some("DynamoDB_20120810.TransactWriteItems"), None),
            "dynamodb.TransactWriteItems"
        );
        assert_eq!(
            call_of(false, Some("AWSStepFunctions.StartExecution"), None),
            "states.StartExecution"
        );
        assert_eq!(
            call_of(false, Some("AWSEvents.PutEvents"), None),
            "events.PutEvents"
        );
        assert_eq!(
            call_of(
                false,
                None,
                Some(
                    "AWS4-HMAC-SHA256 Credential=test/20261207/us-east-1/s3/aws4_request, SignedHeaders=host"
                )
            ),
            "s3"
        );
    }

    #[test]
    fn exact_names_win_then_the_service_wildcard() {
        let file: ProfileFile = serde_json::from_str(
            r#"{"calls": {"dynamodb.*": {"p50_ms": 5, "p99_ms": 10},
                          "dynamodb.TransactWriteItems": {"p50_ms": 9, "p99_ms": 30}}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let p = Profile::new(file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.spread("dynamodb.TransactWriteItems").map(|s| s.p50_ms),
            Some(9.0)
        );
        assert_eq!(p.spread("dynamodb.GetItem").map(|s| s.p50_ms), Some(5.0));
        assert_eq!(p.spread("s3"), None);
        assert_eq!(p.delay("s3"), Duration::ZERO);
    }

    #[test]
    fn draws_have_the_profiles_median_and_p99() {
        let s = Spread {
            p50_ms: 10.0,
            p99_ms: 40.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut draws: Vec<f64> = (0..200_000)
            .map(|_| lognormal_ms(s, rng.random(), rng.random()))
            .collect();
        draws.sort_by(f64::total_cmp);
        let p50 = draws[100_000];
        let p99 = draws[198_000];
        assert!((p50 - 10.0).abs() < 0.3, "p50 {p50}");
        assert!((p99 - 40.0).abs() < 2.0, "p99 {p99}");
    }

    #[test]
    fn a_p99_below_the_median_is_refused() {
        let file: ProfileFile =
            serde_json::from_str(r#"{"calls": {"s3.*": {"p50_ms": 5, "p99_ms": 1}}}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(Profile::new(file).is_err());
    }
}
