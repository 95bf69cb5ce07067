//! What persisting costs on DynamoDB: write requests and write capacity units per event.
//!
//! Runs a stream of ~300-byte payment events through the real stages into a [`DynamoStore`]
//! on fresh tables, then delivers the whole stream again (every event a duplicate), and prints
//! the store's counters per event for each pass. Against a local emulator:
//!
//! ```text
//! eval "$(scripts/moto start)"
//! cargo run -p pipeline-aws --example write_cost -- [events=2000] [entities=50] [batch=100]
//! scripts/moto stop
//! ```
//!
//! Capacity is shown twice: as the service reported it (`ReturnConsumedCapacity: TOTAL`; moto
//! reports a flat 1.0 per write whatever the size) and as computed from the item sizes by
//! DynamoDB's rule (one WCU per started KB). The tables are deleted at the end.

use std::error::Error;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chrono::{Duration, TimeZone, Utc};
use pipeline_aws::{DynamoStore, StoreMetrics, Tables};
use pipeline_core::batch::{Batch, RawEvent};
use pipeline_core::event::Provenance;
use pipeline_handlers::{Config, Pipeline};
use serde_json::{Value, json};

/// A deterministic stream of payment events, one second apart, over `entities` accounts.
fn events(n: usize, entities: usize) -> Vec<Value> {
    let start = Utc
        .with_ymd_and_hms(2026, 11, 1, 8, 0, 0)
        .single()
        .unwrap_or_default();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |m: u64| {
        // xorshift64: enough variety for amounts and attributes, no dependency.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let countries = ["DE", "FR", "NL", "ES"];
    (0..n)
        .map(|i| {
            json!({
                "event_id": format!("evt-cost-{i:08}"),
                "event_type": "payment.authorized",
                "source": "psp-checkout",
                "entity_id": format!("acct-{:05}", next(entities.max(1) as u64)),
                "occurred_at": (start + Duration::seconds(i as i64)).to_rfc3339(),
                "value": (next(500_000) as f64) / 100.0,
                "currency": "EUR",
                "attributes": {
                    "country": countries[next(countries.len() as u64) as usize],
                    "merchant": format!("m-{:04}", next(800)),
                    "status": if next(10) < 2 { "declined" } else { "approved" },
                    "channel": "web",
                }
            })
        })
        .collect()
}

fn batch(id: String, payloads: &[Value]) -> Batch<RawEvent> {
    let events: Vec<RawEvent> = payloads
        .iter()
        .map(|p| RawEvent {
            payload: p.clone(),
            provenance: Provenance::Direct,
        })
        .collect();
    Batch {
        batch_id: id,
        received_at: Utc::now(),
        input_count: events.len(),
        events,
        quarantine: Vec::new(),
    }
}

fn arg(n: usize, default: usize) -> Result<usize, Box<dyn Error>> {
    match std::env::args().nth(n) {
        Some(v) => Ok(v
            .parse()
            .map_err(|e| format!("argument {n} ({v:?}) is not a count: {e}"))?),
        None => Ok(default),
    }
}

fn report(pass: &str, n: usize, m: &StoreMetrics, secs: f64) {
    let per = |x: f64| x / n as f64;
    println!("\n{pass}: {n} events in {secs:.1} s");
    println!(
        "  write requests / event       {:.3}",
        per(m.write_requests as f64)
    );
    println!(
        "    events table               {:.3}",
        per(m.events.requests as f64)
    );
    println!(
        "    entities table             {:.3}",
        per(m.entities.requests as f64)
    );
    println!(
        "    quarantine table           {:.3}",
        per(m.quarantine.requests as f64)
    );
    println!(
        "  WCU / event, from item sizes {:.3}",
        per(m.estimated_write_capacity_units as f64)
    );
    println!(
        "    events table               {:.3}",
        per(m.events.estimated_capacity_units as f64)
    );
    println!(
        "    entities table             {:.3}",
        per(m.entities.estimated_capacity_units as f64)
    );
    println!(
        "  WCU / event, server-reported {:.3}",
        per(m.write_capacity_units)
    );
    let mean = |t: &pipeline_aws::TableWrites| t.item_bytes.checked_div(t.requests).unwrap_or(0);
    println!("  mean item size, events       {} bytes", mean(&m.events));
    println!("  mean item size, entities     {} bytes", mean(&m.entities));
    println!(
        "  read requests / event        {:.3}",
        per(m.read_requests as f64)
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    if Config::from_env()?.loopback_endpoint().is_none() {
        eprintln!(
            "write_cost creates tables: point AWS_ENDPOINT_URL at an emulator on this machine first: eval \"$(scripts/moto start)\""
        );
        std::process::exit(2);
    }
    let (n, entities, batch_size) = (arg(1, 2000)?, arg(2, 50)?, arg(3, 100)?.max(1));
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let tables = Tables::with_prefix(&format!("write-cost-{nanos}"));
    let store = DynamoStore::new(&pipeline_aws::sdk_config().await, tables.clone());
    store.create_tables().await?;
    let pipeline = Pipeline::new(Config::defaults()?, store)?;

    let stream = events(n, entities);
    let bytes: usize = stream.iter().map(|e| e.to_string().len()).sum();
    println!(
        "{n} events over {entities} entities in batches of {batch_size}; mean event size {} bytes",
        bytes / n.max(1)
    );

    for pass in ["first delivery", "redelivery (all duplicates)"] {
        pipeline.store().reset_metrics();
        let started = Instant::now();
        for (i, chunk) in stream.chunks(batch_size).enumerate() {
            let report = pipeline
                .run_batch(batch(format!("b{i}"), chunk), Utc::now())
                .await?;
            if report.counts.accounted() != chunk.len() {
                return Err(
                    format!("batch {i}: counts do not reconcile: {:?}", report.counts).into(),
                );
            }
        }
        report(
            pass,
            n,
            &pipeline.store().metrics(),
            started.elapsed().as_secs_f64(),
        );
    }

    let client = pipeline.store().client();
    for t in [&tables.events, &tables.entities, &tables.quarantine] {
        client.delete_table().table_name(t).send().await?;
    }
    Ok(())
}
