//! Incidents through the real stages: an episode of anomalies is one alert and one
//! announcement (and one more when it closes), and replayed input announces nothing new.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use pipeline_core::Error;
use pipeline_core::detect::IncidentRole;
use pipeline_core::persist::{Announcement, AnnouncementKind, Announcer, PersistReport};
use pipeline_handlers::{Config, Pipeline};
use pipeline_sqlite::SqliteStore;
use pipeline_tests::fixtures::{now, raw_batch};
use serde_json::{Value, json};

/// Keeps every announcement it is given.
#[derive(Default)]
struct Recorder(Mutex<Vec<Announcement>>);

#[async_trait::async_trait]
impl Announcer for Recorder {
    async fn announce(&self, anomalies: &[Announcement]) -> Result<(), Error> {
        self.0.lock().unwrap().extend_from_slice(anomalies);
        Ok(())
    }
}

fn event(id: String, minute: i64, value: f64, status: &str) -> Value {
    let at =
        Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).single().unwrap() + Duration::minutes(minute);
    json!({
        "event_id": id,
        "event_type": "payment.authorized",
        "source": "psp-test",
        "entity_id": "acct-1",
        "occurred_at": at.to_rfc3339(),
        "value": value,
        "currency": "EUR",
        "attributes": {"status": status, "country": "DE", "merchant": "grocer"},
    })
}

/// Runs `events` in batches of `size` and returns the reports.
async fn run(p: &Pipeline<SqliteStore>, events: &[Value], size: usize) -> Vec<PersistReport> {
    let mut out = Vec::new();
    for (k, chunk) in events.chunks(size).enumerate() {
        let batch = raw_batch(&format!("b{k}"), chunk.to_vec());
        out.push(p.run_batch(batch, now()).await.unwrap());
    }
    out
}

fn alerts(reports: &[PersistReport]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| &r.outcomes)
        .filter(|o| o.is_anomaly)
        .filter_map(|o| o.event_id.clone())
        .collect()
}

#[tokio::test]
async fn an_episode_is_one_alert_one_announcement_and_one_close() {
    let recorder = Arc::new(Recorder::default());
    let p = Pipeline::new(
        Config::defaults().unwrap(),
        SqliteStore::in_memory().unwrap(),
    )
    .unwrap()
    .with_announcer(recorder.clone());

    // A quiet history: 40 sessions, an hour apart, of 8 ordinary payments a minute apart (so
    // that 8 events in 8 minutes are this account's normal rate).
    // Amounts vary a little (no value repeats often enough to look stuck).
    let session = |tag: &str, hour: i64, status: &str, value: f64| -> Vec<Value> {
        (0..8)
            .map(|i| {
                let amount = value + ((hour * 8 + i) * 7919 % 13) as f64 / 4.0;
                event(format!("{tag}{hour:03}-{i}"), hour * 60 + i, amount, status)
            })
            .collect()
    };
    let mut events: Vec<Value> = (0..40).flat_map(|h| session("h", h, "ok", 20.0)).collect();
    // A burst of 8 declines, one a minute: the 6th is over the limit of 5 in 10 minutes.
    events.extend(session("f", 40, "declined", 21.0));
    // 13 hours later, ordinary again: this closes the burst's incident (12 h quiet).
    events.extend((53..58).flat_map(|h| session("q", h, "ok", 22.0)));
    // Then a run of 100 spikes, every other event, a minute apart.
    events.extend((0..200).map(|i| {
        let v = if i % 2 == 0 { 5_000.0 } else { 21.0 };
        event(format!("s{i:03}"), 58 * 60 + i, v, "ok")
    }));
    // And ordinary sessions more than 12 h after the last spike: the run's incident closes.
    events.extend((75..78).flat_map(|h| session("r", h, "ok", 20.0)));

    let reports = run(&p, &events, 25).await;
    let alerts = alerts(&reports);
    assert_eq!(alerts, ["f040-5", "s000"], "one alert per episode");
    // The 7th and 8th declines continue the burst's incident: anomalous, not alerts.
    let incident_of = |id: &str| {
        reports
            .iter()
            .flat_map(|r| &r.outcomes)
            .find(|o| o.event_id.as_deref() == Some(id))
            .and_then(|o| o.incident.clone())
    };
    for id in ["f040-6", "f040-7"] {
        let i = incident_of(id).unwrap();
        assert_eq!((i.id.as_str(), i.role), ("f040-5", IncidentRole::Continues));
    }

    let said = recorder.0.lock().unwrap().clone();
    let kinds: Vec<(AnnouncementKind, String)> =
        said.iter().map(|a| (a.kind, a.incident.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            (AnnouncementKind::Opened, alerts[0].clone()),
            (AnnouncementKind::Closed, alerts[0].clone()),
            (AnnouncementKind::Opened, alerts[1].clone()),
            (AnnouncementKind::Closed, alerts[1].clone()),
        ],
        "{said:#?}"
    );
    let burst = said[1].summary.as_ref().unwrap();
    assert_eq!((burst.last_event.as_str(), burst.events), ("f040-7", 3));
    assert_eq!(
        said[1].event_id, "q053-0",
        "the first event after the quiet period"
    );
    let spikes = said[3].summary.as_ref().unwrap();
    assert!(spikes.last_event.starts_with('s'), "{spikes:?}");
    // Stable ids for consumers to de-duplicate on.
    assert_eq!(said[0].id, "f040-5");
    assert_eq!(said[1].id, "f040-5/closed");

    // The same input again, in other batches: nothing new is alerted or announced.
    let again = run(&p, &events, 7).await;
    assert!(
        again.iter().all(|r| r.counts.persisted == 0),
        "replayed input stored nothing new"
    );
    assert_eq!(
        recorder.0.lock().unwrap().len(),
        4,
        "nothing announced again"
    );
}
