//! [`Pipeline`]: the stages bound to their configuration and a store, plus the [`BatchSink`]
//! that ingest hands its batches to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pipeline_core::Error;
use pipeline_core::batch::{Batch, RawEvent, ValidEvent};
use pipeline_core::contract::Contract;
use pipeline_core::detect::{EntityState, ScoredEvent};
use pipeline_core::enrich::EnrichedEvent;
use pipeline_core::ingest::{self, BatchSink, Item, SplitLimits};
use pipeline_core::persist::{Announcer, FailedBatch, NoAnnouncer, PersistReport};
use pipeline_core::store::Store;
use serde_json::Value;

use crate::config::Config;

/// The stages with everything they need, built once per process.
pub struct Pipeline<S> {
    /// Settings.
    pub config: Config,
    /// The compiled contract.
    pub contract: Contract,
    /// Where records and entity state live.
    pub store: S,
    /// Batch size limits for ingest.
    pub limits: SplitLimits,
    /// Where persist announces new anomalies.
    pub announcer: Arc<dyn Announcer>,
}

impl<S: Store> Pipeline<S> {
    /// Binds a store to a configuration.
    pub fn new(config: Config, store: S) -> Result<Self, Error> {
        Ok(Pipeline {
            config,
            contract: Contract::v1()?,
            store,
            limits: SplitLimits::default(),
            announcer: Arc::new(NoAnnouncer),
        })
    }

    /// Announces new anomalies through `announcer` (EventBridge in the Lambda).
    pub fn with_announcer(mut self, announcer: Arc<dyn Announcer>) -> Self {
        self.announcer = announcer;
        self
    }

    /// Ingest: decodes a Kafka or EventBridge payload and cuts it into batch documents.
    pub fn ingest(
        &self,
        input: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Batch<RawEvent>>, Error> {
        Ok(self.split(ingest::decode(input)?, received_at))
    }

    /// Cuts decoded items into batch documents.
    pub fn split(&self, items: Vec<Item>, received_at: DateTime<Utc>) -> Vec<Batch<RawEvent>> {
        ingest::split(items, received_at, self.limits)
    }

    /// Validate.
    pub fn validate(&self, batch: Batch<RawEvent>) -> Batch<ValidEvent> {
        pipeline_core::validate::validate(batch, &self.contract, &self.config.validate)
    }

    /// Enrich, reading entity profiles from the store.
    pub async fn enrich(&self, batch: Batch<ValidEvent>) -> Result<Batch<EnrichedEvent>, Error> {
        let states = self
            .entities(batch.events.iter().map(|e| e.event.entity_id.as_str()))
            .await?;
        Ok(pipeline_core::enrich::enrich(
            batch,
            &self.config.fx,
            &states,
        ))
    }

    /// Detect, reading entity state from the store.
    pub async fn detect(&self, batch: Batch<EnrichedEvent>) -> Result<Batch<ScoredEvent>, Error> {
        let states = self
            .entities(batch.events.iter().map(|e| e.event.entity_id.as_str()))
            .await?;
        Ok(pipeline_core::detect::detect(
            batch,
            &states,
            &self.config.detect,
        ))
    }

    /// Persist at time `now`.
    pub async fn persist(
        &self,
        batch: Batch<ScoredEvent>,
        now: DateTime<Utc>,
    ) -> Result<PersistReport, Error> {
        pipeline_core::persist::persist_and_announce(
            &self.store,
            batch,
            &self.config.persist,
            now,
            &*self.announcer,
        )
        .await
    }

    /// The quarantine path for a batch that failed a stage for good.
    pub async fn quarantine_failed(
        &self,
        failed: FailedBatch,
        now: DateTime<Utc>,
    ) -> Result<PersistReport, Error> {
        pipeline_core::persist::quarantine_failed_batch(&self.store, failed, now).await
    }

    /// All four stages after ingest, in process.
    pub async fn run_batch(
        &self,
        batch: Batch<RawEvent>,
        now: DateTime<Utc>,
    ) -> Result<PersistReport, Error> {
        let valid = self.validate(batch);
        let enriched = self.enrich(valid).await?;
        let scored = self.detect(enriched).await?;
        self.persist(scored, now).await
    }

    async fn entities<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, EntityState>, Error> {
        let mut ids: Vec<String> = ids.map(str::to_owned).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.store.get_entities(&ids).await
    }
}

/// A sink that keeps the batches (tests; the ingest function returns them in its response).
#[derive(Debug, Default)]
pub struct CollectSink {
    batches: Mutex<Vec<Batch<RawEvent>>>,
}

impl CollectSink {
    /// Takes the batches collected so far.
    pub fn take(&self) -> Vec<Batch<RawEvent>> {
        match self.batches.lock() {
            Ok(mut b) => std::mem::take(&mut *b),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

#[async_trait]
impl BatchSink for CollectSink {
    async fn submit(&self, batch: &Batch<RawEvent>) -> Result<(), Error> {
        match self.batches.lock() {
            Ok(mut b) => b.push(batch.clone()),
            Err(poisoned) => poisoned.into_inner().push(batch.clone()),
        }
        Ok(())
    }
}
