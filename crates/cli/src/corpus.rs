//! `pipeline generate --benchmark KIND`: labelled benchmark streams for `pipeline evaluate`.
//!
//! Three kinds, each deterministic from its seed (ChaCha8, fixed across platforms):
//! - **metric**: one entity per stream, regular sampling (1–15 min), archetypes with daily and
//!   weekly seasonality of varying strength, trends, heavy-tailed noise, counts, values near
//!   zero and bounded percentages; each stream carries one to three anomalies of the kinds in
//!   [`METRIC_ANOMALIES`], placed after the first third of the stream.
//! - **business**: many accounts with irregular arrivals (sessions, a daily rhythm), log-normal
//!   amounts per account in its home currency, occasional new merchants and declines; anomalies
//!   of the kinds in [`BUSINESS_ANOMALIES`] after each account's first 40 events.
//! - **clean**: metric and business streams of the same archetypes with no anomaly, to measure
//!   false positives.
//!
//! Every anomaly is labelled as a window `{"entity_id","start","end","kind"}` that opens at the
//! anomaly's onset (for a failure burst: at the failure that makes it more than five in ten
//! minutes, as the product defines it) and stays open for the anomaly's length plus a tolerance.
//! The corpus is our own: no public benchmark data is used or imitated point by point.
//!
//! (One file of about 600 lines: the corpus's whole definition — archetypes, anomaly kinds,
//! sizes and windows — reads in one place, which is what a reviewer of the figures needs.)

use std::f64::consts::TAU;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::generate::normal;
use serde_json::{Value, json};

/// Which benchmark corpus to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Regularly sampled metric streams with labelled anomalies.
    Metric,
    /// Irregular per-account business events with labelled anomalies.
    Business,
    /// Metric and business streams without anomalies.
    Clean,
}

/// Anomaly kinds planted in metric streams.
pub const METRIC_ANOMALIES: &[&str] = &[
    "spike",
    "dip",
    "level_shift_up",
    "level_shift_down",
    "variance_burst",
    "flatline",
    "drop_to_zero",
    "trend_change",
    "drift",
    "contextual",
];

/// Anomaly kinds planted in business streams.
pub const BUSINESS_ANOMALIES: &[&str] = &[
    "amount_spike",
    "failure_burst",
    "rate_burst",
    "new_country",
    "account_takeover",
];

/// One generated event and the window labels it brings.
#[derive(Debug, Default)]
pub struct Corpus {
    /// Events as JSON, in event-time order per entity, entities interleaved by time.
    pub events: Vec<(i64, Value)>,
    /// Window labels.
    pub labels: Vec<Value>,
}

impl Corpus {
    /// The events as JSON Lines, ordered by event time (ties by entity, then sequence).
    pub fn lines(&mut self) -> impl Iterator<Item = String> + '_ {
        self.events.sort_by_key(|(t, _)| *t);
        self.events.iter().map(|(_, v)| v.to_string())
    }
}

