//! Schemas from the AWS Glue Schema Registry at run time.
//!
//! A Kafka value in Glue's wire format names its schema version by id. With a registry file
//! those ids must be listed in it; with [`GlueRegistry`] they are fetched on first sight
//! (Glue's `GetSchemaVersion`, behind [`GlueSchemas`]) and kept for the life of the process,
//! as Glue's own serde library does. Decoding stays synchronous and local: before a batch
//! is decoded, [`GlueRegistry::for_input`] fetches the versions its records name that the
//! process has not seen, then hands out a [`Registry`] that holds them.
//!
//! What a fetch can end in, and what happens to the batch:
//! - the version exists: its definition (Avro or JSON Schema) decodes the records, and the
//!   registry file's `glue_schemas` entry for its schema name maps them to the contract;
//! - Glue does not have it (or its definition cannot be used): the records that name it are
//!   quarantined alone as `unknown_schema`, with the reason, and the id is not asked again;
//! - Glue did not answer (throttling, a network error, a 5xx): the whole batch fails with the
//!   retryable `Pipeline.Retryable.SchemaUnavailable`, nothing is remembered, and the
//!   redelivered batch asks again; Glue refusing (access denied) fails it with the fatal
//!   `Pipeline.Fatal.ServiceRejected`.
//!
//! Glue keeps a Protobuf schema as `.proto` text; compiling that at run time is not done here,
//! so a Protobuf schema's `glue_schemas` entry carries its descriptor set, as a registry-file
//! entry does.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::{Body, Entry, Mapping, MessageDescriptor, Registry, Schema, WireFormat};
use pipeline_core::Error;

/// A schema version as Glue's `GetSchemaVersion` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueSchemaVersion {
    /// The schema's name (the last part of its ARN).
    pub schema_name: String,
    /// `AVRO`, `JSON` or `PROTOBUF`.
    pub data_format: String,
    /// The schema definition: Avro JSON, a JSON Schema, or `.proto` text.
    pub definition: String,
}

/// What asking Glue for a schema version found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The version exists.
    Found(GlueSchemaVersion),
    /// Glue has no version with that id (`EntityNotFoundException`).
    NotFound,
}

/// Why a fetch did not say whether the version exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The service did not answer (throttling, a network error, a 5xx): a retry may succeed.
    Unavailable(String),
    /// The service refused for a reason a retry will not fix (access denied): a deployment
    /// problem, every batch would fail the same way.
    Rejected(String),
}

/// Where schema versions come from: the Glue API in the functions, a map in tests.
#[async_trait::async_trait]
pub trait GlueSchemas: Send + Sync {
    /// Fetches one version by id.
    async fn get_schema_version(&self, version_id: &str) -> Result<Fetched, FetchError>;
}

/// How the versions of one Glue schema map to the contract: the registry file's
/// `glue_schemas` entry for its name.
#[derive(Debug, Clone)]
pub(super) struct GlueTemplate {
    pub(super) mapping: Option<Mapping>,
    /// Protobuf only: the message to decode with (Glue keeps `.proto` text).
    pub(super) protobuf: Option<MessageDescriptor>,
}

/// A [`Registry`] (from the registry file, possibly empty) that also reads Glue schema
/// versions fetched at run time. See the module doc.
pub struct GlueRegistry {
    source: Arc<dyn GlueSchemas>,
    current: RwLock<Arc<Registry>>,
    fetches: AtomicUsize,
}

impl std::fmt::Debug for GlueRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlueRegistry")
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

impl GlueRegistry {
    /// Starts from the registry file's schemas and templates; nothing is fetched yet.
    pub fn new(file: Registry, source: Arc<dyn GlueSchemas>) -> Self {
        GlueRegistry {
            source,
            current: RwLock::new(Arc::new(file)),
            fetches: AtomicUsize::new(0),
        }
    }

