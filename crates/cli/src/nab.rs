//! `pipeline evaluate --nab DIR`: the real chain over a corpus in the Numenta Anomaly
//! Benchmark's layout, scored as NAB v1.1's scorer does ([`pipeline_core::evaluate::nab`]).
//!
//! The corpus is read by `pipeline_corpus::nab` (whose docs give the layout); every stream
//! goes through ingest → validate → enrich → detect → persist on one fresh in-memory store,
//! with the settings of the environment as `pipeline run` would use them. Labels are read
//! only to score: the chain never sees them. This module prints the scores.

use std::collections::BTreeMap;

use pipeline_core::evaluate::nab::{self, Scores};
use serde_json::json;

/// Prints the per-stream and per-group tables and the totals.
pub fn print(scores: &Scores, unscored: usize, sweep: Option<&[(f64, f64); 3]>) {
    println!(
        "{:<58} {:>6} {:>6} {:>5} {:>7} {:>8}",
        "stream", "rows", "flags", "FP", "windows", "raw"
    );
    for s in &scores.streams {
        println!(
            "{:<58} {:>6} {:>6} {:>5} {:>7} {:>8.2}",
            s.stream,
            s.counts.rows,
            s.counts.flags,
            s.counts.false_positives,
            format!("{}/{}", s.counts.windows_found, s.counts.windows_scored),
            s.raw.standard
        );
    }
    println!(
        "\n{:<24} {:>7} {:>7} {:>6} {:>6} {:>7} {:>8} {:>9} {:>10} {:>10}",
        "group", "streams", "rows", "flags", "FP", "windows", "raw", "standard", "low_FP", "low_FN"
    );
    let rows = scores
        .groups
        .iter()
        .map(|(g, s)| (g.as_str(), s))
        .chain([("total", &scores.total)]);
    for (g, s) in rows {
        let n = |f: fn(&nab::ByProfile) -> f64| {
            s.normalised
                .as_ref()
                .map_or("-".to_owned(), |x| format!("{:.1}", f(x)))
        };
        println!(
            "{:<24} {:>7} {:>7} {:>6} {:>6} {:>7} {:>8.2} {:>9} {:>10} {:>10}",
            g,
            s.streams,
            s.counts.rows,
            s.counts.flags,
            s.counts.false_positives,
            format!("{}/{}", s.counts.windows_found, s.counts.windows_scored),
            s.raw.standard,
            n(|x| x.standard),
            n(|x| x.reward_low_fp_rate),
            n(|x| x.reward_low_fn_rate),
        );
    }
    if let Some(n) = &scores.total.normalised {
        println!(
            "\nNAB score (is_anomaly): standard {:.1}, reward_low_FP_rate {:.1}, \
             reward_low_FN_rate {:.1}",
            n.standard, n.reward_low_fp_rate, n.reward_low_fn_rate
        );
    }
    if unscored > 0 {
        println!("{unscored} rows had no verdict (quarantined): counted as not flagged");
    }
    if let Some(best) = sweep {
        let names = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];
        let parts: Vec<String> = names
            .iter()
            .zip(best)
            .map(|(name, (th, score))| {
                if th.is_finite() {
                    format!("{name} {score:.1} at score >= {th}")
                } else {
                    format!("{name} 0 (flag nothing)")
                }
            })
            .collect();
        println!("best threshold per profile: {}", parts.join(", "));
    }
}

/// The JSON form: the three totals under `profiles`, beside the details.
pub fn to_json(
    dir: &str,
    scores: &Scores,
    unscored: usize,
    sweep: Option<&[(f64, f64); 3]>,
) -> serde_json::Value {
    let names = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];
    let sweep = sweep.map(|best| {
        names
            .iter()
            .zip(best)
            .map(|(name, (th, score))| {
                (
                    (*name).to_owned(),
                    json!({"threshold": th.is_finite().then_some(*th), "score": score}),
                )
            })
            .collect::<BTreeMap<_, _>>()
    });
    json!({
        "corpus": dir,
        "profiles": scores.total.normalised,
        "total": scores.total,
        "groups": scores.groups,
        "streams": scores.streams,
        "unscored_rows": unscored,
        "sweep": sweep,
    })
}
