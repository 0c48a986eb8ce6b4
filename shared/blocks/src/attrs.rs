//! Attribute lists as compact, lossless JSON for the generic attribute columns:
//! `[["key", value], …]` in their original order, where a string is a JSON string, an int a JSON
//! integer, a double a JSON number with a fraction or exponent, a bool a JSON bool, an array a
//! JSON array, bytes `{"$b": base64}`, a nested list `{"$kv": [...]}` and non-finite doubles
//! `{"$f": "NaN" | "inf" | "-inf"}`. DuckDB and pandas read it with their JSON functions.

use base64::Engine as _;
use serde_json::Value;
use tempest_traces::{AnyValue, KeyValue};

/// Whether `b` must be escaped inside a JSON string.
const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    // Most strings need no escaping: a scan without early exit (which the compiler vectorizes)
    // tells, and the string is copied at once.
    if s.bytes().fold(false, |any, b| any | needs_escape(b)) {
        push_escaped(out, s);
    } else {
        out.push_str(s);
    }
    out.push('"');
}

/// Appends `s` with the bytes JSON does not allow in a string escaped.
fn push_escaped(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    // Copy runs of plain bytes at once.
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.push_str(&s[plain..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
}

/// Appends an integer, as `Display` writes it but without the formatting machinery (this runs
/// for integer attributes and event times of every span).
pub fn push_int(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends one value. Written by hand rather than through `serde_json::Value`: this runs for
/// every attribute of every ingested span.
fn push_value(out: &mut String, v: &AnyValue) {
    use std::fmt::Write as _;
    match v {
        AnyValue::Str(s) => push_json_str(out, s),
        AnyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AnyValue::Int(i) => push_int(out, *i),
        AnyValue::Double(d) if d.is_finite() => {
            // serde_json writes integral floats with ".0", which keeps them apart from ints.
            match serde_json::Number::from_f64(*d) {
                Some(n) => {
                    let _ = write!(out, "{n}");
                }
                None => out.push_str("null"),
            }
        }
        AnyValue::Double(d) => {
            out.push_str(if d.is_nan() {
                r#"{"$f":"NaN"}"#
            } else if *d > 0.0 {
                r#"{"$f":"inf"}"#
            } else {
                r#"{"$f":"-inf"}"#
            });
        }
        AnyValue::Bytes(b) => {
            out.push_str(r#"{"$b":""#);
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push_str("\"}");
        }
        AnyValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_value(out, item);
            }
            out.push(']');
        }
        AnyValue::KvList(kvs) => {
            out.push_str(r#"{"$kv":"#);
            push_list(out, kvs);
            out.push('}');
        }
    }
}

/// Appends an attribute list as a JSON array, `[]` when empty.
pub fn push_list<'a>(out: &mut String, kvs: impl IntoIterator<Item = &'a KeyValue>) {
    out.push('[');
    for (i, kv) in kvs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        push_json_str(out, &kv.key);
        out.push(',');
        push_value(out, &kv.value);
        out.push(']');
    }
    out.push(']');
}

/// Encodes an attribute list; an empty list is the empty string (nothing stored).
pub fn encode(kvs: &[KeyValue]) -> String {
    if kvs.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(kvs.len() * 24);
    push_list(&mut out, kvs);
    out
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

/// Decodes an attribute list already parsed as JSON (`[["key", value], …]`).
pub fn decode_list(v: &Value) -> Result<Vec<KeyValue>, String> {
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
        // What is written is plain JSON any reader parses, escapes included.
        let tricky = vec![KeyValue::str("q\"uote", "line\nbreak\t\u{1}\\")];
        let text = encode(&tricky);
        assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
        assert_eq!(decode(&text).expect("decode"), tricky);
        assert_eq!(encode(&[]), "");
        assert!(decode("[[1,2]]").is_err());
    }
}