fn start() -> DateTime<Utc> {
    // A Monday, well in the past so no event is refused as future-dated.
    Utc.with_ymd_and_hms(2026, 5, 4, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Student-t with 3 degrees of freedom, scaled to unit variance: heavy-tailed noise.
fn heavy(rng: &mut ChaCha8Rng) -> f64 {
    let z = normal(rng);
    let chi2: f64 = (0..3).map(|_| normal(rng).powi(2)).sum();
    z / (chi2 / 3.0).sqrt() / 3f64.sqrt()
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> f64 {
    if lambda > 30.0 {
        return (lambda + lambda.sqrt() * normal(rng)).round().max(0.0);
    }
    let l = (-lambda).exp();
    let (mut k, mut p) = (0.0, 1.0);
    loop {
        p *= rng.random_range(0.0..1.0);
        if p <= l {
            return k;
        }
        k += 1.0;
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn window(entity: &str, from: DateTime<Utc>, to: DateTime<Utc>, kind: &str) -> Value {
    json!({"entity_id": entity, "start": iso(from), "end": iso(to), "kind": kind})
}

/// Generates one corpus.
pub fn generate(kind: Kind, seed: u64) -> Corpus {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut c = Corpus::default();
    match kind {
        Kind::Metric => {
            for s in 0..18 {
                let kinds: Vec<&str> = (0..1 + s % 3)
                    .map(|k| METRIC_ANOMALIES[(s * 3 + k * 7 + s / 7) % METRIC_ANOMALIES.len()])
                    .collect();
                metric_stream(seed, &mut c, s, &kinds, "metric");
            }
        }
        Kind::Business => {
            for a in 0..85 {
                let kinds: Vec<&str> = (0..rng.random_range(0..3usize))
                    .map(|j| BUSINESS_ANOMALIES[(a * 2 + j * 3) % BUSINESS_ANOMALIES.len()])
                    .collect();
                business_account(seed, &mut c, a, &kinds, "acct-b");
            }
        }
        Kind::Clean => {
            for s in 0..7 {
                metric_stream(seed, &mut c, s, &[], "clean-metric");
            }
            for a in 0..32 {
                business_account(seed, &mut c, a, &[], "acct-c");
            }
        }
    }
    c
}

/// A metric archetype: how a stream of this kind behaves when nothing is wrong.
#[derive(Debug, Clone, Copy)]
struct Archetype {
    name: &'static str,
    interval_min: i64,
    /// Base level.
    level: f64,
    /// Daily amplitude, as a share of the level.
    daily: f64,
    /// Weekend factor (1 = none).
    weekend: f64,
    /// Trend per day, as a share of the level.
    trend: f64,
    /// Noise σ, as a share of the level.
    noise: f64,
    /// Heavy-tailed noise.
    heavy: bool,
    /// Poisson counts around the expectation instead of continuous noise.
    counts: bool,
    /// Clamp to [0, 100].
    percent: bool,
    /// AR(1) coefficient of a slowly wandering component (σ as a share of the level).
    wander: (f64, f64),
}

fn archetype(i: usize, rng: &mut ChaCha8Rng) -> Archetype {
    let mut a = match i % 7 {
        0 => Archetype {
            name: "cpu",
            interval_min: 5,
            level: rng.random_range(20.0..60.0),
            daily: rng.random_range(0.2..0.5),
            weekend: 1.0,
            trend: 0.0,
            noise: rng.random_range(0.03..0.08),
            heavy: false,
            counts: false,
            percent: true,
            wander: (0.98, 0.006),
        },
        1 => Archetype {
            name: "latency",
            interval_min: 1,
            level: rng.random_range(80.0..300.0),
            daily: rng.random_range(0.0..0.1),
            weekend: 1.0,
            trend: 0.0,
            noise: rng.random_range(0.05..0.12),
            heavy: true,
            counts: false,
            percent: false,
            wander: (0.99, 0.004),
        },
        2 => Archetype {
            name: "traffic",
            interval_min: 15,
            level: rng.random_range(60.0..600.0),
            daily: rng.random_range(0.4..0.8),
            weekend: rng.random_range(0.5..0.8),
            trend: 0.0,
            noise: 0.0,
            heavy: false,
            counts: true,
            percent: false,
            wander: (0.95, 0.01),
        },
        3 => Archetype {
            name: "disk",
            interval_min: 10,
            level: rng.random_range(30.0..50.0),
            daily: 0.0,
            weekend: 1.0,
            trend: rng.random_range(0.005..0.02),
            noise: rng.random_range(0.005..0.02),
            heavy: false,
            counts: false,
            percent: true,
            wander: (0.99, 0.003),
        },
        4 => Archetype {
            name: "temperature",
            interval_min: 5,
            level: rng.random_range(40.0..80.0),
            daily: rng.random_range(0.05..0.15),
            weekend: 1.0,
            trend: 0.0,
            noise: rng.random_range(0.005..0.015),
            heavy: false,
            counts: false,
            percent: false,
            wander: (0.995, 0.002),
        },
        5 => Archetype {
            name: "errors",
            interval_min: 5,
            level: rng.random_range(0.5..4.0),
            daily: rng.random_range(0.0..0.5),
            weekend: 1.0,
            trend: 0.0,
            noise: 0.0,
            heavy: false,
            counts: true,
            percent: false,
            wander: (0.9, 0.0),
        },
        _ => Archetype {
            name: "clicks",
            interval_min: 10,
            level: rng.random_range(20.0..200.0),
            daily: rng.random_range(0.3..0.7),
            weekend: rng.random_range(1.3..1.8),
            trend: 0.0,
            noise: 0.0,
            heavy: false,
            counts: true,
            percent: false,
            wander: (0.97, 0.008),
        },
    };
    if a.counts && a.level < 5.0 {
        a.daily = a.daily.min(0.3);
    }
    a
}

/// The planted anomaly of a metric stream, from sample `at` for `len` samples.
#[derive(Debug, Clone, Copy)]
struct Planted {
    kind: &'static str,
    at: usize,
    len: usize,
    /// Magnitude: spikes in noise deviations, shifts, drifts and trends in total deviations.
    size: f64,
}

/// Writes metric stream `s` (archetype `s % 7`) with the anomalies `kinds` planted in turn.
/// The stream's behaviour and noise come from `(seed, s)` alone, and the anomalies' from
/// another generator, so the stream without anomalies is the same stream up to the first onset:
/// its clean twin.
pub fn metric_stream(seed: u64, c: &mut Corpus, s: usize, kinds: &[&str], prefix: &str) {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(s as u64));
    let plan =
        &mut ChaCha8Rng::seed_from_u64(seed.wrapping_mul(7_919).wrapping_add(s as u64) ^ 0xa5a5);
    let a = archetype(s, rng);
    let n = 2_200usize;
    let entity = format!("{prefix}-{}-{s:02}", a.name);
    // The stream's normal variability (noise and wander), in value units: anomaly sizes are
    // multiples of it, so that every planted anomaly is visible on a plot of its stream.
    let wander_sd = a.wander.1 / (1.0 - a.wander.0.powi(2)).sqrt();
    let noise_rel = if a.counts {
        1.0 / a.level.max(0.5).sqrt()
    } else {
        a.noise
    };
    let sd_total = a.level * (noise_rel.powi(2) + wander_sd.powi(2)).sqrt();
    // Anomalies spaced over the last two thirds.
    let mut planted: Vec<Planted> = Vec::new();
    let slot = (n - n / 3) / kinds.len().max(1);
    for (k, kind) in kinds.iter().enumerate() {
        let kind: &'static str = match METRIC_ANOMALIES.iter().find(|x| *x == kind) {
            Some(&"contextual") if a.daily * a.level < 5.0 * sd_total => "dip",
            Some(x) => x,
            None => continue,
        };
        let rng = &mut *plan;
        let at = n / 3 + k * slot + rng.random_range(slot / 6..slot / 2);
        let len = match kind {
            "spike" | "dip" => 1,
            "variance_burst" => rng.random_range(20..60),
            "flatline" => rng.random_range(24..96),
            "drop_to_zero" => rng.random_range(6..36),
            "drift" => rng.random_range(150..300),
            "contextual" => (180 / a.interval_min) as usize,
            _ => slot - slot / 2 - 1, // shifts and trend changes last to the next slot
        };
        let size = match kind {
            "spike" | "dip" => rng.random_range(6.0..12.0),
            "level_shift_up" | "level_shift_down" => rng.random_range(5.0..9.0),
            "variance_burst" => rng.random_range(4.0..6.0),
            "trend_change" => rng.random_range(8.0..12.0),
            "drift" => rng.random_range(6.0..10.0),
            _ => 1.0,
        };
        planted.push(Planted {
            kind,
            at,
            len,
            size,
        });
    }

    let t0 = start() + Duration::minutes(rng.random_range(0..a.interval_min));
    let step = Duration::minutes(a.interval_min);
    let offset_h: i64 = [0, 1, -5, 9][s % 4];
    let mut wander = 0.0;
    let mut shift = 0.0_f64; // cumulative level change from shifts, trends and drifts
    let mut slope = 0.0_f64; // extra trend per sample
    let mut last = 0.0;
    let sd_of = |mean: f64| {
        if a.counts {
            mean.max(0.5).sqrt()
        } else {
            a.noise * a.level
        }
    };
    for i in 0..n {
        let t = t0 + step * i as i32;
        let local = t + Duration::hours(offset_h);
        let hour = (local.timestamp().rem_euclid(86_400)) as f64 / 3600.0;
        let dow = (local.timestamp().div_euclid(86_400) + 3).rem_euclid(7); // 0 = Monday
        let mut season = 1.0 + a.daily * (TAU * (hour - 9.0) / 24.0).sin();
        if dow >= 5 {
            season *= a.weekend;
        }
        wander = a.wander.0 * wander + a.wander.1 * a.level * normal(rng);
        let days = i as f64 * a.interval_min as f64 / 1440.0;
        shift += slope;
        let mut expected = a.level * season * (1.0 + a.trend * days) + wander + shift;
        let mut noise_scale = 1.0;
        let mut value: Option<f64> = None;
        for p in &planted {
            let inside = i >= p.at && i < p.at + p.len;
            match p.kind {
                "level_shift_up" | "level_shift_down" if i == p.at => {
                    let sign = if p.kind == "level_shift_up" {
                        1.0
                    } else {
                        -1.0
                    };
                    shift += sign * p.size * sd_total;
                    expected += sign * p.size * sd_total;
                }
                "trend_change" if i == p.at => {
                    // Reaches `size` deviations over half the anomaly's length, then keeps climbing.
                    slope += p.size * sd_total / (p.len as f64 / 2.0);
                }
                "trend_change" if i == p.at + p.len => slope = 0.0,
                "drift" if inside => {
                    let d = p.size * sd_total / p.len as f64;
                    shift += d;
                    expected += d;
                }
                "variance_burst" if inside => noise_scale = p.size,
                "flatline" if inside => value = Some(last),
                "drop_to_zero" if inside => value = Some(0.0),
                "contextual" if inside => {
                    // The daily swing stops: the value holds the level of 6 hours earlier.
                    let h = hour - 6.0;
                    expected =
                        a.level * (1.0 + a.daily * (TAU * (h - 9.0) / 24.0).sin()) + wander + shift;
                }
                _ => {}
            }
        }
        let mean = expected.max(0.0);
        let mut v = value.unwrap_or_else(|| {
            let sd = sd_of(mean) * noise_scale;
            if a.counts {
                if noise_scale > 1.0 {
                    (mean + sd * normal(rng)).round().max(0.0)
                } else {
                    poisson(rng, mean)
                }
            } else if a.heavy {
                mean + sd * heavy(rng)
            } else {
                mean + sd * normal(rng)
            }
        });
        for p in &planted {
            if i == p.at && (p.kind == "spike" || p.kind == "dip") {
                let sd = sd_of(mean).max(0.05 * a.level);
                let sign = if p.kind == "spike" { 1.0 } else { -1.0 };
                v += sign * p.size * sd;
                if a.counts {
                    v = v.round();
                }
            }
        }
        if a.percent {
            v = v.clamp(0.0, 100.0);
        }
        if !a.counts {
            v = (v * 1000.0).round() / 1000.0;
        }
        v = v.max(0.0);
        last = v;
        c.events.push((
            t.timestamp_millis(),
            json!({
                "event_id": format!("{entity}-{i:05}"),
                "event_type": format!("metric.{}", a.name),
                "source": "bench.metric",
                "entity_id": entity,
                "occurred_at": iso(t),
                "value": v,
                "attributes": {"metric": a.name},
            }),
        ));
    }
    for p in &planted {
        let tolerance = (n / 40).max(p.len.min(n / 20));
        let from = t0 + step * p.at as i32;
        let to = t0 + step * (p.at + p.len.max(1) - 1 + tolerance) as i32;
        c.labels.push(window(&entity, from, to, p.kind));
    }
}

const HOMES: &[(&str, &str, f64)] = &[
    ("DE", "EUR", 1.0),
    ("FR", "EUR", 1.0),
    ("GB", "GBP", 1.0),
    ("US", "USD", 1.0),
    ("JP", "JPY", 150.0),
    ("SE", "SEK", 10.0),
    ("BR", "BRL", 5.0),
    ("PL", "PLN", 4.0),
];
const FAR: &[&str] = &["NG", "VN", "PE", "KZ", "MN", "PK", "RO", "TH"];
/// Merchants an account-takeover uses, after the everyday ones of [`crate::generate::MERCHANTS`].
const RISKY_MERCHANTS: &[&str] = &["jeweller", "casino", "crypto", "giftcards"];

/// Merchant `i` of the everyday list followed by the risky one.
fn merchant(i: usize) -> &'static str {
    let everyday = crate::generate::MERCHANTS;
    everyday
        .get(i)
        .or_else(|| RISKY_MERCHANTS.get(i - everyday.len()))
        .copied()
        .unwrap_or("other")
}

/// How many merchants [`merchant`] knows.
fn merchants() -> usize {
    crate::generate::MERCHANTS.len() + RISKY_MERCHANTS.len()
}

/// Writes business account `a` with the anomalies `kinds`; like [`metric_stream`], the
/// account without anomalies is its clean twin up to the first onset.
#[allow(clippy::too_many_lines)]
pub fn business_account(seed: u64, c: &mut Corpus, a: usize, kinds: &[&str], prefix: &str) {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed.wrapping_mul(999_983).wrapping_add(a as u64));
    let plan =
        &mut ChaCha8Rng::seed_from_u64(seed.wrapping_mul(7_907).wrapping_add(a as u64) ^ 0x5a5a);
    let entity = format!("{prefix}{a:03}");
    let (country, currency, scale) = HOMES[rng.random_range(0..HOMES.len())];
    let median = scale * rng.random_range(8.0..300.0);
    let sigma: f64 = rng.random_range(0.3..0.8);
    let per_day: f64 = rng.random_range(3.0..14.0);
    let usual: Vec<&str> = (0..rng.random_range(3..8))
        .map(|_| merchant(rng.random_range(0..12)))
        .collect();
    let decline_rate = rng.random_range(0.01..0.05);
    let days = 30;
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let seq = std::cell::Cell::new(0usize);
    let mut t = start() + Duration::minutes(rng.random_range(0..600));
    let end = start() + Duration::days(days);
    // Each anomaly at a random moment after the account's first 40 events and ~10 days.
    let mut at: Vec<(DateTime<Utc>, &str)> = kinds
        .iter()
        .enumerate()
        .map(|(j, k)| {
            let day = 10 + j as i64 * 9 + plan.random_range(0..7);
            (
                start() + Duration::days(day) + Duration::minutes(plan.random_range(600..1200)),
                *k,
            )
        })
        .collect();
    at.reverse();
    let event = |t: DateTime<Utc>, value: f64, country: &str, merchant: &str, status: &str| {
        seq.set(seq.get() + 1);
        (
            t.timestamp_millis(),
            json!({
                "event_id": format!("{entity}-{:05}", seq.get()),
                "event_type": if status == "approved" { "payment.authorized" } else { "payment.declined" },
                "source": "bench.business",
                "entity_id": entity,
                "occurred_at": iso(t),
                "value": round2(value),
                "currency": currency,
                "attributes": {"country": country, "merchant": merchant, "status": status, "channel": "card"},
            }),
        )
    };
    while t < end {
        // Arrivals: exponential gaps at the account's rate, thinned at night (UTC 0–6).
        let gap_min = -(1440.0 / per_day) * rng.random_range(f64::EPSILON..1.0f64).ln();
        t += Duration::seconds((gap_min * 60.0) as i64 + 1);
        let hour = t.timestamp().rem_euclid(86_400) / 3600;
        if hour < 6 && rng.random_bool(0.85) {
            continue;
        }
        if let Some((when, kind)) = at.last().copied() {
            if t >= when && seq.get() >= 40 {
                at.pop();
                let from = t;
                let mut to = t;
                let usual_amount = |rng: &mut ChaCha8Rng| median * (sigma * normal(rng)).exp();
                match kind {
                    "amount_spike" => {
                        let v = median * rng.random_range(30.0..100.0);
                        let m = usual[rng.random_range(0..usual.len())];
                        c.events.push(event(t, v, country, m, "approved"));
                    }
                    "failure_burst" => {
                        let n = rng.random_range(6..10);
                        let m = usual[rng.random_range(0..usual.len())];
                        let mut bt = t;
                        for k in 0..n {
                            let v = usual_amount(rng);
                            c.events.push(event(bt, v, country, m, "declined"));
                            if k == 5 {
                                // The anomaly, as the product defines it, is the sixth failure.
                                c.labels
                                    .push(window(&entity, bt, bt + Duration::hours(1), kind));
                            }
                            bt += Duration::seconds(rng.random_range(10..70));
                        }
                        t = bt;
                        continue;
                    }
                    "rate_burst" => {
                        let n = rng.random_range(20..70);
                        let mut bt = t;
                        for _ in 0..n {
                            let v = median * 0.2 * (0.3 * normal(rng)).exp();
                            c.events
                                .push(event(bt, v, country, "giftcards", "approved"));
                            bt += Duration::seconds(rng.random_range(3..15));
                        }
                        to = bt;
                        t = bt;
                    }
                    "new_country" => {
                        let far = FAR[rng.random_range(0..FAR.len())];
                        let m = usual[rng.random_range(0..usual.len())];
                        c.events
                            .push(event(t, usual_amount(rng), far, m, "approved"));
                    }
                    _ => {
                        // Account takeover: a new country, unfamiliar merchants, large amounts,
                        // a few minutes apart.
                        let far = FAR[rng.random_range(0..FAR.len())];
                        let mut bt = t;
                        for _ in 0..rng.random_range(3..6) {
                            let m = merchant(rng.random_range(12..merchants()));
                            let v = median * rng.random_range(5.0..20.0);
                            c.events.push(event(bt, v, far, m, "approved"));
                            bt += Duration::seconds(rng.random_range(60..400));
                        }
                        to = bt;
                        t = bt;
                    }
                }
                c.labels
                    .push(window(&entity, from, to + Duration::hours(1), kind));
                continue;
            }
        }
        // Ordinary activity, sometimes a short session of 2–4 payments minutes apart.
        let session = if rng.random_bool(0.15) {
            rng.random_range(2..5)
        } else {
            1
        };
        for _ in 0..session {
            let merchant = if rng.random_bool(0.03) {
                merchant(rng.random_range(0..12))
            } else {
                usual[rng.random_range(0..usual.len())]
            };
            let status = if rng.random_bool(decline_rate) {
                "declined"
            } else {
                "approved"
            };
            let v = median * (sigma * normal(rng)).exp();
            c.events.push(event(t, v, country, merchant, status));
            t += Duration::seconds(rng.random_range(30..400));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::HashMap;

    use pipeline_core::detect::{DetectConfig, EntityState, Observation, ObservationOf, observe};
    use pipeline_core::event::Event;

    use super::*;

    #[test]
    fn deterministic_labelled_and_every_kind_planted() {
        for kind in [Kind::Metric, Kind::Business, Kind::Clean] {
            let mut a = generate(kind, 1);
            let mut b = generate(kind, 1);
            let (la, lb): (Vec<String>, Vec<String>) = (a.lines().collect(), b.lines().collect());
            assert_eq!(la, lb);
            assert_eq!(a.labels, b.labels);
            if kind == Kind::Clean {
                assert!(a.labels.is_empty());
            }
        }
        let kinds_of = |k: Kind| -> std::collections::BTreeSet<String> {
            generate(k, 1)
                .labels
                .iter()
                .filter_map(|l| l["kind"].as_str().map(str::to_owned))
                .collect()
        };
        let metric = kinds_of(Kind::Metric);
        for k in METRIC_ANOMALIES {
            assert!(metric.contains(*k), "no {k} in {metric:?}");
        }
        let business = kinds_of(Kind::Business);
        for k in BUSINESS_ANOMALIES {
            assert!(business.contains(*k), "no {k} in {business:?}");
        }
    }

    /// Event times (ms) of the events the detector flags, run in memory with default settings
    /// on raw values (the streams' scale does not matter to the detector).
    fn flagged(c: &mut Corpus) -> Vec<i64> {
        let cfg = DetectConfig::default();
        let mut states: HashMap<String, EntityState> = HashMap::new();
        let mut out = Vec::new();
        for line in c.lines() {
            let e: Event = serde_json::from_str(&line).unwrap();
            let st = states
                .entry(e.entity_id.clone())
                .or_insert_with(|| EntityState::new(&e.entity_id));
            if observe(st, &Observation::of(&e, e.value, &cfg), &cfg, true).is_anomaly {
                out.push(e.occurred_ms());
            }
        }
        out
    }

    fn window_of(c: &Corpus) -> (i64, i64) {
        let t = |k: &str| {
            DateTime::parse_from_rfc3339(c.labels[0][k].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        };
        (t("start"), t("end"))
    }

    /// Each kind of anomaly, planted in a stream where it is plainly visible, is flagged inside
    /// its window, and its clean twin (the same stream without it) has no flag there.
    #[test]
    fn each_anomaly_kind_is_found_and_not_found_on_its_clean_twin() {
        // (kind, stream number: its archetype is the number mod 7, seed)
        let metric: &[(&str, usize, u64)] = &[
            ("spike", 0, 1),
            ("dip", 3, 1),
            ("level_shift_up", 11, 1),
            ("level_shift_down", 6, 1),
            ("variance_burst", 1, 1),
            ("flatline", 7, 1),
            ("drop_to_zero", 2, 1),
            ("trend_change", 12, 1),
            ("drift", 10, 1),
            ("contextual", 13, 1),
        ];
        // Found inside the planted stream's window; no flag there in the clean twin.
        let check = |mut planted: Corpus, mut twin: Corpus, what: String| {
            let (a, b) = window_of(&planted);
            let found = flagged(&mut planted).iter().any(|t| (a..=b).contains(t));
            let twin_flags = flagged(&mut twin)
                .iter()
                .filter(|t| (a..=b).contains(*t))
                .count();
            (!found || twin_flags > 0)
                .then(|| format!("{what}: found {found}, twin flags {twin_flags}"))
        };
        let mut failures = Vec::new();
        for (kind, s, seed) in metric {
            let (mut planted, mut twin) = (Corpus::default(), Corpus::default());
            metric_stream(*seed, &mut planted, *s, &[kind], "m");
            assert_eq!(
                planted.labels[0]["kind"], *kind,
                "{kind} not planted in {s}"
            );
            metric_stream(*seed, &mut twin, *s, &[], "m");
            failures.extend(check(planted, twin, format!("{kind} in stream {s}")));
        }
        for (i, kind) in BUSINESS_ANOMALIES.iter().enumerate() {
            let (mut planted, mut twin) = (Corpus::default(), Corpus::default());
            business_account(1, &mut planted, i, &[kind], "b");
            business_account(1, &mut twin, i, &[], "b");
            failures.extend(check(planted, twin, format!("{kind} in account {i}")));
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
