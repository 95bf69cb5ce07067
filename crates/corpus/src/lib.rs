//! Synthetic event streams, deterministic from a seed: what `pipeline generate` writes.
//!
//! - [`stream`]: a transaction stream of the v1 contract (accounts with a home currency, a
//!   daily rhythm and usual merchants) with injected, per-event labelled anomalies, malformed
//!   lines, corrections and redeliveries: the sample the README's first run uses.
//! - [`benchmark`]: the labelled detection corpora (`--benchmark metric|business|clean`),
//!   labelled by windows as `pipeline evaluate` scores them.
//!
//! - [`nab`]: a public corpus in the Numenta Anomaly Benchmark's layout, read into events and
//!   the streams NAB's scorer takes.
//!
//! The synthetic ones use ChaCha8, whose stream is fixed across platforms and versions, so the same seed
//! gives byte-identical output. They emit JSON text, not the core's types: the streams are
//! input for the pipeline, and must be able to carry what the contract refuses.

pub mod benchmark;
pub mod nab;
pub mod stream;
