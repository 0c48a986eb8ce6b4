//! Attribute lists as compact, lossless JSON for the generic attribute columns:
//! `[["key", value], …]` in their original order, where a string is a JSON string, an int a JSON
//! integer, a double a JSON number with a fraction or exponent, a bool a JSON bool, an array a
//! JSON array, bytes `{"$b": base64}`, a nested list `{"$kv": [...]}` and non-finite doubles
//! `{"$f": "NaN" | "inf" | "-inf"}`. DuckDB and pandas read it with their JSON functions.

use base64::Engine as _;
use serde_json::{Value, json};
use tempest_traces::{AnyValue, KeyValue};

fn encode_value(v: &AnyValue) -> Value {
    match v {
        AnyValue::Str(s) => Value::String(s.clone()),
        AnyValue::Bool(b) => Value::Bool(*b),
        AnyValue::Int(i) => json!(i),
        AnyValue::Double(d) if d.is_finite() => {
            // serde_json writes integral floats with ".0", which keeps them apart from ints.
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        AnyValue::Double(d) => {
            json!({"$f": if d.is_nan() { "NaN" } else if *d > 0.0 { "inf" } else { "-inf" }})
        }
        AnyValue::Bytes(b) => json!({"$b": base64::engine::general_purpose::STANDARD.encode(b)}),
        AnyValue::Array(items) => Value::Array(items.iter().map(encode_value).collect()),
        AnyValue::KvList(kvs) => json!({"$kv": encode_list(kvs)}),
    }
}

fn encode_list(kvs: &[KeyValue]) -> Value {
    Value::Array(
        kvs.iter()
            .map(|kv| json!([kv.key, encode_value(&kv.value)]))
            .collect(),
    )
}

/// Encodes an attribute list; an empty list is the empty string (nothing stored).
pub fn encode(kvs: &[KeyValue]) -> String {
    if kvs.is_empty() {
        return String::new();
    }
    encode_list(kvs).to_string()
}

fn decode_value(v: &Value) -> Result<AnyValue, String> {
    Ok(match v {
        Value::String(s) => AnyValue::Str(s.clone()),
        Value::Bool(b) => AnyValue::Bool(*b),
        Value::Number(n) if n.is_i64() => AnyValue::Int(n.as_i64().unwrap_or_default()),
        Value::Number(n) => AnyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
        Value::Array(items) => {
            AnyValue::Array(items.iter().map(decode_value).collect::<Result<_, _>>()?)
        }
        Value::Object(o) => {
            if let Some(b) = o.get("$b").and_then(Value::as_str) {
                AnyValue::Bytes(
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|e| e.to_string())?,
                )
            } else if let Some(list) = o.get("$kv") {
                AnyValue::KvList(decode_list(list)?)
            } else if let Some(f) = o.get("$f").and_then(Value::as_str) {
                AnyValue::Double(match f {
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    _ => f64::NAN,
                })
            } else {
                return Err(format!("unknown attribute object {v}"));
            }
        }
        Value::Null => return Err("null attribute value".into()),
    })
}

fn decode_list(v: &Value) -> Result<Vec<KeyValue>, String> {
    let items = v.as_array().ok_or("attribute list is not an array")?;
    items
        .iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(k), value]) => Ok(KeyValue {
                key: k.clone(),
                value: decode_value(value)?,
            }),
            _ => Err(format!("attribute entry {pair} is not [key, value]")),
        })
        .collect()
}

/// Decodes what `encode` wrote.
pub fn decode(text: &str) -> Result<Vec<KeyValue>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    decode_list(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_value_type() {
        let kvs = vec![
            KeyValue::str("s", "x"),
            KeyValue {
                key: "i".into(),
                value: AnyValue::Int(-7),
            },
            KeyValue {
                key: "d".into(),
                value: AnyValue::Double(3.0),
            },
            KeyValue {
                key: "big".into(),
                value: AnyValue::Double(1e300),
            },
            KeyValue {
                key: "inf".into(),
                value: AnyValue::Double(f64::NEG_INFINITY),
            },
            KeyValue {
                key: "b".into(),
                value: AnyValue::Bool(true),
            },
            KeyValue {
                key: "bytes".into(),
                value: AnyValue::Bytes(vec![0, 255]),
            },
            KeyValue {
                key: "arr".into(),
                value: AnyValue::Array(vec![AnyValue::Int(1), AnyValue::Str("two".into())]),
            },
            KeyValue {
                key: "kv".into(),
                value: AnyValue::KvList(vec![KeyValue::str("n", "v")]),
            },
            KeyValue::str("s", "duplicate keys keep their order"),
        ];
        assert_eq!(decode(&encode(&kvs)).expect("decode"), kvs);
        assert_eq!(encode(&[]), "");
        assert!(decode("[[1,2]]").is_err());
    }
}
