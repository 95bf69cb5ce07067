//! A realistic, deterministic transaction stream with labelled anomalies (`pipeline generate`).
//!
//! Each entity (an account) has a home country and currency, a typical amount (log-normal
//! around its own median), a handful of usual merchants, and a daily rhythm in its local time.
//! Into that background the generator injects, and labels:
//! - `failure_burst`: 6–8 declined payments within a few minutes;
//! - `spike`: an amount 40–120× the entity's median;
//! - `new_country`: a payment from a country the entity never used;
//! - `malformed`: lines that are not JSON, miss fields, carry an unknown currency or a
//!   timestamp in the future;
//! - `correction` (version 2 of an earlier event) and `redelivery` (an exact repeat), which are
//!   not anomalies but exercise `updated` and `duplicate`.
//!
//! The same `--seed` gives byte-identical output: the generator uses ChaCha8, whose stream is
//! fixed across platforms and versions.

use std::io::Write;

use chrono::{DateTime, Duration, FixedOffset, Offset, TimeZone, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// Generator settings.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// Events to write (malformed lines included).
    pub events: usize,
    /// Distinct entities.
    pub entities: usize,
    /// Seed.
    pub seed: u64,
    /// Event time of the first event.
    pub start: DateTime<Utc>,
    /// Span of event time covered.
    pub span: Duration,
}

impl GenerateConfig {
    /// Defaults for `events` events over `entities` entities.
    pub fn new(events: usize, entities: usize, seed: u64) -> Self {
        GenerateConfig {
            events,
            entities: entities.max(1),
            seed,
            start: Utc
                .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            span: Duration::days(7),
        }
    }
}

/// A generated line and, when it was injected on purpose, its label.
#[derive(Debug, Clone)]
pub struct Line {
    /// The text of the line (usually JSON).
    pub text: String,
    /// `Some((event_id, kind))` for injected cases.
    pub label: Option<(String, &'static str)>,
}

struct Entity {
    id: String,
    country: &'static str,
    currency: &'static str,
    offset_h: i64,
    offset: FixedOffset,
    median: f64,
    merchants: Vec<String>,
}

const HOMES: &[(&str, &str, i64)] = &[
    ("DE", "EUR", 1),
    ("FR", "EUR", 1),
    ("GB", "GBP", 0),
    ("US", "USD", -5),
    ("JP", "JPY", 9),
    ("CH", "CHF", 1),
    ("SE", "SEK", 1),
    ("BR", "BRL", -3),
];
const FAR: &[&str] = &["NG", "VN", "PE", "KZ", "MN", "PK"];
/// Everyday merchants (the benchmark generator adds riskier ones after them).
pub const MERCHANTS: &[&str] = &[
    "grocer",
    "fuel",
    "books",
    "cafe",
    "pharmacy",
    "transit",
    "streaming",
    "hardware",
    "bakery",
    "cinema",
    "airline",
    "hotel",
    "electronics",
    "fashion",
    "toys",
    "garden",
];

/// A standard normal draw.
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller: two uniforms → one standard normal.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Generates the stream.
pub fn generate(cfg: &GenerateConfig) -> Vec<Line> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let entities: Vec<Entity> = (0..cfg.entities)
        .map(|i| {
            let (country, currency, offset_h) = HOMES[rng.random_range(0..HOMES.len())];
            let scale = match currency {
                "JPY" => 150.0,
                "SEK" => 10.0,
                "BRL" => 5.0,
                _ => 1.0,
            };
            let median = round2(scale * (10.0 + rng.random_range(0.0..90.0)));
            let mut merchants: Vec<String> = Vec::new();
            for _ in 0..rng.random_range(3..7) {
                let m = MERCHANTS[rng.random_range(0..MERCHANTS.len())].to_owned();
                if !merchants.contains(&m) {
                    merchants.push(m);
                }
            }
            // Every offset in HOMES is a whole number of hours well inside ±24 h.
            let offset =
                FixedOffset::east_opt((offset_h * 3600) as i32).unwrap_or_else(|| Utc.fix());
            Entity {
                id: format!("acct-{:04}", i + 1),
                country,
                currency,
                offset_h,
                offset,
                median,
                merchants,
            }
        })
        .collect();

