//! Test support shared by the integration tests: the store contract suite, a deterministic
//! event factory, a store wrapper that runs a double's hooks around every call, and a double
//! that injects throttling and lost answers.
//!
//! The contract suite is written once and run against every [`Store`] implementation
//! (`tests/store_sqlite.rs`, `tests/store_dynamodb.rs`).

pub mod contract;
pub mod fixtures;
pub mod flaky;
pub mod hooked;

pub use pipeline_core::store::Store;
