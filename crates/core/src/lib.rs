//! The AWS-free core of the event pipeline.
//!
//! Every Lambda function, the `pipeline` CLI and the tests run the code in this crate; the
//! binaries only wire it to AWS or to the embedded store.
//!
//! # Layout
//! - [`event`]: the v1 event contract as Rust types ([`event::Event`]) and per-event provenance.
//! - [`contract`]: the JSON Schema file that *is* the contract, compiled once.
//! - [`batch`]: the batch document the stages exchange, quarantine entries and reasons.
//! - [`json`]: the JSON parser every decoder uses, which refuses duplicate keys. The decoders
//!   themselves (MSK `KafkaEvent`s, EventBridge events, JSON Lines, schema-registry values) and
//!   the splitter that keeps batch documents under the Step Functions state limit are the
//!   `pipeline-ingest` crate, which builds on this one.
//! - [`validate`], [`enrich`], [`detect`], [`persist`]: the four stages, one function each.
//!   The detector itself (rules, the value model, entity state, incidents) is the
//!   `pipeline-detect` crate, which [`detect`] re-exports and runs over a batch;
//!   [`persist`] is split into the decision table, the write loop, entity state, the report,
//!   announcing and the failed-batch path.
//! - [`evaluate`]: backtest scoring of detection against labels (`pipeline evaluate`), and
//!   NAB v1.1's scorer exactly (`evaluate::nab`), re-exported from `pipeline-detect`.
//! - [`store`]: the [`store::Store`] trait that persistence and reference-data reads go through,
//!   and the DynamoDB table names ([`store::Tables`]).
//! - [`error`]: the crate's error enum, its [`ErrorKind`]s and the stable `error_type` names the
//!   state machine matches (declared once, in one list).
//!
//! Stage order and types: `Batch<RawEvent>` → [`validate::validate`] → `Batch<ValidEvent>` →
//! [`enrich::enrich`] → `Batch<EnrichedEvent>` → [`detect::detect`] → `Batch<ScoredEvent>` →
//! [`persist::persist`] → [`persist::PersistReport`].

pub mod batch;
pub mod contract;
pub mod currency;
pub mod detect;
pub mod enrich;
pub mod error;
pub mod event;
pub mod json;
pub mod outcome;
pub mod persist;
pub mod store;
pub mod validate;

pub use error::{Error, ErrorClass, ErrorKind};
/// Backtest scoring (`pipeline evaluate`, `--nab`): the `pipeline-detect` crate's scorers.
pub use pipeline_detect::evaluate;

pub(crate) use pipeline_detect::hash64;
