//! Settings, read once at cold start from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PIPELINE_MAX_FUTURE_SKEW_SECS` | how far `occurred_at` may be ahead of receipt | 300 |
//! | `PIPELINE_MAX_EVENT_BYTES` | largest event accepted | 65536 |
//! | `PIPELINE_FX_TABLE` | path of an FX table replacing `config/fx.json` | built in |
//! | `PIPELINE_WINDOW_SECS` | velocity window | 600 |
//! | `PIPELINE_MAX_FAILURES` | more failures than this in the window is an anomaly | 5 |
//! | `PIPELINE_MAX_EVENTS` | more events than this in the window is an anomaly | 60 |
//! | `PIPELINE_FAILURE_STATUSES` | comma-separated `attributes.status` values that are failures | `failed,declined` |
//! | `PIPELINE_VALUE_PROBABILITY` | a value whose calibrated probability for its entity is below this is an outlier (`docs/detection.md`) | 1e-4 |
//! | `INGEST_MAX_CONCURRENCY` | batches of one ingest invocation processed at once | 4 |
//! | `PIPELINE_FAULT_INJECTION` | `1` lets events with `attributes.fault_inject` = a stage name fail that stage (tests only) | off |

use std::collections::HashMap;
use std::str::FromStr;

use chrono::Duration;
use pipeline_core::Error;
use pipeline_core::detect::DetectConfig;
use pipeline_core::enrich::FxTable;
use pipeline_core::persist::PersistConfig;
use pipeline_core::validate::ValidateConfig;

/// Everything the stages are configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Validate settings.
    pub validate: ValidateConfig,
    /// The FX table.
    pub fx: FxTable,
    /// Detection settings (also used by persist to fold events into state).
    pub detect: DetectConfig,
    /// Persist settings.
    pub persist: PersistConfig,
    /// Whether `attributes.fault_inject` may fail a stage (tests of the Retry/Catch paths).
    pub fault_injection: bool,
    /// How many batches of one ingest invocation run at once.
    pub ingest_concurrency: usize,
}

impl Config {
    /// Defaults: the built-in FX table and the documented thresholds.
    pub fn defaults() -> Result<Self, Error> {
        Self::from_vars(&HashMap::new())
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads settings from a map of variables (testable without touching the environment).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, Error> {
        let mut validate = ValidateConfig::default();
        let mut detect = DetectConfig::default();
        if let Some(v) = num::<i64>(vars, "PIPELINE_MAX_FUTURE_SKEW_SECS")? {
            validate.max_future_skew = Duration::seconds(v);
        }
        if let Some(v) = num::<usize>(vars, "PIPELINE_MAX_EVENT_BYTES")? {
            validate.max_event_bytes = v;
        }
        if let Some(v) = num::<i64>(vars, "PIPELINE_WINDOW_SECS")? {
            detect.window = Duration::seconds(v);
        }
        if let Some(v) = num::<u32>(vars, "PIPELINE_MAX_FAILURES")? {
            detect.max_failures = v;
        }
        if let Some(v) = num::<u32>(vars, "PIPELINE_MAX_EVENTS")? {
            detect.max_events = v;
        }
        if let Some(v) = num::<f64>(vars, "PIPELINE_VALUE_PROBABILITY")? {
            if !(v > 0.0 && v < 1.0) {
                return Err(Error::Config(format!(
                    "PIPELINE_VALUE_PROBABILITY must be between 0 and 1 (exclusive), got {v}"
                )));
            }
            detect.value_probability = v;
        }
        if let Some(v) = vars.get("PIPELINE_FAILURE_STATUSES") {
            detect.failure_statuses = v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        let fx = match vars.get("PIPELINE_FX_TABLE") {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!("cannot read PIPELINE_FX_TABLE {path}: {e}"))
                })?;
                FxTable::from_json(&text)?
            }
            None => FxTable::builtin()?,
        };
        let persist = PersistConfig {
            detect: detect.clone(),
            ..PersistConfig::default()
        };
        let fault_injection = vars
            .get("PIPELINE_FAULT_INJECTION")
            .is_some_and(|v| v == "1");
        let ingest_concurrency = num::<usize>(vars, "INGEST_MAX_CONCURRENCY")?.unwrap_or(4);
        Ok(Config {
            validate,
            fx,
            detect,
            persist,
            fault_injection,
            ingest_concurrency,
        })
    }
}

fn num<T: FromStr>(vars: &HashMap<String, String>, key: &str) -> Result<Option<T>, Error>
where
    T::Err: std::fmt::Display,
{
    vars.get(key)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|e| Error::Config(format!("{key}={v:?} is not valid: {e}")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_overrides_and_rejects_garbage() {
        let vars: HashMap<String, String> = [
            ("PIPELINE_MAX_FAILURES".to_owned(), "3".to_owned()),
            (
                "PIPELINE_FAILURE_STATUSES".to_owned(),
                "failed, error".to_owned(),
            ),
        ]
        .into();
        let c = Config::from_vars(&vars).expect("config");
        assert_eq!(c.detect.max_failures, 3);
        assert_eq!(c.persist.detect.max_failures, 3);
        assert_eq!(c.detect.failure_statuses, vec!["failed", "error"]);
        let bad: HashMap<String, String> =
            [("PIPELINE_WINDOW_SECS".to_owned(), "ten".to_owned())].into();
        assert!(Config::from_vars(&bad).is_err());
    }
}
