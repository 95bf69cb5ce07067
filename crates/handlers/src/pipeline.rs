//! [`Pipeline`]: the local runner's composition of the stages over one shared store, plus
//! [`CollectSink`], a [`BatchSink`] that keeps what ingest hands it.
//!
//! The Lambda functions do not use it: each runs one stage type from [`crate::stages`].

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pipeline_core::Error;
use pipeline_core::batch::{Batch, RawEvent, ValidEvent};
use pipeline_core::detect::ScoredEvent;
use pipeline_core::enrich::EnrichedEvent;
use pipeline_core::persist::{Announcer, FailedBatch, PersistReport};
use pipeline_core::store::Store;
use pipeline_ingest::{self as ingest, BatchSink, Item, SplitLimits};
use serde_json::Value;

use crate::config::Config;
use crate::stages::{Detect, Enrich, Persist, Validate};

/// Every stage after ingest, bound to one configuration and one store, built once per process.
pub struct Pipeline<S> {
    config: Config,
    store: Arc<S>,
    limits: SplitLimits,
    validate: Validate,
    enrich: Enrich,
    detect: Detect<Arc<S>>,
    persist: Persist<Arc<S>>,
}

impl<S: Store> Pipeline<S> {
    /// Binds a store to a configuration.
    pub fn new(config: Config, store: S) -> Result<Self, Error> {
        let store = Arc::new(store);
        Ok(Pipeline {
            validate: Validate::new(&config)?,
            enrich: Enrich::new(&config),
            detect: Detect::new(&config, Arc::clone(&store)),
            persist: Persist::new(&config, Arc::clone(&store)),
            limits: SplitLimits::default(),
            store,
            config,
        })
    }

    /// Announces new anomalies through `announcer`.
    pub fn with_announcer(mut self, announcer: Arc<dyn Announcer>) -> Self {
        self.persist = self.persist.with_announcer(announcer);
        self
    }

    /// Cuts batches with `limits` instead of the Lambda's defaults.
    pub fn with_limits(mut self, limits: SplitLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits batches are cut with.
    pub fn limits(&self) -> SplitLimits {
        self.limits
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The validate stage (its Lambda handler included).
    pub fn validate_stage(&self) -> &Validate {
        &self.validate
    }

    /// The enrich stage.
    pub fn enrich_stage(&self) -> &Enrich {
        &self.enrich
    }

    /// The detect stage.
    pub fn detect_stage(&self) -> &Detect<Arc<S>> {
        &self.detect
    }

    /// The persist stage.
    pub fn persist_stage(&self) -> &Persist<Arc<S>> {
        &self.persist
    }

    /// Ingest: decodes a Kafka or EventBridge payload and cuts it into batch documents.
    pub fn ingest(
        &self,
        input: &Value,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Batch<RawEvent>>, Error> {
        Ok(self.split(
            ingest::decode_with(input, &self.config.registry)?,
            received_at,
        ))
    }

    /// Cuts decoded items into batch documents.
    pub fn split(&self, items: Vec<Item>, received_at: DateTime<Utc>) -> Vec<Batch<RawEvent>> {
        ingest::split(items, received_at, self.limits)
    }

    /// Validate.
    pub fn validate(&self, batch: Batch<RawEvent>) -> Batch<ValidEvent> {
        self.validate.validate(batch)
    }

    /// Enrich (reads nothing).
    pub fn enrich(&self, batch: Batch<ValidEvent>) -> Batch<EnrichedEvent> {
        self.enrich.enrich(batch)
    }

    /// Detect, reading entity state from the store.
    pub async fn detect(&self, batch: Batch<EnrichedEvent>) -> Result<Batch<ScoredEvent>, Error> {
        self.detect.detect(batch).await
    }

    /// Persist at time `now`.
    pub async fn persist(
        &self,
        batch: Batch<ScoredEvent>,
        now: DateTime<Utc>,
    ) -> Result<PersistReport, Error> {
        self.persist.persist(batch, now).await
    }

    /// The quarantine path for a batch that failed a stage for good.
    pub async fn quarantine_failed(
        &self,
        failed: FailedBatch,
        now: DateTime<Utc>,
    ) -> Result<PersistReport, Error> {
        self.persist.quarantine_failed(failed, now).await
    }

    /// All four stages after ingest, in process.
    pub async fn run_batch(
        &self,
        batch: Batch<RawEvent>,
        now: DateTime<Utc>,
    ) -> Result<PersistReport, Error> {
        let valid = self.validate(batch);
        let enriched = self.enrich(valid);
        let scored = self.detect(enriched).await?;
        self.persist(scored, now).await
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
