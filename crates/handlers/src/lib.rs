//! The Lambda handlers, as library functions.
//!
//! Each function binary in `functions/` is a few lines that build a [`Pipeline`] once and hand
//! one of these handlers to `lambda_runtime::run`. The CLI and the tests call the same
//! handlers (or the typed [`Pipeline`] methods under them) with fixtures from `events/`.
//!
//! # Layout
//! - [`config`]: settings read once from the environment.
//! - [`error`]: [`FunctionError`], which reports the core's stable `error_type` names.
//! - [`pipeline`]: [`Pipeline`], the stages bound to their settings and a store.
//! - [`handlers`]: one `async fn` per Lambda: `ingest`, `validate`, `enrich`, `detect`, `persist`.
//! - [`telemetry`]: tracing set-up for Lambda (JSON or text, level from the environment).

pub mod config;
pub mod error;
pub mod handlers;
pub mod pipeline;
pub mod telemetry;

pub use config::Config;
pub use error::FunctionError;
pub use pipeline::{CollectSink, Pipeline};
pub use pipeline_core::batch::Stage;
pub use pipeline_core::ingest::BatchSink;
