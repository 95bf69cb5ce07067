//! The event contract: `contract/event.v1.schema.json`, compiled once.
//!
//! The schema file is compiled into the binaries (so a Lambda cannot run with a contract other
//! than the one it was built and tested with) and validated with the `jsonschema` crate, which
//! compiles the schema to a fast validator and reports *every* violation with its path.

use serde_json::Value;

use crate::Error;
use crate::batch::Reason;

/// The contract file's text.
pub const EVENT_SCHEMA_V1: &str = include_str!("../../../contract/event.v1.schema.json");

/// The highest `schema_version` this build understands.
pub const SCHEMA_VERSION: u64 = 1;

/// A compiled contract.
pub struct Contract {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("schema_version", &SCHEMA_VERSION)
            .finish()
    }
}

impl Contract {
    /// Compiles the built-in v1 contract.
    pub fn v1() -> Result<Self, Error> {
        let schema: Value = serde_json::from_str(EVENT_SCHEMA_V1)
            .map_err(|e| Error::Config(format!("event schema is not JSON: {e}")))?;
        Self::from_schema(&schema)
    }

    /// Compiles a schema document.
    pub fn from_schema(schema: &Value) -> Result<Self, Error> {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| Error::Config(format!("event schema does not compile: {e}")))?;
        Ok(Contract { validator })
    }

    /// Checks a payload; returns every violation as a `schema` reason (empty when valid).
    pub fn check(&self, payload: &Value) -> Vec<Reason> {
        if self.validator.is_valid(payload) {
            return Vec::new();
        }
        self.validator
            .iter_errors(payload)
            .map(|e| {
                let path = e.instance_path().to_string();
                let path = if path.is_empty() {
                    "/".to_owned()
                } else {
                    path
                };
                Reason::at("schema", path, e.to_string())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_every_violation() {
        let c = Contract::v1().expect("contract compiles");
        let good = json!({"event_id":"a","event_type":"payment.authorized","source":"s","entity_id":"e",
            "occurred_at":"2026-11-01T00:00:00Z","value":1});
        assert!(c.check(&good).is_empty());
        let bad = json!({"event_id":"a b","event_type":"Payment","source":"s",
            "occurred_at":"yesterday","value":"1","extra":true});
        let reasons = c.check(&bad);
        let paths: Vec<_> = reasons.iter().filter_map(|r| r.path.clone()).collect();
        for p in ["/event_id", "/event_type", "/occurred_at", "/value"] {
            assert!(paths.iter().any(|x| x == p), "missing {p} in {paths:?}");
        }
        assert!(reasons.len() >= 6, "{reasons:?}");
    }
}
