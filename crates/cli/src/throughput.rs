//! `pipeline bench`: events per second for each stage and for the whole chain, single
//! threaded, with JSON at every stage boundary (as in Step Functions), beside a plain
//! `serde_json` parse + serialise of the same documents.
//!
//! This is a benchmark, not a test: it prints numbers and asserts nothing. Each figure is the
//! best of `--rounds` runs over the same batches.

use std::collections::HashMap;
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;
use pipeline_core::batch::{Batch, RawEvent, STATE_LIMIT_BYTES, ValidEvent};
use pipeline_core::contract::Contract;
use pipeline_core::detect::{self, EntityState, ObservationOf, ScoredEvent};
use pipeline_core::enrich::{self, EnrichedEvent};
use pipeline_core::validate;
use pipeline_handlers::Config;
use pipeline_ingest::{self as ingest, SplitLimits};
use pipeline_sqlite::SqliteStore;
use serde_json::{Value, json};

use crate::error::CliError;
use pipeline_corpus::stream::{GenerateConfig, generate};

/// Arguments of `pipeline bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Events in the benchmark stream.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Entities in the stream.
    #[arg(long, default_value_t = 200)]
    entities: usize,
    /// Runs per figure (the best is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
}

fn best<F: FnMut() -> Result<(), CliError>>(rounds: usize, mut f: F) -> Result<f64, CliError> {
    let mut best = f64::INFINITY;
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CliError> {
    serde_json::from_slice(bytes).map_err(|source| {
        CliError::Pipeline(pipeline_core::Error::BadBatch {
            expected: "benchmark batch",
            source,
        })
    })
}

fn to_vec<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Runs the benchmark.
pub fn bench(args: BenchArgs) -> Result<ExitCode, CliError> {
    let cfg = Config::from_env()?;
    let contract = Contract::v1()?;
    let lines = generate(&GenerateConfig::new(args.events, args.entities, 7));
    let items = ingest::decode_lines(
        "bench",
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i + 1, l.text.as_str())),
    );
    let raw: Vec<Batch<RawEvent>> = ingest::split(items, Utc::now(), SplitLimits::default());
    let n: usize = raw.iter().map(|b| b.input_count).sum();

    // Documents at every boundary, and entity states as the store would hold them mid-stream.
    let raw_docs: Vec<Vec<u8>> = raw.iter().map(to_vec).collect();
    let valid: Vec<Batch<ValidEvent>> = raw
        .into_iter()
        .map(|b| validate::validate(b, &contract, &cfg.validate))
        .collect();
    let valid_docs: Vec<Vec<u8>> = valid.iter().map(to_vec).collect();
    let mut states: HashMap<String, EntityState> = HashMap::new();
    let mut enriched_docs = Vec::new();
    let mut scored_docs = Vec::new();
    for b in valid {
        let e = enrich::enrich(b, &cfg.fx);
        enriched_docs.push(to_vec(&e));
        let s = detect::detect(e, &states, &cfg.detect);
        for ev in &s.events {
            let st = states
                .entry(ev.event.entity_id.clone())
                .or_insert_with(|| EntityState::new(&ev.event.entity_id));
            let obs = detect::Observation::of(&ev.event, ev.enrichment.base_value, &cfg.detect);
            detect::observe(st, &obs, &cfg.detect, true);
        }
        scored_docs.push(to_vec(&s));
    }
    let bytes: usize = raw_docs.iter().map(Vec::len).sum();

    let r = args.rounds;
    let serde_rt = |docs: &[Vec<u8>]| -> Result<(), CliError> {
        for d in docs {
            let v: Value = parse(d)?;
            black_box(to_vec(&v));
        }
        Ok(())
    };
    let serde_raw = best(r, || serde_rt(&raw_docs))?;
    let serde_all = best(r, || {
        serde_rt(&raw_docs)?;
        serde_rt(&valid_docs)?;
        serde_rt(&enriched_docs)?;
        serde_rt(&scored_docs)
    })?;
    // The same documents parsed into their typed structs and written back: what the stages
    // pay for JSON alone, without doing any work.
    let typed_all = best(r, || {
        for d in &raw_docs {
            black_box(to_vec(&parse::<Batch<RawEvent>>(d)?));
        }
        for d in &valid_docs {
            black_box(to_vec(&parse::<Batch<ValidEvent>>(d)?));
        }
        for d in &enriched_docs {
            black_box(to_vec(&parse::<Batch<EnrichedEvent>>(d)?));
        }
        for d in &scored_docs {
            black_box(to_vec(&parse::<Batch<ScoredEvent>>(d)?));
        }
        Ok(())
    })?;
    let t_validate = best(r, || {
        for d in &raw_docs {
            black_box(to_vec(&validate::validate(
                parse(d)?,
                &contract,
                &cfg.validate,
            )));
        }
        Ok(())
    })?;
    let t_enrich = best(r, || {
        for d in &valid_docs {
            black_box(to_vec(&enrich::enrich(parse(d)?, &cfg.fx)));
        }
        Ok(())
    })?;
    let t_detect = best(r, || {
        for d in &enriched_docs {
            let b: Batch<EnrichedEvent> = parse(d)?;
            black_box(to_vec(&detect::detect(b, &states, &cfg.detect)));
        }
        Ok(())
    })?;
    let t_chain = best(r, || {
        for d in &raw_docs {
            let v = to_vec(&validate::validate(parse(d)?, &contract, &cfg.validate));
            let e = to_vec(&enrich::enrich(parse(&v)?, &cfg.fx));
            let s = to_vec(&detect::detect(parse(&e)?, &states, &cfg.detect));
            black_box(parse::<Batch<ScoredEvent>>(&s)?);
        }
        Ok(())
    })?;
    let runtime = crate::input::runtime()?;
    let t_persist = best(r, || {
        let store = SqliteStore::in_memory().map_err(|source| CliError::Db {
            path: ":memory:".into(),
            source,
        })?;
        let now = Utc::now();
        runtime.block_on(async {
            for d in &scored_docs {
                let b: Batch<ScoredEvent> = parse(d)?;
                black_box(pipeline_core::persist::persist(&store, b, &cfg.persist, now).await?);
            }
            Ok::<_, CliError>(())
        })
    })?;

    // What each boundary carries per event (batch envelope included), and how many events fit
    // one execution at the largest: Step Functions caps a state's document at 256 KB.
    let per_event = |docs: &[Vec<u8>]| -> f64 {
        docs.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1) as f64
    };
    let boundaries = [
        ("ingest → validate", per_event(&raw_docs)),
        ("validate → enrich", per_event(&valid_docs)),
        ("enrich → detect", per_event(&enriched_docs)),
        ("detect → persist", per_event(&scored_docs)),
    ];
    let largest = boundaries.iter().map(|(_, b)| *b).fold(0.0, f64::max);
    let per_execution = if largest > 0.0 {
        (STATE_LIMIT_BYTES as f64 / largest).floor()
    } else {
        0.0
    };

    let rate = |t: f64| if t > 0.0 { (n as f64 / t).round() } else { 0.0 };
    let rows = [
        ("serde round trip (ingest doc)", serde_raw),
        ("serde round trip (all 4 docs)", serde_all),
        ("typed serde round trip (all 4 docs)", typed_all),
        ("validate", t_validate),
        ("enrich", t_enrich),
        ("detect", t_detect),
        ("chain validate→enrich→detect", t_chain),
        ("persist (SQLite in memory)", t_persist),
        ("chain + persist", t_chain + t_persist),
    ];
    if args.json {
        let figures: serde_json::Map<String, Value> = rows
            .iter()
            .map(|(k, t)| {
                (
                    (*k).to_owned(),
                    json!({"seconds": t, "events_per_s": rate(*t)}),
                )
            })
            .collect();
        println!(
            "{}",
            json!({"events": n, "batches": raw_docs.len(), "ingest_bytes": bytes, "figures": figures,
                   "chain_over_serde": t_chain / serde_all, "chain_over_typed_serde": t_chain / typed_all,
                   "boundary_bytes_per_event": boundaries.iter().map(|(k, b)| ((*k).to_owned(), json!(b.round()))).collect::<serde_json::Map<_, _>>(),
                   "events_per_execution": per_execution})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "pipeline bench: {n} events in {} batches ({:.0} bytes/event), best of {r}, one thread",
        raw_docs.len(),
        bytes as f64 / n.max(1) as f64
    );
    println!("  {:<34} {:>12} {:>10}", "", "events/s", "µs/event");
    for (k, t) in rows {
        println!(
            "  {:<34} {:>12} {:>10.2}",
            k,
            rate(t),
            t * 1e6 / n.max(1) as f64
        );
    }
    println!(
        "  chain / serde_json::Value round trip of the same 4 documents: {:.2}x; / typed round trip: {:.2}x (target ≤ 2x)",
        t_chain / serde_all,
        t_chain / typed_all
    );
    println!("  target for the chain: ≥ 120000 events/s per core (issue 13)");
    println!(
        "  {:<34} {:>12}",
        "document at each boundary", "bytes/event"
    );
    for (k, b) in boundaries {
        println!("  {k:<34} {b:>12.0}");
    }
    println!(
        "  events per execution at the largest boundary (256 KB state limit): {per_execution:.0} (target ≥ 400)"
    );
    Ok(ExitCode::SUCCESS)
}
