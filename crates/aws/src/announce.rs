//! Anomaly announcements on EventBridge.
//!
//! One entry per announcement (`source` = `event-pipeline`, `detail-type` =
//! `pipeline.anomaly`): an incident opened, escalated or closed (`kind`), the detail carrying
//! a stable `id` to de-duplicate on (the event id, or `<incident>/closed`). `PutEvents` takes at most 10
//! entries per call and can fail per entry: failed entries, and only those, are sent again
//! ([`crate::eventbridge::put_with_resend`]) before the batch fails with
//! `Pipeline.Retryable.AnnounceFailed`; a refused call (missing bus, access denied) fails it
//! with the fatal `Pipeline.Fatal.ServiceRejected`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use pipeline_core::Error as CoreError;
use pipeline_core::persist::{Announcement, Announcer, NoAnnouncer};

use crate::cause;
use crate::eventbridge::{MAX_ENTRIES_PER_CALL, PutEventsSdkError, backoff, put_with_resend};

/// `source` of every announcement.
pub const SOURCE: &str = "event-pipeline";
/// `detail-type` of every announcement.
pub const DETAIL_TYPE: &str = "pipeline.anomaly";

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

    /// An announcer on `bus` through `client` (tests give it one with an interceptor).
    pub fn with_client(client: Client, bus: String) -> Self {
        EventBridgeAnnouncer { client, bus }
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

    fn rejected(&self, e: PutEventsSdkError) -> CoreError {
        CoreError::ServiceRejected {
            service: "eventbridge",
            message: format!("PutEvents on bus {}: {}", self.bus, cause::detail(&e)),
            source: Some(Box::new(e)),
        }
    }
}

#[async_trait]
impl Announcer for EventBridgeAnnouncer {
    async fn announce(&self, anomalies: &[Announcement]) -> Result<(), CoreError> {
        let entries: Vec<PutEventsRequestEntry> = anomalies
            .iter()
            .map(|a| self.entry(a))
            .collect::<Result<_, _>>()?;
        let policy = backoff(Duration::from_millis(100), Duration::from_secs(3), 5);
        for chunk in entries.chunks(MAX_ENTRIES_PER_CALL) {
            let outcome = put_with_resend(&self.client, chunk.to_vec(), Clone::clone, &policy)
                .await
                .map_err(|e| self.rejected(e))?;
            if !outcome.refused.is_empty() {
                let codes: Vec<&str> = outcome
                    .refused
                    .iter()
                    .map(|(_, f)| f.code.as_str())
                    .collect();
                return Err(CoreError::AnnounceFailed {
                    failed: outcome.refused.len(),
                    detail: codes.join(", "),
                });
            }
        }
        Ok(())
    }
}
