//! The store contract suite on the embedded SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pipeline_sqlite::SqliteStore;
use pipeline_tests::contract;

fn mem() -> SqliteStore {
    SqliteStore::in_memory().expect("in-memory sqlite")
}

#[tokio::test]
async fn upsert_outcomes() {
    contract::upsert_outcomes(mem()).await;
}

#[tokio::test]
async fn redelivery_is_exactly_once() {
    for seed in [1, 2, 3] {
        contract::redelivery_is_exactly_once(mem(), mem(), seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing() {
    // A file, not memory: two connections' worth of contention is what the test is about.
    let dir = tempfile::tempdir().unwrap();
    contract::concurrent_writers_lose_nothing(SqliteStore::open(&dir.path().join("c.db")).unwrap())
        .await;
}

#[tokio::test]
async fn exactly_once_without_a_bound() {
    contract::exactly_once_without_a_bound(mem()).await;
}

#[tokio::test]
async fn throttled_batches_lose_nothing() {
    contract::throttled_batches_lose_nothing(mem(), mem()).await;
}

#[tokio::test]
async fn quarantine_is_stored_and_counts_reconcile() {
    contract::quarantine_is_stored_and_counts_reconcile(mem()).await;
}

#[tokio::test]
async fn quarantine_is_found_by_event_id() {
    contract::quarantine_is_found_by_event_id(mem()).await;
}

#[tokio::test]
async fn oversized_events_are_quarantined_within_item_limits() {
    contract::oversized_events_are_quarantined_within_item_limits(mem()).await;
}
