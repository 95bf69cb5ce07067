//! The Lambda functions' application layer: configuration, one type per stage, and
//! [`serve()`], which runs a handler as a Lambda function. AWS-free: the function binaries pass
//! in the DynamoDB store, the Step Functions sink and the EventBridge announcer from
//! `pipeline-aws`; the CLI and the tests pass in the embedded store and in-memory sinks.
//!
//! # Layout
//! - [`config`]: [`Config`], every setting, read once from the environment (the only module
//!   that reads it).
//! - [`serve()`](mod@serve): the one stage abstraction, the [`Handler`] trait (a name, an input,
//!   an output and `run`), the one generic Lambda invocation around it and [`serve()`].
//!   A function binary is `serve(Stage::new(&config, …), &config.telemetry)`.
//! - [`stages`]: one type per stage ([`Ingest`], [`Validate`], [`Enrich`], [`Detect`],
//!   [`Persist`]) holding only what that stage needs.
//! - [`pipeline`]: [`Pipeline`], the stages after ingest chained in process over one shared
//!   store (the CLI's local runner), and [`CollectSink`].
//! - [`error`]: [`FunctionError`], which reports the core's stable `error_type` names.
//! - [`telemetry`]: tracing and EMF metrics set-up, the metric names, the invocation span.

pub mod config;
pub mod error;
pub mod pipeline;
pub mod serve;
pub mod stages;
pub mod telemetry;

pub use config::Config;
pub use error::FunctionError;
pub use pipeline::{CollectSink, Pipeline};
pub use pipeline_core::batch::Stage;
pub use pipeline_ingest::BatchSink;
pub use serve::{Handler, serve};
pub use stages::{Detect, Enrich, Ingest, Persist, PersistInput, Validate};
