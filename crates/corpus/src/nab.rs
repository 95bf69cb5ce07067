//! Reading a corpus in the Numenta Anomaly Benchmark's layout (`pipeline evaluate --nab DIR`)
//! into the events the chain reads and the streams NAB's scorer takes
//! (`pipeline_detect::evaluate::nab`).
//!
//! Layout: `data/<group>/<stream>.csv` with a `timestamp,value` header and rows
//! `YYYY-MM-DD HH:MM:SS,<number>` (UTC), and `labels/combined_windows.json` mapping
//! `"<group>/<stream>.csv"` to `[["start", "end"], …]`. Each row becomes one event of the
//! entity `<group>/<stream>.csv` (source `nab.<group>`, type `metric.nab`). Labels are read
//! only to score: the events carry none of them.

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDateTime;
use pipeline_detect::evaluate::nab::Stream;
use serde_json::json;

/// What reading a NAB corpus can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what NAB's layout says it is.
    #[error("{path}: {message}")]
    Bad {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A corpus read from disk: its streams (with their windows) and each row's value.
pub struct Corpus {
    /// Streams in order: groups sorted, files sorted within a group.
    pub streams: Vec<Stream>,
    /// `values[s][i]`: row `i` of stream `s`.
    pub values: Vec<Vec<f64>>,
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Bad {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn time_ms(path: &Path, text: &str) -> Result<i64, Error> {
    NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc().timestamp_millis())
        .map_err(|e| {
            bad(
                path,
                format!("`{text}` is not a `YYYY-MM-DD HH:MM:SS` time: {e}"),
            )
        })
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>, Error> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    out.sort();
    Ok(out)
}

/// Reads `dir` in NAB's layout.
pub fn read(dir: &Path) -> Result<Corpus, Error> {
    let labels_path = dir.join("labels").join("combined_windows.json");
    let labels_text =
        std::fs::read_to_string(&labels_path).map_err(|e| Error::io(&labels_path, e))?;
    let labels: HashMap<String, Vec<[String; 2]>> = serde_json::from_str(&labels_text)
        .map_err(|e| bad(&labels_path, format!("not NAB's windows file: {e}")))?;
    let mut streams = Vec::new();
    let mut values = Vec::new();
    for group_dir in sorted_entries(&dir.join("data"))? {
        if !group_dir.is_dir() {
            continue;
        }
        let group = group_dir
            .file_name()
            .map(|g| g.to_string_lossy().into_owned())
            .unwrap_or_default();
        for file in sorted_entries(&group_dir)? {
            if file.extension().is_none_or(|e| e != "csv") {
                continue;
            }
            let name = format!(
                "{group}/{}",
                file.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            );
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
            let (mut t_ms, mut vs) = (Vec::new(), Vec::new());
            for (i, line) in text.lines().enumerate().skip(1) {
                if line.trim().is_empty() {
                    continue;
                }
                let (t, v) = line
                    .split_once(',')
                    .ok_or_else(|| bad(&file, format!("line {}: not `timestamp,value`", i + 1)))?;
                let v: f64 = v.trim().parse().map_err(|e| {
                    bad(&file, format!("line {}: `{v}` is not a number: {e}", i + 1))
                })?;
                t_ms.push(time_ms(&file, t)?);
                vs.push(v);
            }
            let windows = labels
                .get(&name)
                .map(|w| {
                    w.iter()
                        .map(|[a, b]| Ok((time_ms(&labels_path, a)?, time_ms(&labels_path, b)?)))
                        .collect::<Result<Vec<_>, Error>>()
                })
                .transpose()?
                .unwrap_or_default();
            streams.push(Stream {
                name,
                group: group.clone(),
                t_ms,
                windows,
            });
            values.push(vs);
        }
    }
    if streams.is_empty() {
        return Err(bad(dir, "no `data/<group>/*.csv` streams found"));
    }
    corpus_checked(streams, values, &labels, &labels_path)
}

/// Every labelled stream must be in the corpus: a label for a missing file would silently
/// leave its windows out of the score.
fn corpus_checked(
    streams: Vec<Stream>,
    values: Vec<Vec<f64>>,
    labels: &HashMap<String, Vec<[String; 2]>>,
    labels_path: &Path,
) -> Result<Corpus, Error> {
    let names: std::collections::HashSet<&str> = streams.iter().map(|s| s.name.as_str()).collect();
    let mut missing: Vec<&str> = labels
        .keys()
        .map(String::as_str)
        .filter(|k| !names.contains(k))
        .collect();
    missing.sort_unstable();
    if let Some(first) = missing.first() {
        return Err(bad(
            labels_path,
            format!(
                "{} labelled stream(s) have no data file, e.g. `{first}`",
                missing.len()
            ),
        ));
    }
    Ok(Corpus { streams, values })
}

/// The corpus as the JSON Lines events the chain reads, and each event id's (stream, row).
pub fn events(corpus: &Corpus) -> (String, HashMap<String, (usize, usize)>) {
    let mut text = String::new();
    let mut ids = HashMap::new();
    for (s, (stream, values)) in corpus.streams.iter().zip(&corpus.values).enumerate() {
        for (i, (t, v)) in stream.t_ms.iter().zip(values).enumerate() {
            let id = format!("nab-{s}-{i}");
            let at = chrono::DateTime::from_timestamp_millis(*t)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            let line = json!({
                "event_id": id,
                "event_type": "metric.nab",
                "source": format!("nab.{}", stream.group),
                "entity_id": stream.name,
                "occurred_at": at,
                "value": v,
            });
            text.push_str(&line.to_string());
            text.push('\n');
            ids.insert(id, (s, i));
        }
    }
    (text, ids)
}
