//! The one place settings come from: the environment, read once per process into [`Config`].
//! Nothing else in the workspace reads environment variables (the AWS SDK reads its own:
//! region, credentials, `AWS_ENDPOINT_URL*`). A bad value is an error naming the variable; an
//! unset one takes the default below.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PIPELINE_MAX_FUTURE_SKEW_SECS` | how far `occurred_at` may be ahead of receipt (0 … 31622400, 366 days) | 300 |
//! | `PIPELINE_MAX_EVENT_BYTES` | largest event accepted (1 … 16777216) | 65536 |
//! | `PIPELINE_FX_TABLE` | path of an FX table replacing `config/fx.json` | built in |
//! | `PIPELINE_WINDOW_SECS` | velocity window (1 … 31622400) | 600 |
//! | `PIPELINE_INCIDENT_QUIET_SECS` | an entity's incident closes after this much event time without an anomalous event (`docs/detection.md`) | 43200 |
//! | `PIPELINE_MAX_FAILURES` | more failures than this in the window is an anomaly | 5 |
//! | `PIPELINE_MAX_EVENTS` | more events than this in the window is an anomaly | 60 |
//! | `PIPELINE_FAILURE_STATUSES` | comma-separated `attributes.status` values that are failures | `failed,declined` |
//! | `PIPELINE_VALUE_PROBABILITY` | a value whose calibrated probability for its entity is below this is an outlier (`docs/detection.md`) | 1e-4 |
//! | `PIPELINE_QUARANTINE_RETENTION_DAYS` | days a quarantine entry is kept (its `expires_at`, the DynamoDB TTL attribute); `0` keeps entries until deleted (0 … 36500) | 30 |
//! | `PIPELINE_SCHEMA_REGISTRY` | ingest and the CLI only: path of a schema registry file (`schemas/README.md`): Kafka values in the Confluent or Glue wire format, Avro or JSON, decoded and mapped to the contract; in Lambda, e.g. a layer's `/opt/registry.json`. `glue:NAME` (alone, or after the file and a comma): ingest fetches the Glue schema versions records name from the Glue registry NAME at run time, mapped by the file's `glue_schemas` | none: values are JSON |
//! | `INGEST_MAX_CONCURRENCY` | batches of one ingest invocation processed at once (1 … 1000) | 4 |
//! | `INGEST_REPORT_BATCH_ITEM_FAILURES` | `true`: ingest answers a Kafka invocation whose batches partly failed with the records to redeliver (`batchItemFailures`) instead of failing it whole; set it only where the event source mapping has `FunctionResponseTypes: [ReportBatchItemFailures]`, or those records are lost | `false` |
//! | `PIPELINE_FAULT_INJECTION` | `1` lets events with `attributes.fault_inject` = a stage name fail that stage (tests only) | off |
//! | `EVENTS_TABLE`, `ENTITIES_TABLE`, `QUARANTINE_TABLE` | DynamoDB table names | `pipeline-events`, `pipeline-entities`, `pipeline-quarantine` |
//! | `STATE_MACHINE_ARN` | the state machine ingest starts (ingest requires it) | none |
//! | `STATE_MACHINE_TYPE` | `EXPRESS` (synchronous executions) or `STANDARD` (start, then poll) | `EXPRESS` |
//! | `ANOMALY_BUS_NAME` | EventBridge bus persist announces anomalies on | none: not announced |
//! | `METRICS_NAMESPACE` | CloudWatch namespace of the EMF metrics | `EventPipeline` |
//! | `AWS_LAMBDA_LOG_FORMAT` | `Text` for plain log lines, otherwise JSON | JSON |
//! | `AWS_LAMBDA_LOG_LEVEL` | log level | `INFO` |
//! | `RUST_LOG` | a full `tracing` filter, overriding the level | none |
//! | `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB` | read here only to know whether an emulator is targeted (the SDK applies them) | none |

use std::collections::HashMap;
use std::str::FromStr;

use chrono::Duration;
use pipeline_core::Error;
use pipeline_core::detect::DetectConfig;
use pipeline_core::enrich::FxTable;
use pipeline_core::persist::PersistConfig;
use pipeline_core::store::Tables;
use pipeline_core::validate::ValidateConfig;
use pipeline_ingest::MachineType;

