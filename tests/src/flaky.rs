//! A store wrapper that fails the first N calls with a throttling error, or lets entity commits
//! land and then reports them failed (a crash, or a response lost, right after the write), to
//! prove that a batch retried after a partial failure ends with nothing lost and nothing
//! counted twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use pipeline_core::Error;
use pipeline_core::detect::EntityState;
use pipeline_core::store::{
    CommitLimits, EntityCommit, EntityWrite, EventRecord, EventWrite, QuarantineRecord, Store,
    StoreDump, WriteResult,
};

/// Wraps a store; every call after `pass_first` successful ones fails with
/// `StoreThrottled` until `fail_next` failures have been injected.
pub struct FlakyStore<S> {
    inner: S,
    calls: AtomicUsize,
    pass_first: usize,
    fail_next: usize,
    lose_commits: AtomicUsize,
}

impl<S> FlakyStore<S> {
    /// Lets `pass_first` calls through, then fails `fail_next` calls, then passes everything.
    pub fn new(inner: S, pass_first: usize, fail_next: usize) -> Self {
        FlakyStore {
            inner,
            calls: AtomicUsize::new(0),
            pass_first,
            fail_next,
            lose_commits: AtomicUsize::new(0),
        }
    }

    /// The next `n` entity commits are applied, then reported as failed (retryably).
    pub fn lose_commits(&self, n: usize) {
        self.lose_commits.store(n, Ordering::SeqCst);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> usize {
        self.calls
            .load(Ordering::SeqCst)
            .saturating_sub(self.pass_first)
            .min(self.fail_next)
    }

    fn gate(&self, op: &str) -> Result<(), Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n >= self.pass_first && n < self.pass_first + self.fail_next {
            return Err(Error::StoreThrottled {
                message: format!("injected throttle on {op} (call {n})"),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl<S: Store> Store for FlakyStore<S> {
    async fn get_events(&self, ids: &[String]) -> Result<HashMap<String, EventRecord>, Error> {
        self.gate("get_events")?;
        self.inner.get_events(ids).await
    }
    async fn write_events(&self, writes: Vec<EventWrite>) -> Result<Vec<WriteResult>, Error> {
        self.gate("write_events")?;
        self.inner.write_events(writes).await
    }
    async fn get_entities(&self, ids: &[String]) -> Result<HashMap<String, EntityState>, Error> {
        self.gate("get_entities")?;
        self.inner.get_entities(ids).await
    }
    async fn commit_entity(&self, commit: &EntityCommit) -> Result<EntityWrite, Error> {
        self.gate("commit_entity")?;
        let written = self.inner.commit_entity(commit).await?;
        let lose = self
            .lose_commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lose {
            return Err(Error::StoreUnavailable {
                message: format!(
                    "injected: commit of {} landed, answer lost",
                    commit.state.entity_id
                ),
                source: None,
            });
        }
        Ok(written)
    }
    fn commit_limits(&self) -> CommitLimits {
        self.inner.commit_limits()
    }
    async fn put_quarantine(&self, items: &[QuarantineRecord]) -> Result<(), Error> {
        self.gate("put_quarantine")?;
        self.inner.put_quarantine(items).await
    }
    async fn flush(&self) -> Result<(), Error> {
        self.inner.flush().await
    }
    async fn replace_quarantine(&self, record: &QuarantineRecord) -> Result<(), Error> {
        self.gate("replace_quarantine")?;
        self.inner.replace_quarantine(record).await
    }
    async fn end_batch(&self) -> Result<(), Error> {
        self.inner.end_batch().await
    }
    async fn quarantine_of(&self, event_id: &str) -> Result<Vec<QuarantineRecord>, Error> {
        self.gate("quarantine_of")?;
        self.inner.quarantine_of(event_id).await
    }
    async fn list_anomalies(
        &self,
        entity_id: Option<&str>,
        limit: usize,
    ) -> Result<pipeline_core::store::Listing, Error> {
        self.inner.list_anomalies(entity_id, limit).await
    }
    async fn dump(&self) -> Result<StoreDump, Error> {
        self.inner.dump().await
    }
}
