//! The plan of a backfill: JSON Lines inputs sharded by entity, each shard ordered by event time and
//! cut into batch documents (`pipeline_ingest::shard`), each batch an object of its own, and a
//! manifest listing every shard's objects in the order its child runs them.
//!
//! Memory stays flat whatever the input's size: a first pass reads the inputs line by line and
//! appends each decoded item to its shard's spill file (a temporary directory); a second pass
//! takes one shard at a time, orders it, cuts it and hands its objects on (to be uploaded, or
//! only counted for `--dry-run`). The most held at once is one shard.
//!
//! Object keys are content-derived (`<prefix>/batches/<batch_id>.json`): a rerun of the same
//! input writes the same objects again instead of new ones.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use pipeline_core::batch::{Quarantined, RawEvent};
use pipeline_ingest::{self as ingest, Item, SplitLimits, shard};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The most batches one shard may hold: its child execution runs them in an inline Map, whose
/// results (one report of about 250 bytes per batch) must stay under Step Functions' 256 KB
/// state limit, and whose history (about 16 events per batch) under 25,000 events.
pub const MAX_BATCHES_PER_SHARD: usize = 500;

/// One batch of the manifest: its object and the execution name its pipeline run takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestBatch {
    /// The object's key in the bucket.
    pub key: String,
    /// The pipeline execution's name, as ingest would name it (`<batch_id>-<received ms>`).
    pub name: String,
}

/// One item of the manifest: a shard, run by one child execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestShard {
    /// The shard's number.
    pub shard: u32,
    /// Items in it (every decoded line, events and lines quarantined at ingest alike).
    pub events: usize,
    /// Its batches, in the order they run.
    pub batches: Vec<ManifestBatch>,
}

/// One shard's objects, ready to be put: `(key, body)`.
pub type Objects = Vec<(String, Vec<u8>)>;

/// What the plan came to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Lines read that held an item.
    pub events: usize,
    /// Of those, lines that are not JSON (quarantined at stage `ingest`, never dropped).
    pub not_json: usize,
    /// Shards asked for.
    pub shards: u32,
    /// Shards holding at least one item (the Map run's items).
    pub shards_used: usize,
    /// Batch documents (objects) over all shards.
    pub batches: usize,
    /// Bytes of all batch documents.
    pub bytes: u64,
    /// The most items one shard holds.
    pub largest_shard: usize,
    /// The manifest, one entry per used shard (not printed).
    #[serde(skip)]
    pub manifest: Vec<ManifestShard>,
}

/// Items spilled to a shard's file, as a line of JSON each.
#[derive(Serialize, Deserialize)]
enum Spilled {
    E(RawEvent),
    Q(Box<Quarantined>),
}

/// Plans the backfill of `inputs` into `shards` shards; `each_shard` gets every used shard's
/// manifest entry and objects, one shard at a time, in shard order.
pub fn plan(
    inputs: &[String],
    shards: u32,
    prefix: &str,
    received_at: DateTime<Utc>,
    mut each_shard: impl FnMut(&ManifestShard, Objects) -> Result<(), Error>,
) -> Result<Plan, Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    let mut plan = Plan {
        shards,
        ..Plan::default()
    };
    spill(inputs, shards, dir.path().to_path_buf(), &mut plan)?;
    let limits = SplitLimits::default();
    for n in 0..shards {
        let path = spill_path(dir.path(), n);
        if !path.exists() {
            continue;
        }
        let items = read_spill(&path)?;
        let events = items.len();
        let batches = shard::shard_batches(items, received_at, limits);
        if batches.len() > MAX_BATCHES_PER_SHARD {
            return Err(Error::ShardTooLarge {
                shard: n,
                batches: batches.len(),
                suggested: plan.events / 25_000 + 1,
            });
        }
        let mut objects = Vec::with_capacity(batches.len());
        let mut entry = ManifestShard {
            shard: n,
            events,
            batches: Vec::with_capacity(batches.len()),
        };
        for batch in &batches {
            let key = format!("{prefix}/batches/{}.json", batch.batch_id);
            let body = serde_json::to_vec(batch).map_err(|source| Error::Json {
                what: format!("batch document {key}"),
                source,
            })?;
            plan.bytes += body.len() as u64;
            entry.batches.push(ManifestBatch {
                key: key.clone(),
                name: batch.execution_name(),
            });
            objects.push((key, body));
        }
        plan.batches += batches.len();
        plan.shards_used += 1;
        plan.largest_shard = plan.largest_shard.max(events);
        each_shard(&entry, objects)?;
        plan.manifest.push(entry);
        // The shard is done with: its spill file goes now, not at the end.
        let _ = std::fs::remove_file(&path);
    }
    Ok(plan)
}