/// The metric namespace used when `METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "EventPipeline";

/// Everything a process is configured with.
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
    /// Whether ingest answers partly failed Kafka invocations with `batchItemFailures`.
    pub report_batch_item_failures: bool,
    /// DynamoDB table names.
    pub tables: Tables,
    /// The state machine ingest hands batches to, when set.
    pub state_machine: Option<StateMachine>,
    /// The EventBridge bus anomalies are announced on, when set.
    pub anomaly_bus: Option<String>,
    /// Schemas of Kafka values (empty: values are JSON).
    pub registry: std::sync::Arc<pipeline_ingest::Registry>,
    /// The Glue Schema Registry that ingest fetches schema versions from at run time
    /// (`glue:NAME` in `PIPELINE_SCHEMA_REGISTRY`), when set.
    pub glue_registry: Option<String>,
    /// Logs and metrics.
    pub telemetry: TelemetryConfig,
    /// The endpoint override the SDK will use for DynamoDB, when one is set (an emulator).
    pub endpoint_override: Option<String>,
}

/// Ingest's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMachine {
    /// Its ARN.
    pub arn: String,
    /// How executions are run.
    pub kind: MachineType,
}

/// Log and metric settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The CloudWatch namespace of the EMF metrics.
    pub namespace: String,
    /// A `tracing` filter: `RUST_LOG` when set, otherwise the Lambda log level.
    pub filter: String,
    /// Plain text lines instead of JSON.
    pub text: bool,
}

/// Reads and compiles the schema registry file at `path`.
fn load_registry(path: &str) -> Result<pipeline_ingest::Registry, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read PIPELINE_SCHEMA_REGISTRY {path}: {e}")))?;
    pipeline_ingest::Registry::from_json(&text).map_err(|e| match e {
        Error::Config(m) => Error::Config(format!("PIPELINE_SCHEMA_REGISTRY {path}: {m}")),
        other => other,
    })
}

impl Config {
    /// Defaults: the built-in FX table and the documented thresholds.
    pub fn defaults() -> Result<Self, Error> {
        Self::from_vars(&HashMap::new())
    }

    /// Reads the process environment: the only place the workspace does.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// [`Config::from_env`] for validate, enrich, detect and persist: everything but the
    /// schema registry, which only ingest decodes with. Not reading it keeps its decoders (Avro,
    /// Protobuf) out of those four binaries and its parsing out of their cold start.
    pub fn stage_from_env() -> Result<Self, Error> {
        Self::stage_from_vars(&std::env::vars().collect())
    }

