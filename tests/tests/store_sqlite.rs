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

#[tokio::test]
async fn entity_commits_are_independent() {
    contract::entity_commits_are_independent(mem()).await;
}

#[tokio::test]
async fn entity_commits_are_independent_with_group_commit() {
    contract::entity_commits_are_independent(
        mem().with_group_commit(std::time::Duration::from_secs(60)),
    )
    .await;
}

/// Group commit: writes are visible to another connection only once flushed, and a store
/// dropped before its flush leaves nothing of the group behind (records and entity states
/// alike), so a rerun starts from a consistent database.
#[tokio::test]
async fn group_commit_is_all_or_nothing() {
    use pipeline_core::store::Store;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let events = pipeline_tests::fixtures::payments(30, 3, 71);
    let batch = pipeline_tests::fixtures::raw_batch("g1", events);

    // Dropped unflushed: nothing stays.
    {
        let grouped = SqliteStore::open(&path)
            .unwrap()
            .with_group_commit(std::time::Duration::from_secs(60));
        let p = contract::pipeline(grouped);
        let r = contract::run_retrying(&p, &batch).await;
        assert_eq!(r.counts.persisted, 30);
        let other = SqliteStore::open(&path).unwrap();
        assert!(
            other.dump().await.unwrap().events.is_empty(),
            "unflushed writes are not visible"
        );
    }
    let after_drop = SqliteStore::open(&path).unwrap().dump().await.unwrap();
    assert!(after_drop.events.is_empty() && after_drop.entities.is_empty());

    // Flushed: everything stays, and a rerun counts nothing twice.
    let grouped = SqliteStore::open(&path)
        .unwrap()
        .with_group_commit(std::time::Duration::from_secs(60));
    let p = contract::pipeline(grouped);
    assert_eq!(
        contract::run_retrying(&p, &batch).await.counts.persisted,
        30
    );
    p.store().flush().await.unwrap();
    let dump = SqliteStore::open(&path).unwrap().dump().await.unwrap();
    assert_eq!(dump.events.len(), 30);
    assert_eq!(dump.entities.iter().map(|e| e.count).sum::<u64>(), 30);
    assert_eq!(
        contract::run_retrying(&p, &batch).await.counts.duplicate,
        30
    );
}
