//! A store wrapper that runs a test double's hooks around every call to the store it wraps, so
//! that a double says only what it changes (fail a call, lose a commit's answer, look at the
//! file after a write) and the delegation of every `Store` method is written once, here.

use std::collections::HashMap;

use async_trait::async_trait;
use pipeline_core::Error;
use pipeline_core::detect::EntityState;
use pipeline_core::store::{
    Batching, CommitLimits, EntityCommit, EntityStore, EntityWrite, EventRecord, EventStore,
    EventWrite, Inspect, Listing, QuarantineRecord, QuarantineStore, Store, StoreDump, WriteResult,
};

/// The store calls a hook sees, one per `Store` method (named after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `Store::get_events`.
    GetEvents,
    /// `Store::write_events`.
    WriteEvents,
    /// `Store::get_entities`.
    GetEntities,
    /// `Store::commit_entity`.
    CommitEntity,
    /// `Store::commit_entities`.
    CommitEntities,
    /// `Store::put_quarantine`.
    PutQuarantine,
    /// `Store::replace_quarantine`.
    ReplaceQuarantine,
    /// `Store::list_quarantine`.
    ListQuarantine,
    /// `Store::quarantine_of`.
    QuarantineOf,
    /// `Store::list_anomalies`.
    ListAnomalies,
    /// `Store::dump`.
    Dump,
    /// `Store::flush`.
    Flush,
    /// `Store::end_batch`.
    EndBatch,
}

/// What a test double does around the calls; every hook does nothing unless overridden.
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Before the call: an error fails it without reaching the store.
    fn before(&self, _op: Op) -> Result<(), Error> {
        Ok(())
    }
    /// After the call reached the store, told whether it succeeded: an error replaces its
    /// answer (the write landed, the response was lost).
    async fn after(&self, _op: Op, _succeeded: bool) -> Result<(), Error> {
        Ok(())
    }
    /// Whether a batch of entity commits goes through [`Op::CommitEntity`] one commit at a
    /// time (as a store without a batched commit would), rather than as one call.
    fn one_commit_at_a_time(&self) -> bool {
        false
    }
}

/// `inner` with `hooks` around every call.
pub struct Hooked<S, H> {
    /// The wrapped store.
    pub inner: S,
    /// The double's hooks (and whatever state they keep).
    pub hooks: H,
}

impl<S, H: Hooks> Hooked<S, H> {
    async fn call<T>(
        &self,
        op: Op,
        call: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        self.hooks.before(op)?;
        let r = call.await;
        self.hooks.after(op, r.is_ok()).await?;
        r
    }
}

#[async_trait]
impl<S: Store, H: Hooks> EventStore for Hooked<S, H> {
    async fn get_events(&self, ids: &[String]) -> Result<HashMap<String, EventRecord>, Error> {
        self.call(Op::GetEvents, self.inner.get_events(ids)).await
    }
    async fn write_events(&self, writes: Vec<EventWrite>) -> Result<Vec<WriteResult>, Error> {
        self.call(Op::WriteEvents, self.inner.write_events(writes))
            .await
    }
}

#[async_trait]
impl<S: Store, H: Hooks> EntityStore for Hooked<S, H> {
    async fn get_entities(&self, ids: &[String]) -> Result<HashMap<String, EntityState>, Error> {
        self.call(Op::GetEntities, self.inner.get_entities(ids))
            .await
    }
    async fn commit_entity(&self, commit: &EntityCommit) -> Result<EntityWrite, Error> {
        self.call(Op::CommitEntity, self.inner.commit_entity(commit))
            .await
    }
    async fn commit_entities(&self, commits: &[EntityCommit]) -> Result<Vec<EntityWrite>, Error> {
        if self.hooks.one_commit_at_a_time() {
            let mut out = Vec::with_capacity(commits.len());
            for c in commits {
                out.push(self.commit_entity(c).await?);
            }
            return Ok(out);
        }
        self.call(Op::CommitEntities, self.inner.commit_entities(commits))
            .await
    }
    fn commit_limits(&self) -> CommitLimits {
        self.inner.commit_limits()
    }
}

#[async_trait]
impl<S: Store, H: Hooks> QuarantineStore for Hooked<S, H> {
    async fn put_quarantine(&self, items: &[QuarantineRecord]) -> Result<(), Error> {
        self.call(Op::PutQuarantine, self.inner.put_quarantine(items))
            .await
    }
    async fn replace_quarantine(&self, record: &QuarantineRecord) -> Result<(), Error> {
        self.call(Op::ReplaceQuarantine, self.inner.replace_quarantine(record))
            .await
    }
    async fn scan_quarantine(&self) -> Result<Vec<QuarantineRecord>, Error> {
        self.call(Op::ListQuarantine, self.inner.scan_quarantine())
            .await
    }
    async fn scan_quarantine_of(&self, event_id: &str) -> Result<Vec<QuarantineRecord>, Error> {
        self.call(Op::QuarantineOf, self.inner.scan_quarantine_of(event_id))
            .await
    }
}

#[async_trait]
impl<S: Store, H: Hooks> Batching for Hooked<S, H> {
    async fn flush(&self) -> Result<(), Error> {
        self.call(Op::Flush, self.inner.flush()).await
    }
    async fn end_batch(&self) -> Result<(), Error> {
        self.call(Op::EndBatch, self.inner.end_batch()).await
    }
}

#[async_trait]
impl<S: Store, H: Hooks> Inspect for Hooked<S, H> {
    async fn list_anomalies(
        &self,
        entity_id: Option<&str>,
        limit: usize,
    ) -> Result<Listing, Error> {
        self.call(
            Op::ListAnomalies,
            self.inner.list_anomalies(entity_id, limit),
        )
        .await
    }
    async fn scan_all(&self) -> Result<StoreDump, Error> {
        self.call(Op::Dump, self.inner.scan_all()).await
    }
}