/// An id of the plan's content (every batch id, in manifest order): the same input planned
/// again has the same id.
pub fn plan_id(plan: &Plan) -> String {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for shard in &plan.manifest {
        for batch in &shard.batches {
            hasher.update(batch.key.as_bytes());
        }
    }
    format!("{:016x}", hasher.digest())
}

/// The batch id in a batch object's key (`<prefix>/batches/<batch_id>.json`).
pub fn batch_id_of_key(key: &str) -> &str {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.strip_suffix(".json").unwrap_or(name)
}

fn spill_path(dir: &std::path::Path, shard: u32) -> PathBuf {
    dir.join(format!("shard-{shard:05}.jsonl"))
}

/// The first pass: every input line decoded and appended to its shard's file.
fn spill(inputs: &[String], shards: u32, dir: PathBuf, plan: &mut Plan) -> Result<(), Error> {
    let mut writers: Vec<Option<BufWriter<File>>> = (0..shards).map(|_| None).collect();
    let mut buf = Vec::new();
    for input in inputs {
        let mut reader: Box<dyn BufRead> = if input == "-" {
            Box::new(BufReader::new(std::io::stdin().lock()))
        } else {
            Box::new(BufReader::new(
                File::open(input).map_err(|e| Error::io(input, e))?,
            ))
        };
        let mut line_no = 0;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| Error::io(input, e))?;
            if read == 0 {
                break;
            }
            line_no += 1;
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let Some(item) = ingest::decode_byte_line(input, line_no, line) else {
                continue;
            };
            let n = shard::shard_of(&item, shards);
            let spilled = match item {
                Item::Event(r) => Spilled::E(r),
                Item::Quarantined(q) => {
                    plan.not_json += 1;
                    Spilled::Q(q)
                }
            };
            plan.events += 1;
            let slot = &mut writers[n as usize];
            if slot.is_none() {
                let path = spill_path(&dir, n);
                let file =
                    File::create(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
                *slot = Some(BufWriter::new(file));
            }
            if let Some(w) = slot.as_mut() {
                serde_json::to_writer(&mut *w, &spilled)
                    .map_err(|e| Error::io(dir.display().to_string(), e.into()))?;
                w.write_all(b"\n")
                    .map_err(|e| Error::io(dir.display().to_string(), e))?;
            }
        }
    }
    for w in writers.iter_mut().flatten() {
        w.flush()
            .map_err(|e| Error::io(dir.display().to_string(), e))?;
    }
    Ok(())
}

