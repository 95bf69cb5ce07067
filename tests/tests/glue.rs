//! Ingest's Glue client against the emulator's Glue Schema Registry: the registry samples'
//! schemas registered there, the samples' Glue headers rewritten to the version ids the
//! emulator gave, and the values decode to the same events as with the registry file;
//! a version of another registry, or one that does not exist, quarantines its records.
//! Needs `AWS_ENDPOINT_URL` on a loopback address (`scripts/test` starts moto).

#![cfg(feature = "glue")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use pipeline_aws::GlueSchemaClient;
use pipeline_aws::aws_sdk_glue::Client;
use pipeline_aws::aws_sdk_glue::types::{Compatibility, DataFormat, RegistryId};
use pipeline_ingest::{GlueRegistry, Item, Registry, decode_with};
use serde_json::{Value, json};

fn emulator() -> bool {
    let require =
        std::env::var_os("PIPELINE_REQUIRE_AWS").is_some_and(|v| !v.is_empty() && v != "0");
    let config = pipeline_handlers::Config::from_env().unwrap();
    if config.endpoint_override.is_none() || config.loopback_endpoint().is_none() {
        assert!(
            !require,
            "PIPELINE_REQUIRE_AWS is set but no loopback AWS_ENDPOINT_URL"
        );
        println!("skipped: no loopback AWS_ENDPOINT_URL (run via scripts/test)");
        return false;
    }
    true
}

fn read(path: &str) -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    serde_json::from_str(&std::fs::read_to_string(root.join(path)).unwrap()).unwrap()
}

fn uuid_bytes(id: &str) -> Vec<u8> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    (0..32)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The sample batch with every Glue header's version id replaced as `ids` says.
fn rewritten(input: &Value, ids: &HashMap<String, String>) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = input.clone();
    for records in out["records"].as_object_mut().unwrap().values_mut() {
        for r in records.as_array_mut().unwrap() {
            let mut bytes = b64.decode(r["value"].as_str().unwrap()).unwrap();
            if bytes.first() == Some(&3) && bytes.len() >= 18 {
                let old = pipeline_ingest::Registry::wire_format(&bytes);
                if let pipeline_ingest::registry::WireFormat::Glue { version_id, .. } = old.0 {
                    bytes[2..18].copy_from_slice(&uuid_bytes(&ids[&version_id]));
                    r["value"] = json!(b64.encode(&bytes));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn versions_fetched_from_the_emulators_glue_decode_the_samples_as_the_file_does() {
    if !emulator() {
        return;
    }
    let sdk = pipeline_aws::sdk_config().await;
    let glue = Client::new(&sdk);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let registry_name = format!("pipeline-test-{nanos}");
    glue.create_registry()
        .registry_name(&registry_name)
        .send()
        .await
        .expect("create registry");

    // Register each Glue-named schema of the registry file; note the emulator's version ids.
    let file = read("schemas/registry.json");
    let mut without = file.clone();
    let mut glue_schemas = Vec::new();
    let mut ids = HashMap::new();
    for s in without["schemas"].as_array_mut().unwrap() {
        let Some(old_id) = s.as_object_mut().unwrap().remove("glue_version_id") else {
            continue;
        };
        let name = s["name"].as_str().unwrap().to_owned();
        let (format, definition) = match s["format"].as_str().unwrap() {
            "avro" => (DataFormat::Avro, s["schema"].to_string()),
            "json" => (DataFormat::Json, json!({"type": "object"}).to_string()),
            _ => (
                DataFormat::Protobuf,
                "syntax = \"proto3\"; package plant; message SensorReading {}".to_owned(),
            ),
        };
        let created = glue
            .create_schema()
            .registry_id(RegistryId::builder().registry_name(&registry_name).build())
            .schema_name(&name)
            .data_format(format.clone())
            .compatibility(Compatibility::None)
            .schema_definition(definition)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create schema {name}: {e:?}"));
        ids.insert(
            old_id.as_str().unwrap().to_owned(),
            created.schema_version_id().unwrap().to_owned(),
        );
        let mut entry = json!({"schema_name": name, "mapping": s["mapping"]});
        if format == DataFormat::Protobuf {
            entry["descriptor_set"] = s["descriptor_set"].clone();
            entry["message"] = s["message"].clone();
        }
        glue_schemas.push(entry);
    }
    without["glue_schemas"] = Value::Array(glue_schemas);

    let input = read("events/ingest/msk-registry.json");
    let expected = decode_with(&input, &Registry::from_json(&file.to_string()).unwrap()).unwrap();
    let fetched = GlueRegistry::new(
        Registry::from_json(&without.to_string()).unwrap(),
        Arc::new(GlueSchemaClient::new(&sdk, &registry_name)),
    );
    let moved = rewritten(&input, &ids);
    let got = decode_with(&moved, &fetched.for_input(&moved).await.unwrap()).unwrap();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        // The raw bytes differ only in the ids the emulator gave; the events are the same.
        match (g, e) {
            (Item::Event(g), Item::Event(e)) => assert_eq!(g.payload, e.payload),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fetched.fetches(), 3);

    // The same versions asked for by a client of another registry are not found there.
    let elsewhere = GlueRegistry::new(
        Registry::from_json(&without.to_string()).unwrap(),
        Arc::new(GlueSchemaClient::new(&sdk, "another-registry")),
    );
    let items = decode_with(&moved, &elsewhere.for_input(&moved).await.unwrap()).unwrap();
    let unknown = items
        .iter()
        .filter(|i| matches!(i, Item::Quarantined(q) if q.reasons[0].code == "unknown_schema"))
        .count();
    assert_eq!(unknown, 4, "{items:?}");
    let _ = glue
        .delete_registry()
        .registry_id(RegistryId::builder().registry_name(&registry_name).build())
        .send()
        .await;
}
