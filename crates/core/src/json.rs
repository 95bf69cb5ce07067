//! JSON parsing that refuses what `serde_json::Value` silently accepts: an object with the
//! same key twice. The last one would win, so a producer (or an attacker) could override
//! `entity_id` or `currency` inside one event while the first value is what a reader of the
//! raw line sees. Ingest parses every line and record with [`parse`], one pass, no copy.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a text is not accepted.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON at all.
    Malformed(serde_json::Error),
    /// Valid JSON, but an object repeats a key.
    DuplicateKey(serde_json::Error),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::Malformed(e) | JsonError::DuplicateKey(e) => e.fmt(f),
        }
    }
}

/// Parses `bytes` as one JSON document, refusing duplicate keys in any object.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(v)) => Ok(v),
        // Tell the two apart by the one error this parser adds.
        Err(e) if e.is_data() => Err(JsonError::DuplicateKey(e)),
        Err(e) => Err(JsonError::Malformed(e)),
    }
}

/// A `Value` whose objects had no duplicate key.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Strict, D::Error> {
        Strict::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Strict(Value::Array(out)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            out.insert(key, v);
        }
        Ok(Strict(Value::Object(out)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_serde_json_parses() {
        for text in [
            r#"{"a":1,"b":[true,null,-2,3.5,"x"],"c":{"d":{}},"e":18446744073709551615}"#,
            "[]",
            "\"s\"",
            "1e308",
        ] {
            let ours = parse(text.as_bytes()).unwrap();
            assert_eq!(ours, serde_json::from_str::<Value>(text).unwrap(), "{text}");
        }
    }

    #[test]
    fn refuses_duplicate_keys_at_any_depth() {
        for text in [
            r#"{"entity_id":"a","entity_id":"b"}"#,
            r#"{"x":{"currency":"EUR","currency":"USD"}}"#,
            r#"[{"k":1},{"k":2,"k":3}]"#,
        ] {
            let err = parse(text.as_bytes()).unwrap_err();
            assert!(matches!(err, JsonError::DuplicateKey(_)), "{text}");
            assert!(err.to_string().contains("duplicate key"), "{err}");
        }
        assert!(matches!(
            parse(b"{oops").unwrap_err(),
            JsonError::Malformed(_)
        ));
        assert!(matches!(parse(b"").unwrap_err(), JsonError::Malformed(_)));
        // The same key in two different objects is fine.
        assert!(parse(br#"[{"k":1},{"k":2}]"#).is_ok());
    }
}
