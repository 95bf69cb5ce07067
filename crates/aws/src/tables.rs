//! The three tables: their names ([`Tables`]) and their definitions, created on demand by
//! [`crate::DynamoStore::create_tables`] (tests, the emulator, a first deployment by hand).
//!
//! The definitions are not written here: they are read from `deploy/tables.json`, which the
//! local AWS stack (`scripts/local_aws.py`) reads too and `scripts/check-template` checks
//! against `template.yaml`, so the three cannot drift apart. All three tables are on demand
//! (`PAY_PER_REQUEST`) with a single string partition key. The events table carries the sparse
//! global secondary index `anomalies-by-entity` (`anomaly_entity` → `occurred_at`, all
//! attributes projected), which holds only anomalous records, so listing an entity's anomalies
//! newest first is one `Query`.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use serde::Deserialize;
use tracing::info;

use crate::error::Error;
pub use pipeline_core::store::Tables;

/// How long [`create`] waits for a new table to become ACTIVE.
const ACTIVE_WAIT: Duration = Duration::from_secs(120);

/// `deploy/tables.json`, compiled in.
const DEFINITIONS: &str = include_str!("../../../deploy/tables.json");

/// The three table definitions, in the CreateTable request's own vocabulary.
#[derive(Debug, Deserialize)]
struct Definitions {
    events: Definition,
    entities: Definition,
    quarantine: Definition,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Definition {
    attribute_definitions: Vec<Attribute>,
    key_schema: Vec<Key>,
    #[serde(default)]
    global_secondary_indexes: Vec<Index>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Attribute {
    attribute_name: String,
    attribute_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Key {
    attribute_name: String,
    key_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Index {
    index_name: String,
    key_schema: Vec<Key>,
    projection: IndexProjection,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexProjection {
    projection_type: String,
}

fn definitions() -> Result<Definitions, Error> {
    serde_json::from_str(DEFINITIONS).map_err(|source| Error::Decode {
        table: "deploy/tables.json".into(),
        key: "(definitions)".into(),
        source,
    })
}

fn build<T>(
    what: &'static str,
    r: Result<T, aws_sdk_dynamodb::error::BuildError>,
) -> Result<T, Error> {
    r.map_err(|source| Error::Build { what, source })
}

fn attribute(a: &Attribute) -> Result<AttributeDefinition, Error> {
    build(
        "attribute definition",
        AttributeDefinition::builder()
            .attribute_name(&a.attribute_name)
            .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
            .build(),
    )
}

fn key(k: &Key) -> Result<KeySchemaElement, Error> {
    build(
        "key schema element",
        KeySchemaElement::builder()
            .attribute_name(&k.attribute_name)
            .key_type(KeyType::from(k.key_type.as_str()))
            .build(),
    )
}

fn index(i: &Index) -> Result<GlobalSecondaryIndex, Error> {
    let mut b = GlobalSecondaryIndex::builder()
        .index_name(&i.index_name)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::from(i.projection.projection_type.as_str()))
                .build(),
        );
    for k in &i.key_schema {
        b = b.key_schema(key(k)?);
    }
    build("global secondary index", b.build())
}

/// Creates each missing table and waits until all are ACTIVE. A table that already exists is
/// left as it is (its schema is not checked).
pub(crate) async fn create(client: &Client, tables: &Tables) -> Result<(), Error> {
    let defs = definitions()?;
    for (table, def) in [
        (&tables.events, &defs.events),
        (&tables.entities, &defs.entities),
        (&tables.quarantine, &defs.quarantine),
    ] {
        let mut req = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest);
        for a in &def.attribute_definitions {
            req = req.attribute_definitions(attribute(a)?);
        }
        for k in &def.key_schema {
            req = req.key_schema(key(k)?);
        }
        for i in &def.global_secondary_indexes {
            req = req.global_secondary_indexes(index(i)?);
        }
        match req.send().await {
            Ok(_) => info!(table = %table, "table created"),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) =>
            {
                info!(table = %table, "table exists")
            }
            Err(e) => return Err(Error::sdk("CreateTable", table, e)),
        }
    }
    for table in [&tables.events, &tables.entities, &tables.quarantine] {
        client
            .wait_until_table_exists()
            .table_name(table)
            .wait(ACTIVE_WAIT)
            .await
            .map_err(|e| Error::NotActive {
                table: table.clone(),
                source: Box::new(e),
            })?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::item::{
        ANOMALY_ENTITY, ANOMALY_INDEX, ENTITY_KEY, EVENT_KEY, OCCURRED_AT, QUARANTINE_KEY,
    };

    #[test]
    fn prefixed_names() {
        let t = Tables::with_prefix("x");
        assert_eq!(t.events, "x-events");
        assert_eq!(t.entities, "x-entities");
        assert_eq!(t.quarantine, "x-quarantine");
        assert_eq!(Tables::default().events, "pipeline-events");
        assert_eq!(Tables::default(), Tables::with_prefix("pipeline"));
    }

    fn hash_key(d: &Definition) -> &str {
        let hash: Vec<&Key> = d
            .key_schema
            .iter()
            .filter(|k| k.key_type == "HASH")
            .collect();
        assert_eq!(hash.len(), 1);
        &hash[0].attribute_name
    }

    /// The definitions agree with the attribute names the store reads and writes, and every
    /// value is one the SDK knows (an unknown one would become an `Unknown` variant that
    /// DynamoDB rejects only at run time).
    #[test]
    fn definitions_match_the_item_layout_and_are_well_formed() {
        let d = definitions().unwrap();
        assert_eq!(hash_key(&d.events), EVENT_KEY);
        assert_eq!(hash_key(&d.entities), ENTITY_KEY);
        assert_eq!(hash_key(&d.quarantine), QUARANTINE_KEY);
        let [gsi] = d.events.global_secondary_indexes.as_slice() else {
            panic!("the events table has exactly one index");
        };
        assert_eq!(gsi.index_name, ANOMALY_INDEX);
        let keys: Vec<(&str, &str)> = gsi
            .key_schema
            .iter()
            .map(|k| (k.attribute_name.as_str(), k.key_type.as_str()))
            .collect();
        assert_eq!(keys, [(ANOMALY_ENTITY, "HASH"), (OCCURRED_AT, "RANGE")]);
        for def in [&d.events, &d.entities, &d.quarantine] {
            for a in &def.attribute_definitions {
                let known = ScalarAttributeType::values();
                assert!(known.contains(&a.attribute_type.as_str()), "{a:?}");
                attribute(a).unwrap();
            }
            let keyed: Vec<&str> = def
                .key_schema
                .iter()
                .chain(
                    def.global_secondary_indexes
                        .iter()
                        .flat_map(|i| &i.key_schema),
                )
                .map(|k| k.attribute_name.as_str())
                .collect();
            for k in &keyed {
                assert!(
                    def.attribute_definitions
                        .iter()
                        .any(|a| a.attribute_name == *k),
                    "key {k} has no attribute definition"
                );
            }
            for k in def.key_schema.iter() {
                assert!(KeyType::values().contains(&k.key_type.as_str()), "{k:?}");
            }
            for i in &def.global_secondary_indexes {
                index(i).unwrap();
                let p = i.projection.projection_type.as_str();
                assert!(ProjectionType::values().contains(&p), "{p}");
            }
        }
    }
}
