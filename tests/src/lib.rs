//! Test support shared by the integration tests: the store contract suite, a deterministic
//! event factory, and a store wrapper that injects throttling.
//!
//! The contract suite is written once and run against every [`Store`] implementation
//! (`tests/store_sqlite.rs`, `tests/store_dynamodb.rs`).

pub mod contract;
pub mod fixtures;
pub mod flaky;

pub use pipeline_core::store::Store;
