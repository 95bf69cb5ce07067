//! Test support shared by the integration tests: the store suite (`store_suite`), a deterministic
//! event factory, a store wrapper that runs a double's hooks around every call, and a double
//! that injects throttling and lost answers.
//!
//! The store suite is written once and run against every [`Store`] implementation
//! (`tests/store_sqlite.rs`, `tests/store_dynamodb.rs`).

pub mod fixtures;
pub mod flaky;
pub mod hooked;
pub mod store_suite;

pub use pipeline_core::store::Store;