    /// Reads settings from a map of variables (testable without touching the environment).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, Error> {
        let mut config = Self::stage_from_vars(vars)?;
        // A file, `glue:NAME`, or both, comma-separated.
        let mut file = None;
        for source in text(vars, "PIPELINE_SCHEMA_REGISTRY")
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match source.strip_prefix("glue:") {
                Some(name) if config.glue_registry.is_some() || name.is_empty() => {
                    return Err(Error::Config(format!(
                        "PIPELINE_SCHEMA_REGISTRY names {source}: give one Glue registry, by name"
                    )));
                }
                Some(name) => config.glue_registry = Some(name.to_owned()),
                None if file.is_some() => {
                    return Err(Error::Config(format!(
                        "PIPELINE_SCHEMA_REGISTRY names a second file, {source}: give one"
                    )));
                }
                None => {
                    config.registry = std::sync::Arc::new(load_registry(source)?);
                    file = Some(source);
                }
            }
        }
        Ok(config)
    }

    /// [`Config::from_vars`] without the schema registry (see [`Config::stage_from_env`]).
    pub fn stage_from_vars(vars: &HashMap<String, String>) -> Result<Self, Error> {
        let text = |key: &str| text(vars, key);
        let mut validate = ValidateConfig::default();
        let mut detect = DetectConfig::default();
        if let Some(v) = ranged::<i64>(vars, "PIPELINE_MAX_FUTURE_SKEW_SECS", 0, YEAR_SECS)? {
            validate.max_future_skew = Duration::seconds(v);
        }
        if let Some(v) = ranged::<usize>(vars, "PIPELINE_MAX_EVENT_BYTES", 1, 16 << 20)? {
            validate.max_event_bytes = v;
        }
        if let Some(v) = ranged::<i64>(vars, "PIPELINE_WINDOW_SECS", 1, YEAR_SECS)? {
            detect.window = Duration::seconds(v);
        }
        if let Some(v) = ranged::<i64>(vars, "PIPELINE_INCIDENT_QUIET_SECS", 0, YEAR_SECS)? {
            detect.incident_quiet = Duration::seconds(v);
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
        let quarantine_retention =
            match ranged::<i64>(vars, "PIPELINE_QUARANTINE_RETENTION_DAYS", 0, 36_500)? {
                None => Some(Duration::days(
                    pipeline_core::persist::DEFAULT_QUARANTINE_RETENTION_DAYS,
                )),
                Some(0) => None,
                Some(d) => Some(Duration::days(d)),
            };
        let persist = PersistConfig {
            detect: detect.clone(),
            quarantine_retention,
            ..PersistConfig::default()
        };
        let fault_injection = vars
            .get("PIPELINE_FAULT_INJECTION")
            .is_some_and(|v| v == "1");
        let ingest_concurrency =
            ranged::<usize>(vars, "INGEST_MAX_CONCURRENCY", 1, 1000)?.unwrap_or(4);
        let report_batch_item_failures = match text("INGEST_REPORT_BATCH_ITEM_FAILURES")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(Error::Config(format!(
                    "INGEST_REPORT_BATCH_ITEM_FAILURES must be true or false, got {other}"
                )));
            }
        };
        let defaults = Tables::default();
        let tables = Tables {
            events: text("EVENTS_TABLE").unwrap_or(defaults.events),
            entities: text("ENTITIES_TABLE").unwrap_or(defaults.entities),
            quarantine: text("QUARANTINE_TABLE").unwrap_or(defaults.quarantine),
        };
        let state_machine = match text("STATE_MACHINE_ARN") {
            Some(arn) => Some(StateMachine {
                arn,
                kind: text("STATE_MACHINE_TYPE")
                    .as_deref()
                    .unwrap_or("EXPRESS")
                    .parse()?,
            }),
            None => None,
        };
        let filter = text("RUST_LOG").unwrap_or_else(|| {
            text("AWS_LAMBDA_LOG_LEVEL")
                .unwrap_or_else(|| "INFO".into())
                .to_lowercase()
        });
        let telemetry = TelemetryConfig {
            namespace: text("METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
            filter,
            text: text("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("text")),
        };
        Ok(Config {
            validate,
            fx,
            detect,
            persist,
            fault_injection,
            ingest_concurrency,
            report_batch_item_failures,
            tables,
            state_machine,
            anomaly_bus: text("ANOMALY_BUS_NAME"),
            registry: std::sync::Arc::new(pipeline_ingest::Registry::empty()),
            glue_registry: None,
            telemetry,
            endpoint_override: text("AWS_ENDPOINT_URL_DYNAMODB")
                .or_else(|| text("AWS_ENDPOINT_URL")),
        })
    }

    /// The endpoint override when it points at this machine (127.0.0.0/8, `localhost`, `[::1]`):
    /// the one test of "is this an emulator?" that anything creating or deleting tables asks
    /// before it does so.
    pub fn loopback_endpoint(&self) -> Option<&str> {
        let url = self.endpoint_override.as_deref()?;
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        loopback.then_some(url)
    }

    /// The state machine, or the error ingest fails to start with when none is configured.
    pub fn require_state_machine(&self) -> Result<&StateMachine, Error> {
        self.state_machine
            .as_ref()
            .ok_or_else(|| Error::Config("STATE_MACHINE_ARN is not set".into()))
    }
}

