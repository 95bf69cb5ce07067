//! How a decoded schema-registry value becomes a contract event: each contract field read from
//! a field of the record (or of its key), timestamps converted from their unit, and the rest
//! kept as attributes.

use super::*;

/// How one contract field is taken from a decoded record.
#[derive(Debug, Clone)]
enum Source {
    Pointer(String),
    /// A JSON Pointer into the record's key (`""`: the whole key).
    Key(String),
    Const(Value),
    Time {
        pointer: String,
        unit: TimeUnit,
    },
}

#[derive(Debug, Clone, Copy)]
enum TimeUnit {
    Millis,
    Seconds,
}

/// A record → contract event mapping.
#[derive(Debug, Clone)]
pub(super) struct Mapping {
    fields: Vec<(String, Source)>,
}

impl Mapping {
    pub(super) fn parse(schema: &str, m: Map<String, Value>) -> Result<Self, Error> {
        let bad = |field: &str, what: &str| {
            Error::Config(format!("schema {schema}: mapping of {field}: {what}"))
        };
        let mut fields = Vec::new();
        for (field, spec) in m {
            let source = match &spec {
                Value::String(p) if p.is_empty() || p.starts_with('/') => {
                    Source::Pointer(p.clone())
                }
                Value::Object(o) if o.len() == 1 && o.contains_key("const") => {
                    Source::Const(o.get("const").cloned().unwrap_or(Value::Null))
                }
                Value::Object(o) if o.len() == 1 && o.contains_key("key") => {
                    match o.get("key").and_then(Value::as_str) {
                        Some(p) if p.is_empty() || p.starts_with('/') => Source::Key(p.to_owned()),
                        _ => {
                            return Err(bad(
                                &field,
                                "\"key\" takes a JSON Pointer (\"\" for the whole key)",
                            ));
                        }
                    }
                }
                Value::Object(o) => {
                    let pointer = o
                        .get("pointer")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad(&field, "expected \"pointer\""))?
                        .to_owned();
                    match o.get("time").and_then(Value::as_str) {
                        Some("epoch_millis") => Source::Time {
                            pointer,
                            unit: TimeUnit::Millis,
                        },
                        Some("epoch_seconds") => Source::Time {
                            pointer,
                            unit: TimeUnit::Seconds,
                        },
                        None => Source::Pointer(pointer),
                        Some(other) => {
                            return Err(bad(
                                &field,
                                &format!("time {other:?} is not epoch_millis or epoch_seconds"),
                            ));
                        }
                    }
                }
                _ => {
                    return Err(bad(
                        &field,
                        "expected a JSON Pointer, {\"const\": v}, {\"key\": p} or {\"pointer\": p, \"time\": unit}",
                    ));
                }
            };
            fields.push((field, source));
        }
        Ok(Mapping { fields })
    }

    /// Whether a field is taken from the record's key.
    pub(super) fn uses_key(&self) -> bool {
        self.fields.iter().any(|(_, s)| matches!(s, Source::Key(_)))
    }

    /// The contract event for `record` (and its decoded `key`, when the mapping uses it):
    /// every mapped field, then the record's other top-level fields as `attributes` (scalars
    /// as they are, anything else as its JSON text).
    pub(super) fn apply(
        &self,
        schema: &str,
        record: &Value,
        key: Option<&Value>,
    ) -> Result<Value, Reason> {
        let mut event = Map::new();
        let mut used: Vec<&str> = Vec::new();
        // Every field that cannot be mapped, so the reason names them all.
        let mut missing: Vec<String> = Vec::new();
        for (field, source) in &self.fields {
            let value = match source {
                Source::Const(v) => v.clone(),
                Source::Key(p) => match key.and_then(|k| k.pointer(p)).filter(|v| !v.is_null()) {
                    Some(v) => v.clone(),
                    None => {
                        missing.push(format!("{field} (from the key at {p:?}: absent)"));
                        continue;
                    }
                },
                Source::Pointer(p) | Source::Time { pointer: p, .. } => {
                    if let Some(top) = p.strip_prefix('/').and_then(|r| r.split('/').next()) {
                        used.push(top);
                    }
                    let Some(found) = record.pointer(p).filter(|v| !v.is_null()) else {
                        missing.push(format!("{field} (from {p}: absent)"));
                        continue;
                    };
                    match source {
                        Source::Time { unit, .. } => match time_of(found, *unit) {
                            Some(t) => t,
                            None => {
                                missing.push(format!(
                                    "{field} (from {p}: {found} is not an epoch time)"
                                ));
                                continue;
                            }
                        },
                        _ => found.clone(),
                    }
                }
            };
            event.insert(field.clone(), value);
        }
        if !missing.is_empty() {
            return Err(Reason::new(
                "unmapped_field",
                format!(
                    "schema {schema}: the record does not give {}",
                    missing.join(", ")
                ),
            ));
        }
        if !event.contains_key("attributes")
            && let Value::Object(fields) = record
        {
            let attributes: Map<String, Value> = fields
                .iter()
                .filter(|(k, v)| !used.contains(&k.as_str()) && !v.is_null())
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(_) | Value::Number(_) | Value::Bool(_) => v.clone(),
                        other => Value::String(other.to_string()),
                    };
                    (k.clone(), v)
                })
                .collect();
            if !attributes.is_empty() {
                event.insert("attributes".into(), Value::Object(attributes));
            }
        }
        Ok(Value::Object(event))
    }
}

fn time_of(v: &Value, unit: TimeUnit) -> Option<Value> {
    // Protobuf's JSON form may carry 64-bit integers as strings.
    let n = v
        .as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))?;
    let t = match unit {
        TimeUnit::Millis => DateTime::from_timestamp_millis(n)?,
        TimeUnit::Seconds => DateTime::from_timestamp(n, 0)?,
    };
    Some(Value::String(
        t.to_rfc3339_opts(SecondsFormat::Millis, true),
    ))
}