fn read_spill(path: &std::path::Path) -> Result<Vec<Item>, Error> {
    let name = path.display().to_string();
    let reader = BufReader::new(File::open(path).map_err(|e| Error::io(&name, e))?);
    let mut items = Vec::new();
    for line in reader.lines() {
        let line = line.map_err(|e| Error::io(&name, e))?;
        let spilled: Spilled =
            serde_json::from_str(&line).map_err(|e| Error::io(&name, e.into()))?;
        items.push(match spilled {
            Spilled::E(r) => Item::Event(r),
            Spilled::Q(q) => Item::Quarantined(q),
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{BTreeMap, BTreeSet};

    use pipeline_core::batch::Batch;

    use super::*;

    /// Two input files of `n` events each over `entities` entities, each entity's events in
    /// *reverse* time order across the files, plus one line that is not JSON.
    fn inputs(dir: &std::path::Path, n: usize, entities: usize) -> Vec<String> {
        (0..2)
            .map(|f| {
                let path = dir.join(format!("in-{f}.jsonl"));
                let mut text = String::new();
                for k in 0..n {
                    let i = f * n + k;
                    let minute = 100_000 - i;
                    text.push_str(&format!(
                        "{{\"event_id\":\"e{i}\",\"entity_id\":\"a{}\",\"occurred_at\":\"2026-01-{:02}T{:02}:{:02}:00Z\",\"event_type\":\"t\",\"source\":\"s\",\"value\":1,\"currency\":\"EUR\"}}\n",
                        i % entities,
                        1 + minute / 1440 % 28,
                        minute / 60 % 24,
                        minute % 60
                    ));
                }
                text.push_str("not json\n");
                std::fs::write(&path, text).unwrap();
                path.display().to_string()
            })
            .collect()
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn planned(paths: &[String], shards: u32) -> (Plan, Vec<Objects>) {
        let mut objects = Vec::new();
        let plan = plan(paths, shards, "p", at(), |_, o| {
            objects.push(o);
            Ok(())
        })
        .unwrap();
        (plan, objects)
    }

    #[test]
    fn every_entity_is_in_one_shard_in_event_time_order_and_nothing_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path(), 700, 30);
        let (plan, objects) = planned(&paths, 8);
        assert_eq!((plan.events, plan.not_json), (1402, 2));
        assert_eq!(plan.manifest.len(), plan.shards_used);
        assert_eq!(plan.batches, objects.iter().map(Vec::len).sum::<usize>());
        let mut shard_of_entity: BTreeMap<String, u32> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        let mut events_in_objects = 0;
        for (entry, shard_objects) in plan.manifest.iter().zip(&objects) {
            let keys: Vec<&str> = shard_objects.iter().map(|(k, _)| k.as_str()).collect();
            let listed: Vec<&str> = entry.batches.iter().map(|b| b.key.as_str()).collect();
            assert_eq!(
                keys, listed,
                "the manifest lists the objects in their order"
            );
            let mut last_time: BTreeMap<String, String> = BTreeMap::new();
            for (key, body) in shard_objects {
                let batch: Batch<serde_json::Value> = serde_json::from_slice(body).unwrap();
                assert_eq!(batch_id_of_key(key), batch.batch_id);
                events_in_objects += batch.input_count;
                for e in &batch.events {
                    let entity = e["payload"]["entity_id"].as_str().unwrap().to_owned();
                    let time = e["payload"]["occurred_at"].as_str().unwrap().to_owned();
                    assert_eq!(
                        *shard_of_entity.entry(entity.clone()).or_insert(entry.shard),
                        entry.shard
                    );
                    if let Some(before) = last_time.insert(entity.clone(), time.clone()) {
                        assert!(before <= time, "{entity}: {before} then {time}");
                    }
                    assert!(seen.insert(e["payload"]["event_id"].as_str().unwrap().to_owned()));
                }
            }
        }
        assert_eq!(
            events_in_objects, 1402,
            "every line, the two not-JSON ones included"
        );
        assert_eq!(seen.len(), 1400);
        assert_eq!(shard_of_entity.len(), 30);
    }

    #[test]
    fn the_same_input_plans_the_same_objects() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path(), 300, 7);
        let (a, oa) = planned(&paths, 4);
        let (b, ob) = planned(&paths, 4);
        assert_eq!(plan_id(&a), plan_id(&b));
        assert_eq!(oa, ob);
        let (c, _) = planned(&paths, 5);
        assert_ne!(plan_id(&a), plan_id(&c), "another sharding is another plan");
    }

    #[test]
    fn a_shard_too_large_for_one_child_stops_the_plan_with_the_shards_to_ask_for() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path(), 25_100, 3);
        let mut handed = 0;
        let err = plan(&paths, 1, "p", at(), |_, _| {
            handed += 1;
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("use more --shards (about 3"), "{err}");
        assert_eq!(handed, 0, "nothing is handed on for upload");
    }
}
