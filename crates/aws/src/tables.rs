//! The three tables: their names ([`Tables`]) and their definitions, created on demand by
//! [`crate::DynamoStore::create_tables`] (tests, the emulator, a first deployment by hand; the
//! deployment template declares the same schema).
//!
//! All three are on-demand (`PAY_PER_REQUEST`) with a single string partition key. The events
//! table carries the sparse global secondary index `anomalies-by-entity`
//! (`anomaly_entity` → `occurred_at`, all attributes projected), which holds only anomalous
//! records, so listing an entity's anomalies newest first is one `Query`.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use tracing::info;

use crate::error::Error;
use crate::item::{
    ANOMALY_ENTITY, ANOMALY_INDEX, ENTITY_KEY, EVENT_KEY, OCCURRED_AT, QUARANTINE_KEY,
};
pub use pipeline_core::store::Tables;

/// How long [`create`] waits for a new table to become ACTIVE.
const ACTIVE_WAIT: Duration = Duration::from_secs(120);

fn build<T>(
    what: &'static str,
    r: Result<T, aws_sdk_dynamodb::error::BuildError>,
) -> Result<T, Error> {
    r.map_err(|source| Error::Build { what, source })
}

fn string_attr(name: &str) -> Result<AttributeDefinition, Error> {
    build(
        "attribute definition",
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build(),
    )
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, Error> {
    build(
        "key schema element",
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build(),
    )
}

/// Creates each missing table and waits until all are ACTIVE. A table that already exists is
/// left as it is (its schema is not checked).
pub(crate) async fn create(client: &Client, tables: &Tables) -> Result<(), Error> {
    for (table, key_attr) in [
        (&tables.events, EVENT_KEY),
        (&tables.entities, ENTITY_KEY),
        (&tables.quarantine, QUARANTINE_KEY),
    ] {
        let mut req = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attr(key_attr)?)
            .key_schema(key(key_attr, KeyType::Hash)?);
        if table == &tables.events {
            let index = GlobalSecondaryIndex::builder()
                .index_name(ANOMALY_INDEX)
                .key_schema(key(ANOMALY_ENTITY, KeyType::Hash)?)
                .key_schema(key(OCCURRED_AT, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                );
            req = req
                .attribute_definitions(string_attr(ANOMALY_ENTITY)?)
                .attribute_definitions(string_attr(OCCURRED_AT)?)
                .global_secondary_indexes(build("global secondary index", index.build())?);
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
mod tests {
    use super::*;

    #[test]
    fn prefixed_names() {
        let t = Tables::with_prefix("x");
        assert_eq!(t.events, "x-events");
        assert_eq!(t.entities, "x-entities");
        assert_eq!(t.quarantine, "x-quarantine");
        assert_eq!(Tables::default().events, "pipeline-events");
    }
}
