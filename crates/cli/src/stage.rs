//! `pipeline stage NAME INPUT`: one stage on one document, its output printed as JSON: what
//! a Lambda function of that stage would answer, on the embedded store.

use std::process::ExitCode;

use chrono::Utc;
use pipeline_handlers::{Config, Pipeline};
use pipeline_sqlite::SqliteStore;
use serde_json::Value;

use crate::error::CliError;
use crate::jobs::{Job, load};

/// `pipeline stage NAME INPUT`: one stage, one document, output printed as JSON.
pub fn stage(name: &str, input: &str, db: &std::path::Path) -> Result<ExitCode, CliError> {
    let runtime = crate::input::runtime()?;
    let store = SqliteStore::open(db).map_err(|source| CliError::Db {
        path: db.display().to_string(),
        source,
    })?;
    let p = Pipeline::new(Config::from_env()?, store)?;
    let mut jobs = load(input, &p)?;
    let given = match jobs.as_slice() {
        [one] => format!("a batch document for {}", one.stage().as_str()),
        many => format!("{} batch documents", many.len()),
    };
    let wrong = |expected: &str| CliError::Input {
        path: input.to_owned(),
        message: format!("`{name}` takes {expected}; this is {given}"),
    };
    let out: Value = runtime.block_on(async {
        if name == "ingest" {
            let docs: Vec<Value> = jobs
                .into_iter()
                .filter_map(|j| {
                    if let Job::Raw(b) = j {
                        serde_json::to_value(b).ok()
                    } else {
                        None
                    }
                })
                .collect();
            return Ok::<_, CliError>(if docs.len() == 1 {
                docs.into_iter().next().unwrap_or_default()
            } else {
                Value::Array(docs)
            });
        }
        let job = if jobs.len() == 1 { jobs.pop() } else { None };
        let to_json = |r: Result<Value, serde_json::Error>| r.unwrap_or_default();
        Ok(match (name, job) {
            ("validate", Some(Job::Raw(b))) => to_json(serde_json::to_value(p.validate(b))),
            ("enrich", Some(Job::Valid(b))) => to_json(serde_json::to_value(p.enrich(b))),
            ("detect", Some(Job::Enriched(b))) => to_json(serde_json::to_value(p.detect(b).await?)),
            ("persist", Some(Job::Scored(b))) => {
                to_json(serde_json::to_value(p.persist(b, Utc::now()).await?))
            }
            ("validate", _) => return Err(wrong("one raw batch document (ingest output)")),
            ("enrich", _) => return Err(wrong("one validated batch document (validate output)")),
            ("detect", _) => return Err(wrong("one enriched batch document (enrich output)")),
            _ => return Err(wrong("one scored batch document (detect output)")),
        })
    })?;
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}
