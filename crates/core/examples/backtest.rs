//! A fast detector backtest for development: runs [`pipeline_core::detect::observe`] over a
//! labelled JSON Lines stream in memory (raw `value`, no FX, no store, no persist) and prints
//! the windowed score and which labelled kinds were found. The product's own figures come
//! from `pipeline evaluate`, which runs the real chain; this only shortens the tuning loop.
//!
//! `cargo run --release -p pipeline-core --example backtest -- STREAM LABELS`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashMap};

use pipeline_core::detect::{DetectConfig, EntityState, Observation, ObservationOf, observe};
use pipeline_core::evaluate::{Outcome, Prepared, parse_labels};
use pipeline_core::event::Event;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).unwrap();
    let labels_text = std::fs::read_to_string(&args[2]).unwrap();
    let mut cfg = DetectConfig::default();
    if let Ok(e) = std::env::var("EPS") {
        cfg.value_probability = e.parse().unwrap();
    }
    let mut states: HashMap<String, EntityState> = HashMap::new();
    let mut outcomes = Vec::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut flags: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<Event>(line) else {
            continue;
        };
        let st = states
            .entry(e.entity_id.clone())
            .or_insert_with(|| EntityState::new(&e.entity_id));
        let obs = Observation::of(&e, e.value, &cfg);
        let d = observe(st, &obs, &cfg, true);
        if d.is_anomaly {
            for r in &d.reasons {
                let key = match serde_json::to_value(r).unwrap() {
                    v if v["code"] == "value_outlier" => format!("value_outlier/{}", v["test"]),
                    v => v["code"].as_str().unwrap_or("").to_owned(),
                };
                *reasons.entry(key.clone()).or_default() += 1;
                flags
                    .entry(e.entity_id.clone())
                    .or_default()
                    .push((e.occurred_ms(), key));
            }
        }
        outcomes.push(Outcome {
            event_id: e.event_id.clone(),
            entity_id: e.entity_id.clone(),
            kind: e.source.clone(),
            t_ms: e.occurred_ms(),
            score: d.score,
            is_anomaly: d.is_anomaly,
        });
    }
    let labels = parse_labels(&labels_text).unwrap();
    let ev = Prepared::new(&outcomes, &labels).evaluate(|o| o.is_anomaly);
    println!("{}", serde_json::to_string(&ev.total).unwrap());
    println!("flag reasons: {reasons:?}");
    // Found / missed per labelled kind, and who produced false positives.
    let mut by_kind: BTreeMap<String, (usize, usize, Vec<String>)> = BTreeMap::new();
    for l in labels_text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let (Some(ent), Some(kind)) = (v["entity_id"].as_str(), v["kind"].as_str()) else {
            continue;
        };
        let t = |k: &str| {
            chrono::DateTime::parse_from_rfc3339(v[k].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        };
        let (a, b) = (t("start"), t("end"));
        let found = outcomes
            .iter()
            .find(|o| o.entity_id == ent && o.t_ms >= a && o.t_ms <= b && o.is_anomaly);
        let e = by_kind.entry(kind.to_owned()).or_default();
        e.1 += 1;
        match found {
            Some(o) => {
                e.0 += 1;
                let lag = (o.t_ms - a) / 60_000;
                e.2.push(format!("{lag}m"));
            }
            None => e.2.push(format!("MISS:{ent}")),
        }
    }
    for (k, (f, n, lags)) in by_kind {
        println!("{k:<18} {f}/{n}  {}", lags.join(" "));
    }
    let mut fps: Vec<(&String, usize, Option<f64>)> = ev
        .by_entity
        .iter()
        .map(|(e, f)| (e, f.fp_outside, f.score_standard))
        .filter(|x| x.1 > 0)
        .collect();
    fps.sort_by_key(|x| std::cmp::Reverse(x.1));
    println!(
        "false positives by entity: {:?}",
        fps.iter().take(12).collect::<Vec<_>>()
    );
    if let Ok(who) = std::env::var("SHOW") {
        let windows: Vec<(i64, i64)> = labels
            .iter()
            .filter_map(|l| match l {
                pipeline_core::evaluate::Label::Window {
                    entity_id,
                    start_ms,
                    end_ms,
                } if *entity_id == who => Some((*start_ms, *end_ms)),
                _ => None,
            })
            .collect();
        for (t, k) in flags.get(&who).into_iter().flatten() {
            let inside = windows.iter().any(|(a, b)| t >= a && t <= b);
            println!(
                "  {who} {} {k} {}",
                t / 60_000,
                if inside { "IN" } else { "out" }
            );
        }
    }
    for (k, f) in &ev.by_kind {
        println!(
            "{k}: standard {:?} windows {}/{} fp/1k {:?}",
            f.score_standard, f.windows_detected, f.windows, f.fp_per_1000
        );
    }
}