    let mut lines: Vec<Line> = Vec::with_capacity(cfg.events);
    let mut emitted: Vec<Value> = Vec::new();
    let step_ms = (cfg.span.num_milliseconds() / cfg.events.max(1) as i64).max(1);
    let mut t = cfg.start;
    let mut seq = 0usize;
    let warm = cfg.events / 5; // no injected anomaly in the first fifth: entities need history
    while lines.len() < cfg.events {
        t += Duration::milliseconds(rng.random_range(step_ms / 2..=step_ms * 3 / 2));
        let e = &entities[rng.random_range(0..entities.len())];
        // Daily rhythm: in local night hours most events are skipped.
        let local_hour = (t + Duration::hours(e.offset_h))
            .format("%H")
            .to_string()
            .parse::<u32>()
            .unwrap_or(12);
        if (0..6).contains(&local_hour) && rng.random_bool(0.8) {
            continue;
        }
        seq += 1;
        let id = format!("evt-{}-{seq:07}", cfg.seed);
        let roll: f64 = rng.random_range(0.0..1.0);
        let injected = lines.len() > warm;
        let base = |id: &str,
                    t: DateTime<Utc>,
                    value: f64,
                    country: &str,
                    merchant: &str,
                    status: &str| {
            json!({
                "event_id": id,
                "event_type": if status == "approved" { "payment.authorized" } else { "payment.declined" },
                "source": "card-gateway",
                "entity_id": e.id,
                "occurred_at": t.with_timezone(&e.offset).to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
                "value": value,
                "currency": e.currency,
                "attributes": { "country": country, "merchant": merchant, "status": status, "channel": "card" }
            })
        };
        let usual_value = |rng: &mut ChaCha8Rng| round2(e.median * (0.35 * normal(rng)).exp());
        let merchant = e.merchants[rng.random_range(0..e.merchants.len())].clone();

        if injected && roll < 0.004 {
            // Failure burst: 6–8 declines a few seconds to a minute apart.
            let n = rng.random_range(6..=8);
            let mut bt = t;
            for k in 0..n {
                if lines.len() >= cfg.events {
                    break;
                }
                let bid = format!("{id}-f{k}");
                let v = base(
                    &bid,
                    bt,
                    usual_value(&mut rng),
                    e.country,
                    &merchant,
                    "declined",
                );
                let label = if k >= 5 {
                    Some((bid.clone(), "failure_burst"))
                } else {
                    None
                };
                lines.push(Line {
                    text: v.to_string(),
                    label,
                });
                emitted.push(v);
                bt += Duration::seconds(rng.random_range(5..60));
            }
            continue;
        }
        let (value, country, label): (f64, &str, Option<&'static str>) = if injected && roll < 0.008
        {
            (
                round2(e.median * rng.random_range(40.0..120.0)),
                e.country,
                Some("spike"),
            )
        } else if injected && roll < 0.011 {
            (
                usual_value(&mut rng),
                FAR[rng.random_range(0..FAR.len())],
                Some("new_country"),
            )
        } else {
            (usual_value(&mut rng), e.country, None)
        };
        let status = if rng.random_bool(0.03) {
            "declined"
        } else {
            "approved"
        };
        let v = base(&id, t, value, country, &merchant, status);

        if injected && (0.011..0.016).contains(&roll) {
            lines.push(Line {
                text: malformed(&mut rng, &v),
                label: Some((id.clone(), "malformed")),
            });
            continue;
        }
        if injected && (0.016..0.019).contains(&roll) && !emitted.is_empty() {
            // A redelivery (exact repeat) or a correction (version 2) of an earlier event.
            let earlier =
                emitted[rng.random_range(emitted.len().saturating_sub(200)..emitted.len())].clone();
            let eid = earlier["event_id"].as_str().unwrap_or_default().to_owned();
            if rng.random_bool(0.5) {
                lines.push(Line {
                    text: earlier.to_string(),
                    label: Some((eid, "redelivery")),
                });
            } else {
                let mut c = earlier;
                c["version"] = json!(2);
                c["value"] = json!(round2(c["value"].as_f64().unwrap_or(1.0) * 0.9));
                lines.push(Line {
                    text: c.to_string(),
                    label: Some((eid, "correction")),
                });
            }
            continue;
        }
        lines.push(Line {
            text: v.to_string(),
            label: label.map(|k| (id.clone(), k)),
        });
        emitted.push(v);
    }
    lines
}

fn malformed(rng: &mut ChaCha8Rng, v: &Value) -> String {
    let mut v = v.clone();
    match rng.random_range(0..5) {
        0 => {
            return format!(
                "{{\"event_id\": \"{}\", \"value\": ",
                v["event_id"].as_str().unwrap_or_default()
            );
        }
        1 => {
            if let Some(o) = v.as_object_mut() {
                o.remove("entity_id");
                o.remove("occurred_at");
            }
        }
        2 => v["currency"] = json!("XYZ"),
        3 => v["occurred_at"] = json!("2099-01-01T00:00:00Z"),
        _ => {
            v["value"] = json!("12,50");
            v["event_type"] = json!("Payment Authorized");
        }
    }
    v.to_string()
}

/// Writes the stream as JSON Lines to `out` and the labels as JSON Lines to `labels`.
pub fn write(
    lines: &[Line],
    out: &mut dyn Write,
    labels: Option<&mut dyn Write>,
) -> std::io::Result<()> {
    for l in lines {
        writeln!(out, "{}", l.text)?;
    }
    if let Some(w) = labels {
        for (id, kind) in lines.iter().filter_map(|l| l.label.as_ref()) {
            writeln!(w, "{}", json!({"event_id": id, "label": kind}))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_labelled() {
        let cfg = GenerateConfig::new(3000, 40, 42);
        let a = generate(&cfg);
        let b = generate(&cfg);
        assert_eq!(a.len(), 3000);
        assert!(a.iter().zip(&b).all(|(x, y)| x.text == y.text));
        let kinds: std::collections::BTreeSet<_> = a
            .iter()
            .filter_map(|l| l.label.as_ref().map(|x| x.1))
            .collect();
        for k in ["failure_burst", "spike", "new_country", "malformed"] {
            assert!(kinds.contains(k), "no {k} in {kinds:?}");
        }
        let other = generate(&GenerateConfig::new(3000, 40, 43));
        assert_ne!(a[10].text, other[10].text);
    }
}
