//! A fast NAB backtest for development: runs [`pipeline_core::detect::observe`] over every
//! stream of a corpus in NAB's layout, in memory (no store, no persist), and scores its
//! `is_anomaly` with NAB's scorer. `pipeline evaluate --nab` is the product's figure (the real
//! chain); this gives the same verdicts faster and shows each detection:
//!
//! `cargo run --release -p pipeline-corpus --example nab_backtest -- DIR [STREAM_SUBSTRING]`
//!
//! With a stream substring it prints that stream's windows (as rows) and every anomalous
//! event: its row, whether it alerted, its score and the value test that fired; `EPS=…` sets
//! `value_probability` (ε) and `QUIET_H=…` the incident quiet period in hours, for sweeps.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use pipeline_core::detect::{DetectConfig, EntityState, Observation, ObservationOf, observe};
use pipeline_core::event::Event;
use pipeline_detect::evaluate::nab;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let corpus = pipeline_corpus::nab::read(std::path::Path::new(&args[1])).unwrap();
    let show = args.get(2).cloned();
    let mut cfg = DetectConfig::default();
    if let Ok(e) = std::env::var("EPS") {
        cfg.value_probability = e.parse().unwrap();
    }
    if let Ok(q) = std::env::var("QUIET_H") {
        cfg.incident_quiet = chrono::Duration::minutes((q.parse::<f64>().unwrap() * 60.0) as i64);
    }
    let (text, _) = pipeline_corpus::nab::events(&corpus);
    let mut lines = text.lines();
    let mut flags = Vec::new();
    for (stream, values) in corpus.streams.iter().zip(&corpus.values) {
        let shown = show.as_deref().is_some_and(|s| stream.name.contains(s));
        let mut state = EntityState::new(&stream.name);
        let mut f = Vec::with_capacity(values.len());
        let mut sc: Vec<(f64, bool)> = Vec::with_capacity(values.len());
        for i in 0..values.len() {
            let e: Event = serde_json::from_str(lines.next().unwrap()).unwrap();
            let obs = Observation::of(&e, e.value, &cfg);
            let d = observe(&mut state, &obs, &cfg, true);
            if shown && d.score >= cfg.anomaly_threshold {
                let why = d
                    .reasons
                    .iter()
                    .map(|r| {
                        let v = serde_json::to_value(r).unwrap();
                        format!(
                            "{}/{} stat {} p {} v {} exp {}",
                            v["code"].as_str().unwrap_or(""),
                            v["test"].as_str().unwrap_or(""),
                            v["stat"],
                            v["probability"],
                            v["value"],
                            v["expected"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                println!(
                    "  row {i:>6} {} {} score {:.3} {why}",
                    e.occurred_at,
                    if d.is_anomaly { "ALERT" } else { "  ...  " },
                    d.score
                );
            }
            f.push(d.is_anomaly);
            sc.push((d.score, d.is_anomaly));
        }
        if shown {
            let rows: Vec<(usize, usize)> = stream
                .windows
                .iter()
                .map(|&(a, b)| {
                    (
                        stream.t_ms.partition_point(|t| *t < a),
                        stream.t_ms.partition_point(|t| *t <= b).saturating_sub(1),
                    )
                })
                .collect();
            let prob = nab::probation(values.len());
            println!(
                "{}: {} rows, probation {}, windows {rows:?}",
                stream.name,
                values.len(),
                nab::probation(values.len())
            );
            for (a, b) in &rows {
                let (a, b) = (*a.max(&prob), *b);
                let top = (a..=b.max(a))
                    .filter(|i| *i < sc.len())
                    .max_by(|x, y| sc[*x].0.total_cmp(&sc[*y].0));
                let alerted = (a..=b.max(a)).find(|i| *i < sc.len() && sc[*i].1);
                println!(
                    "  window {a}..{b}: top score {:?} first alert {alerted:?}",
                    top.map(|i| (i, sc[i].0))
                );
            }
        }
        flags.push(f);
    }
    let scores = nab::score(&corpus.streams, &flags);
    for s in &scores.streams {
        println!(
            "{:<58} flags {:>3} fp {:>3} windows {}/{} raw {:>6.2}",
            s.stream,
            s.counts.flags,
            s.counts.false_positives,
            s.counts.windows_found,
            s.counts.windows_scored,
            s.raw.standard
        );
    }
    let t = &scores.total;
    let n = t.normalised.unwrap_or_default();
    println!(
        "total: standard {:.1} low_FP {:.1} low_FN {:.1}  windows {}/{} fp {}",
        n.standard,
        n.reward_low_fp_rate,
        n.reward_low_fn_rate,
        t.counts.windows_found,
        t.counts.windows_scored,
        t.counts.false_positives
    );
}
