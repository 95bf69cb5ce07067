//! Glue schema versions fetched at run time decode the registry samples exactly as the
//! registry file does; each version is fetched once per process; a version Glue does not
//! have quarantines its records alone; Glue not answering fails the batch as retryable and
//! is asked again on the redelivery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use pipeline_core::error::ErrorClass;
use pipeline_ingest::{
    GlueRegistry, GlueSchemaVersion, Item, Registry, StaticGlueSchemas, decode_with,
    glue_version_ids,
};
use serde_json::{Value, json};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo(path)).unwrap()).unwrap()
}

/// The registry file, and the same schemas as Glue would hold them: the file without its
/// Glue version ids, with a `glue_schemas` entry (the mapping) per schema name instead, and
/// the versions themselves (the definitions) served by the fake Glue.
fn file_and_glue() -> (Registry, Value, StaticGlueSchemas) {
    let file = read("schemas/registry.json");
    let mut without = file.clone();
    let mut glue_schemas = Vec::new();
    let mut glue = StaticGlueSchemas::default();
    for s in without["schemas"].as_array_mut().unwrap() {
        let Some(id) = s.as_object_mut().unwrap().remove("glue_version_id") else {
            continue;
        };
        let name = s["name"].as_str().unwrap().to_owned();
        let (format, definition) = match s["format"].as_str().unwrap() {
            "avro" => ("AVRO", s["schema"].to_string()),
            "json" => ("JSON", json!({"type": "object"}).to_string()),
            _ => ("PROTOBUF", "syntax = \"proto3\";".to_owned()),
        };
        let mut entry = json!({"schema_name": name, "mapping": s["mapping"]});
        if format == "PROTOBUF" {
            entry["descriptor_set"] = s["descriptor_set"].clone();
            entry["message"] = s["message"].clone();
        }
        glue_schemas.push(entry);
        glue.versions.insert(
            id.as_str().unwrap().to_owned(),
            GlueSchemaVersion {
                schema_name: name,
                data_format: format.to_owned(),
                definition,
            },
        );
    }
    without["glue_schemas"] = Value::Array(glue_schemas);
    let registry = Registry::from_json(&file.to_string()).unwrap();
    (registry, without, glue)
}

fn glue_registry(without: &Value, glue: StaticGlueSchemas) -> GlueRegistry {
    GlueRegistry::new(
        Registry::from_json(&without.to_string()).unwrap(),
        Arc::new(glue),
    )
}

#[tokio::test]
async fn fetched_versions_decode_the_samples_as_the_registry_file_does_once_each() {
    let input = read("events/ingest/msk-registry.json");
    let (file, without, glue) = file_and_glue();
    let ids = glue_version_ids(&input);
    assert_eq!(ids.len(), 3, "{ids:?}");
    let glue = glue_registry(&without, glue);

    let from_file = decode_with(&input, &file).unwrap();
    let fetched = decode_with(&input, &glue.for_input(&input).await.unwrap()).unwrap();
    assert_eq!(fetched, from_file);
    assert!(from_file.iter().all(|i| matches!(i, Item::Event(_))));
    assert_eq!(glue.fetches(), 3);

    // The next batches naming the same versions fetch nothing.
    for _ in 0..3 {
        let again = decode_with(&input, &glue.for_input(&input).await.unwrap()).unwrap();
        assert_eq!(again, from_file);
    }
    assert_eq!(glue.fetches(), 3);

    // Without the Glue registry, the file without version ids quarantines the Glue records:
    // four, two of them (plain and zlib) naming the same Avro version.
    let unfetched = Registry::from_json(&without.to_string()).unwrap();
    let unknown = decode_with(&input, &unfetched)
        .unwrap()
        .into_iter()
        .filter(|i| matches!(i, Item::Quarantined(_)))
        .count();
    assert_eq!(unknown, 4);
}

#[tokio::test]
async fn a_version_glue_does_not_have_quarantines_its_records_alone_and_is_not_asked_again() {
    let input = read("events/ingest/msk-registry.json");
    let (file, without, mut glue) = file_and_glue();
    let proto = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
    assert!(glue.versions.remove(proto).is_some());
    let glue = glue_registry(&without, glue);

    let items = decode_with(&input, &glue.for_input(&input).await.unwrap()).unwrap();
    let expected = decode_with(&input, &file).unwrap();
    let mut quarantined = 0;
    for (got, want) in items.iter().zip(&expected) {
        match got {
            Item::Quarantined(q) => {
                quarantined += 1;
                let reason = &q.reasons[0];
                assert_eq!(reason.code, "unknown_schema");
                assert!(reason.message.contains(proto), "{}", reason.message);
                assert!(reason.message.contains("Glue has no"), "{}", reason.message);
            }
            event => assert_eq!(event, want),
        }
    }
    assert_eq!(quarantined, 1);
    glue.for_input(&input).await.unwrap();
    assert_eq!(
        glue.fetches(),
        3,
        "the missing version is not asked for again"
    );
}

#[tokio::test]
async fn glue_not_answering_fails_the_batch_as_retryable_and_is_asked_again() {
    let input = read("events/ingest/msk-registry.json");
    let (_, without, mut glue) = file_and_glue();
    let avro = "6f1c2a4e-8b3d-4e5f-9a10-2b3c4d5e6f70";
    glue.unavailable.insert(avro.to_owned());
    let glue = glue_registry(&without, glue);

    let err = glue.for_input(&input).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(err.error_type(), "Pipeline.Retryable.SchemaUnavailable");
    assert!(err.to_string().contains(avro), "{err}");
    let first = glue.fetches();
    assert!(glue.for_input(&input).await.is_err());
    assert!(
        glue.fetches() > first,
        "nothing was remembered from the failed batch"
    );
}