/// The variable's value, trimmed; `None` when unset or blank.
fn text(vars: &HashMap<String, String>, key: &str) -> Option<String> {
    vars.get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// 366 days in seconds: the longest time setting (a larger one is a typo, and one near
/// `i64::MAX` seconds would overflow time arithmetic mid-run).
const YEAR_SECS: i64 = 366 * 86_400;

/// [`num`], refused outside `lo ..= hi` with an error naming the variable and the range.
fn ranged<T>(vars: &HashMap<String, String>, key: &str, lo: T, hi: T) -> Result<Option<T>, Error>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    match num::<T>(vars, key)? {
        Some(v) if v < lo || v > hi => Err(Error::Config(format!(
            "{key} must be between {lo} and {hi}, got {v}"
        ))),
        other => Ok(other),
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

/// The variables the deployment must set on each stage's function: those whose default cannot
/// be right there (table names, the state machine, the anomaly bus, the metric namespace), and
/// the settings that every function applying them must share (detection settings are applied by
/// detect and again by persist, which folds events into the state it commits; the future-skew
/// rule by validate and by every later stage's recheck). `crates/handlers/tests/one_source.rs`
/// checks that `template.yaml` sets each of them for that function.
pub fn deployed_variables(stage: pipeline_core::batch::Stage) -> Vec<&'static str> {
    use pipeline_core::batch::Stage;
    const RECHECK: &str = "PIPELINE_MAX_FUTURE_SKEW_SECS";
    const DETECTION: [&str; 4] = [
        "PIPELINE_WINDOW_SECS",
        "PIPELINE_MAX_FAILURES",
        "PIPELINE_VALUE_PROBABILITY",
        "PIPELINE_INCIDENT_QUIET_SECS",
    ];
    let mut vars = vec!["METRICS_NAMESPACE"];
    match stage {
        Stage::Ingest => vars.extend([
            "STATE_MACHINE_ARN",
            "STATE_MACHINE_TYPE",
            "INGEST_MAX_CONCURRENCY",
            "INGEST_REPORT_BATCH_ITEM_FAILURES",
        ]),
        Stage::Validate | Stage::Enrich => vars.push(RECHECK),
        Stage::Detect => {
            vars.extend([RECHECK, "ENTITIES_TABLE"]);
            vars.extend(DETECTION);
        }
        Stage::Persist => {
            vars.extend([
                RECHECK,
                "EVENTS_TABLE",
                "ENTITIES_TABLE",
                "QUARANTINE_TABLE",
                "ANOMALY_BUS_NAME",
                "PIPELINE_QUARANTINE_RETENTION_DAYS",
            ]);
            vars.extend(DETECTION);
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

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

    #[test]
    fn every_setting_out_of_its_range_is_an_error_naming_it_never_a_panic() {
        // Issue 25, case 15: i64::MAX seconds panicked (exit 101), one of them mid-run, and a
        // negative window silently turned velocity detection off.
        for (key, value) in [
            ("PIPELINE_WINDOW_SECS", "9223372036854775807"),
            ("PIPELINE_WINDOW_SECS", "-600"),
            ("PIPELINE_WINDOW_SECS", "0"),
            ("PIPELINE_MAX_FUTURE_SKEW_SECS", "9223372036854775807"),
            ("PIPELINE_MAX_FUTURE_SKEW_SECS", "-1"),
            ("PIPELINE_QUARANTINE_RETENTION_DAYS", "100000000"),
            ("PIPELINE_QUARANTINE_RETENTION_DAYS", "-1"),
            ("PIPELINE_INCIDENT_QUIET_SECS", "-1"),
            ("PIPELINE_MAX_EVENT_BYTES", "0"),
            ("INGEST_MAX_CONCURRENCY", "0"),
        ] {
            let result = std::panic::catch_unwind(|| Config::from_vars(&vars(&[(key, value)])));
            let err = result.expect("no panic").expect_err(key).to_string();
            assert!(
                err.contains(key) && err.contains("between"),
                "{key}={value}: {err}"
            );
        }
        let edge = Config::from_vars(&vars(&[
            ("PIPELINE_WINDOW_SECS", "31622400"),
            ("PIPELINE_QUARANTINE_RETENTION_DAYS", "36500"),
        ]))
        .unwrap();
        assert_eq!(edge.detect.window.num_days(), 366);
    }

    #[test]
    fn aws_settings_have_documented_defaults() {
        let c = Config::defaults().expect("config");
        assert_eq!(c.tables, Tables::default());
        assert_eq!(c.state_machine, None);
        assert!(c.require_state_machine().is_err());
        assert_eq!(c.anomaly_bus, None);
        assert_eq!(c.telemetry.namespace, DEFAULT_NAMESPACE);
        assert_eq!(c.telemetry.filter, "info");
        assert!(!c.telemetry.text);
        assert_eq!(c.endpoint_override, None);
    }

    #[test]
    fn aws_settings_are_read_and_checked() {
        let c = Config::from_vars(&vars(&[
            ("EVENTS_TABLE", "e"),
            ("ENTITIES_TABLE", ""),
            ("STATE_MACHINE_ARN", "arn:sm"),
            ("STATE_MACHINE_TYPE", "standard"),
            ("ANOMALY_BUS_NAME", "bus"),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
            ("AWS_LAMBDA_LOG_FORMAT", "Text"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]))
        .expect("config");
        assert_eq!(c.tables.events, "e");
        // An empty value is unset, not an empty table name.
        assert_eq!(c.tables.entities, Tables::default().entities);
        let sm = c.require_state_machine().expect("state machine");
        assert_eq!(
            (sm.arn.as_str(), sm.kind),
            ("arn:sm", MachineType::Standard)
        );
        assert_eq!(c.anomaly_bus.as_deref(), Some("bus"));
        assert_eq!(c.telemetry.filter, "debug");
        assert!(c.telemetry.text);
        assert_eq!(
            c.endpoint_override.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(c.loopback_endpoint(), Some("http://127.0.0.1:5000"));
        let err = Config::from_vars(&vars(&[
            ("STATE_MACHINE_ARN", "arn:sm"),
            ("STATE_MACHINE_TYPE", "sync"),
        ]))
        .expect_err("bad machine type");
        assert!(err.to_string().contains("STATE_MACHINE_TYPE"));
        for (url, local) in [
            ("http://localhost:4566", true),
            ("http://[::1]:8000", true),
            ("https://dynamodb.eu-west-1.amazonaws.com", false),
            ("http://127.example.com", false),
            ("http://127.0.0.1", true),
            ("http://10.0.0.5:8000", false),
        ] {
            let c =
                Config::from_vars(&vars(&[("AWS_ENDPOINT_URL_DYNAMODB", url)])).expect("config");
            assert_eq!(c.loopback_endpoint().is_some(), local, "{url}");
        }
        let c = Config::from_vars(&vars(&[("RUST_LOG", "pipeline=trace")])).expect("config");
        assert_eq!(c.telemetry.filter, "pipeline=trace");
    }

    #[test]
    fn the_schema_registry_is_a_file_a_glue_registry_or_both() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/registry.json");
        let glue = Config::from_vars(&vars(&[("PIPELINE_SCHEMA_REGISTRY", "glue:payments")]))
            .expect("config");
        assert_eq!(glue.glue_registry.as_deref(), Some("payments"));
        assert!(glue.registry.is_empty());
        let both = format!("{sample},glue:payments");
        let both =
            Config::from_vars(&vars(&[("PIPELINE_SCHEMA_REGISTRY", &both)])).expect("config");
        assert_eq!(both.glue_registry.as_deref(), Some("payments"));
        assert!(!both.registry.is_empty());
        for bad in ["glue:", "glue:a,glue:b", &format!("{sample},{sample}")] {
            let err =
                Config::from_vars(&vars(&[("PIPELINE_SCHEMA_REGISTRY", bad)])).expect_err(bad);
            assert!(
                err.to_string().contains("PIPELINE_SCHEMA_REGISTRY"),
                "{err}"
            );
        }
    }

    #[test]
    fn only_ingest_reads_the_schema_registry() {
        let missing = vars(&[("PIPELINE_SCHEMA_REGISTRY", "/nonexistent/registry.json")]);
        let err = Config::from_vars(&missing).expect_err("ingest reads the registry");
        assert!(
            err.to_string().contains("PIPELINE_SCHEMA_REGISTRY"),
            "{err}"
        );
        assert!(Config::stage_from_vars(&missing).is_ok());

        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/registry.json");
        let with = vars(&[("PIPELINE_SCHEMA_REGISTRY", sample)]);
        assert!(
            !Config::from_vars(&with)
                .expect("config")
                .registry
                .is_empty()
        );
        assert!(
            Config::stage_from_vars(&with)
                .expect("config")
                .registry
                .is_empty()
        );
    }
}
