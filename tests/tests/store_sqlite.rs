//! The store suite on the embedded SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pipeline_core::store::Batching;
use pipeline_core::store::Inspect;
use pipeline_sqlite::SqliteStore;
use pipeline_tests::hooked::{Hooked, Hooks, Op};
use pipeline_tests::store_suite;

fn mem() -> SqliteStore {
    SqliteStore::in_memory().expect("in-memory sqlite")
}

#[tokio::test]
async fn upsert_outcomes() {
    store_suite::upsert_outcomes(mem()).await;
}

#[tokio::test]
async fn redelivery_is_exactly_once() {
    for seed in [1, 2, 3] {
        store_suite::redelivery_is_exactly_once(mem(), mem(), seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing() {
    // A file, not memory: two connections' worth of contention is what the test is about.
    let dir = tempfile::tempdir().unwrap();
    store_suite::concurrent_writers_lose_nothing(
        SqliteStore::open(&dir.path().join("c.db")).unwrap(),
    )
    .await;
}

#[tokio::test]
async fn exactly_once_without_a_bound() {
    store_suite::exactly_once_without_a_bound(mem()).await;
}

#[tokio::test]
async fn throttled_batches_lose_nothing() {
    store_suite::throttled_batches_lose_nothing(mem(), mem()).await;
}

#[tokio::test]
async fn quarantine_is_stored_and_counts_reconcile() {
    store_suite::quarantine_is_stored_and_counts_reconcile(mem()).await;
}

#[tokio::test]
async fn quarantine_entries_are_listed_and_replaced() {
    store_suite::quarantine_entries_are_listed_and_replaced(mem()).await;
}

#[tokio::test]
async fn quarantine_is_found_by_event_id() {
    store_suite::quarantine_is_found_by_event_id(mem()).await;
}

#[tokio::test]
async fn oversized_events_are_quarantined_within_item_limits() {
    store_suite::oversized_events_are_quarantined_within_item_limits(mem()).await;
}

#[tokio::test]
async fn entity_commits_are_independent() {
    store_suite::entity_commits_are_independent(mem()).await;
}

#[tokio::test]
async fn entity_commits_are_independent_with_group_commit() {
    store_suite::entity_commits_are_independent(
        mem().with_group_commit(std::time::Duration::from_secs(60)),
    )
    .await;
}

/// Group commit: writes are visible to another connection only once flushed, and a store
/// dropped before its flush leaves nothing of the group behind (records and entity states
/// alike), so a rerun starts from a consistent database.
#[tokio::test]
async fn group_commit_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let events = pipeline_tests::fixtures::payments(30, 3, 71);
    let batch = pipeline_tests::fixtures::raw_batch("g1", events);

    // Dropped unflushed: nothing stays.
    {
        let grouped = SqliteStore::open(&path)
            .unwrap()
            .with_group_commit(std::time::Duration::from_secs(60));
        let p = store_suite::pipeline(grouped);
        let r = store_suite::run_retrying(&p, &batch).await;
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
    let p = store_suite::pipeline(grouped);
    assert_eq!(
        store_suite::run_retrying(&p, &batch).await.counts.persisted,
        30
    );
    p.store().flush().await.unwrap();
    let dump = SqliteStore::open(&path).unwrap().dump().await.unwrap();
    assert_eq!(dump.events.len(), 30);
    assert_eq!(dump.entities.iter().map(|e| e.count).sum::<u64>(), 30);
    assert_eq!(
        store_suite::run_retrying(&p, &batch).await.counts.duplicate,
        30
    );
}

/// Group commit ends a group only between batches. With a zero group time every batch's end
/// commits, yet another connection sees nothing of a batch before its end, although the batch
/// makes several write calls (new events, then a correction). A group ending between those
/// calls let a crash keep a batch's new events without its correction, and the rerun enrich
/// the correction against an entity state that already counted them.
#[tokio::test]
async fn a_group_ends_only_between_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let spy = Hooked {
        inner: SqliteStore::open(&path)
            .unwrap()
            .with_group_commit(std::time::Duration::ZERO),
        hooks: Look {
            path: path.clone(),
            seen: std::sync::Mutex::new(Vec::new()),
        },
    };
    let p = store_suite::pipeline(spy);
    let events = pipeline_tests::fixtures::payments(10, 1, 17);
    let r = store_suite::run_retrying(
        &p,
        &pipeline_tests::fixtures::raw_batch("b1", events[..5].to_vec()),
    )
    .await;
    assert_eq!(r.counts.persisted, 5);

    let mut second = events[5..].to_vec();
    let mut correction = events[0].clone();
    correction["version"] = 2.into();
    correction["value"] = 12.5.into();
    second.push(correction);
    let r = store_suite::run_retrying(&p, &pipeline_tests::fixtures::raw_batch("b2", second)).await;
    assert_eq!((r.counts.persisted, r.counts.updated), (5, 1));

    let seen = p.store().hooks.seen.lock().unwrap().clone();
    assert!(
        seen.len() >= 3,
        "each batch makes its write calls: {seen:?}"
    );
    assert!(
        seen.iter().all(|&n| n == 0 || n == 5),
        "after every write call another connection sees whole batches only: {seen:?}"
    );
    let dump = SqliteStore::open(&path).unwrap().dump().await.unwrap();
    assert_eq!(dump.events.len(), 10);
    assert_eq!(dump.entities.iter().map(|e| e.count).sum::<u64>(), 10);
}

/// After each write call to the store it watches, records how many records another
/// connection to the same file sees.
struct Look {
    path: std::path::PathBuf,
    seen: std::sync::Mutex<Vec<usize>>,
}

#[async_trait::async_trait]
impl Hooks for Look {
    async fn after(&self, op: Op, _: bool) -> Result<(), pipeline_core::Error> {
        if matches!(
            op,
            Op::WriteEvents | Op::CommitEntity | Op::CommitEntities | Op::PutQuarantine
        ) {
            let n = SqliteStore::open(&self.path)
                .unwrap()
                .dump()
                .await
                .unwrap()
                .events
                .len();
            self.seen.lock().unwrap().push(n);
        }
        Ok(())
    }
}

#[test]
fn many_openers_creating_one_new_file_at_once_all_open_it() {
    // Two `pipeline run`s started at once on a new file: each open checks that the file is a
    // store (or empty) and creates the tables. Before the tables were created in one
    // transaction, an opener could see another's half-made schema and refuse the file as
    // "not a pipeline store"; racing for the switch to WAL can also answer "database is
    // locked" at once, busy timeout or not. Six connections, twenty new files.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("race-{round}.db"));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&path)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), Ok(()), "round {round}");
        }
    }
}
