//! Labelled benchmark streams for `pipeline evaluate` (`pipeline generate --benchmark KIND`).
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

use crate::stream::normal;

mod business;
mod metric;

pub use business::business_account;
pub use metric::metric_stream;
use serde_json::{Value, json};

/// Which benchmark corpus to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regularly sampled metric streams with labelled anomalies.
    Metric,
    /// Irregular per-account business events with labelled anomalies.
    Business,
    /// Metric and business streams without anomalies.
    Clean,
}

impl Kind {
    /// Every kind, by the name `--benchmark` takes.
    pub const ALL: [(&'static str, Kind); 3] = [
        ("metric", Kind::Metric),
        ("business", Kind::Business),
        ("clean", Kind::Clean),
    ];
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, k)| *k)
            .ok_or_else(|| format!("no benchmark kind {s:?}"))
    }
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
