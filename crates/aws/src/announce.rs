//! Anomaly announcements on EventBridge.
//!
//! One entry per anomaly (`source` = `event-pipeline`, `detail-type` = `pipeline.anomaly`,
//! the detail carries `event_id` so consumers can de-duplicate). `PutEvents` takes at most 10
//! entries per call and can fail per entry: failed entries, and only those, are sent again
//! with exponential backoff and jitter (the `backon` crate) before the batch fails with
//! `Pipeline.Retryable.AnnounceFailed`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use backon::{BackoffBuilder, ExponentialBuilder};
use pipeline_core::Error as CoreError;
use pipeline_core::persist::{Announcement, Announcer, NoAnnouncer};

/// `source` of every announcement.
pub const SOURCE: &str = "event-pipeline";
/// `detail-type` of every announcement.
pub const DETAIL_TYPE: &str = "pipeline.anomaly";
/// Entries per `PutEvents` call (the API's limit).
const MAX_ENTRIES: usize = 10;

/// Publishes anomalies on one event bus.
#[derive(Debug, Clone)]
pub struct EventBridgeAnnouncer {
    client: Client,
    bus: String,
}

impl EventBridgeAnnouncer {
    /// Announces on `bus` (name or ARN).
    pub fn new(sdk: &aws_config::SdkConfig, bus: String) -> Self {
        EventBridgeAnnouncer {
            client: Client::new(sdk),
            bus,
        }
    }

    /// The announcer persist uses: on `bus` when one is configured, otherwise none
    /// (anomalies are stored but not announced).
    pub fn for_bus(sdk: &aws_config::SdkConfig, bus: Option<&str>) -> Arc<dyn Announcer> {
        match bus {
            Some(bus) => Arc::new(Self::new(sdk, bus.to_owned())),
            None => Arc::new(NoAnnouncer),
        }
    }

    fn entry(&self, a: &Announcement) -> Result<PutEventsRequestEntry, CoreError> {
        let detail = serde_json::to_string(a).map_err(|e| CoreError::AnnounceFailed {
            failed: 1,
            detail: e.to_string(),
        })?;
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(DETAIL_TYPE)
            .detail(detail)
            .build())
    }

    /// Sends `entries` once; returns the ones that failed, with their error codes.
    async fn put(
        &self,
        entries: Vec<PutEventsRequestEntry>,
    ) -> Result<(), (Vec<PutEventsRequestEntry>, String)> {
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries.clone()))
            .send()
            .await
            .map_err(|e| {
                (
                    entries.clone(),
                    aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        if out.failed_entry_count() == 0 {
            return Ok(());
        }
        // Results are positional: result i belongs to entry i.
        let mut failed = Vec::new();
        let mut codes = Vec::new();
        for (entry, result) in entries.into_iter().zip(out.entries()) {
            if let Some(code) = result.error_code() {
                codes.push(code.to_owned());
                failed.push(entry);
            }
        }
        Err((failed, codes.join(", ")))
    }
}

#[async_trait]
impl Announcer for EventBridgeAnnouncer {
    async fn announce(&self, anomalies: &[Announcement]) -> Result<(), CoreError> {
        let entries: Vec<PutEventsRequestEntry> = anomalies
            .iter()
            .map(|a| self.entry(a))
            .collect::<Result<_, _>>()?;
        for chunk in entries.chunks(MAX_ENTRIES) {
            let mut pending = chunk.to_vec();
            let backoff = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(3))
                .with_max_times(5)
                .with_jitter();
            let mut delays = backoff.build();
            loop {
                match self.put(pending).await {
                    Ok(()) => break,
                    Err((failed, detail)) => {
                        tracing::warn!(failed = failed.len(), %detail, "some anomaly announcements failed; retrying those");
                        pending = failed;
                        match delays.next() {
                            Some(d) => tokio::time::sleep(d).await,
                            None => {
                                return Err(CoreError::AnnounceFailed {
                                    failed: pending.len(),
                                    detail,
                                });
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