    /// How many versions have been fetched (found or not) in this process.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The registry to decode `input` (an MSK event) with: every Glue schema version its
    /// records' values and keys name that this process has not seen is fetched first.
    /// `Err(SchemaUnavailable)` when Glue did not answer for one of them.
    pub async fn for_input(&self, input: &Value) -> Result<Arc<Registry>, Error> {
        let snapshot = self.snapshot();
        let wanted: Vec<String> = glue_version_ids(input)
            .into_iter()
            .filter(|id| !snapshot.glue.contains_key(id) && !snapshot.glue_missing.contains_key(id))
            .collect();
        if wanted.is_empty() {
            return Ok(snapshot);
        }
        let mut found = Vec::with_capacity(wanted.len());
        for id in wanted {
            self.fetches.fetch_add(1, Ordering::Relaxed);
            let fetched = self
                .source
                .get_schema_version(&id)
                .await
                .map_err(|e| match e {
                    FetchError::Unavailable(detail) => Error::SchemaUnavailable {
                        version_id: id.clone(),
                        detail,
                    },
                    FetchError::Rejected(message) => Error::ServiceRejected {
                        service: "glue",
                        message: format!("GetSchemaVersion {id}: {message}"),
                        source: None,
                    },
                })?;
            found.push((id, fetched));
        }
        let mut next = Registry::clone(&snapshot);
        for (id, fetched) in found {
            match fetched {
                Fetched::Found(v) => match next.glue_entry(&v) {
                    Ok(entry) => {
                        next.glue.insert(id, Arc::new(entry));
                    }
                    Err(why) => {
                        next.glue_missing.insert(id, why);
                    }
                },
                Fetched::NotFound => {
                    next.glue_missing
                        .insert(id, "Glue has no schema version with this id".into());
                }
            }
        }
        let next = Arc::new(next);
        if let Ok(mut current) = self.current.write() {
            *current = next.clone();
        }
        Ok(next)
    }

    fn snapshot(&self) -> Arc<Registry> {
        match self.current.read() {
            Ok(r) => r.clone(),
            // A writer panicked mid-swap: the last registry it left is still whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Registry {
    /// The entry that decodes versions like `v`, or why there is none.
    fn glue_entry(&self, v: &GlueSchemaVersion) -> Result<Entry, String> {
        let template = self.glue_names.get(&v.schema_name);
        let body = match v.data_format.as_str() {
            "AVRO" => Body::Avro(Box::new(Schema::parse_str(&v.definition).map_err(|e| {
                format!(
                    "Glue schema {}: not a valid Avro schema: {e}",
                    v.schema_name
                )
            })?)),
            "JSON" => Body::Json,
            "PROTOBUF" => {
                Body::Protobuf(template.and_then(|t| t.protobuf.clone()).ok_or_else(|| {
                    format!(
                        "Glue schema {} is Protobuf: its glue_schemas entry in the registry \
                             file needs \"descriptor_set\" and \"message\"",
                        v.schema_name
                    )
                })?)
            }
            other => {
                return Err(format!(
                    "Glue schema {}: data format {other:?} is not AVRO, JSON or PROTOBUF",
                    v.schema_name
                ));
            }
        };
        Ok(Entry {
            name: v.schema_name.clone(),
            body,
            mapping: template.and_then(|t| t.mapping.clone()),
        })
    }
}

/// The Glue schema version ids that the values and keys of an MSK event's records name.
pub fn glue_version_ids(input: &Value) -> BTreeSet<String> {
    use base64::Engine;
    let records = input.get("records").and_then(Value::as_object);
    let mut out = BTreeSet::new();
    for record in records.into_iter().flat_map(|m| m.values()) {
        for r in record.as_array().into_iter().flatten() {
            for field in ["value", "key"] {
                let Some(text) = r.get(field).and_then(Value::as_str) else {
                    continue;
                };
                // Only the header is needed: 18 bytes are 24 base64 characters.
                let head = &text[..text.len().min(24)];
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(head) else {
                    continue;
                };
                if let (WireFormat::Glue { version_id, .. }, _) = Registry::wire_format(&bytes) {
                    out.insert(version_id);
                }
            }
        }
    }
    out
}

/// A fixed set of versions, for tests and for trying a registry without Glue.
#[derive(Debug, Default)]
pub struct StaticGlueSchemas {
    /// The versions by id.
    pub versions: HashMap<String, GlueSchemaVersion>,
    /// Ids that fail as if Glue did not answer.
    pub unavailable: BTreeSet<String>,
}

#[async_trait::async_trait]
impl GlueSchemas for StaticGlueSchemas {
    async fn get_schema_version(&self, version_id: &str) -> Result<Fetched, FetchError> {
        if self.unavailable.contains(version_id) {
            return Err(FetchError::Unavailable(
                "ThrottlingException: rate exceeded".into(),
            ));
        }
        Ok(self
            .versions
            .get(version_id)
            .cloned()
            .map_or(Fetched::NotFound, Fetched::Found))
    }
}
