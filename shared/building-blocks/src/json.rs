//! JSON request decoding with Go's leniency: Dapr's runtime decodes request bodies with
//! `encoding/json`, which matches field names case-insensitively (the JS SDK sends `entryID`
//! where the docs say `entryId`), so requests are folded onto canonical names before serde sees them.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Renames keys of `obj` that equal one of `fields` ignoring ASCII case to that canonical spelling.
pub fn fold_keys(obj: &mut serde_json::Map<String, Value>, fields: &[&str]) {
    let renames: Vec<(String, &str)> = obj
        .keys()
        .filter_map(|k| {
            fields
                .iter()
                .find(|f| f.eq_ignore_ascii_case(k) && **f != k.as_str())
                .map(|f| (k.clone(), *f))
        })
        .collect();
    for (from, to) in renames {
        if let Some(v) = obj.remove(&from) {
            obj.entry(to.to_owned()).or_insert(v);
        }
    }
}

/// Folds the keys of `value` if it is an object.
pub fn fold_value(value: &mut Value, fields: &[&str]) {
    if let Value::Object(obj) = value {
        fold_keys(obj, fields);
    }
}

/// Deserialises an already-folded value, describing the failure the way a client can fix it.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Parses bytes as JSON, describing the failure.
pub fn parse(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("failed to parse JSON body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_insensitively_without_touching_user_data() {
        let mut v = serde_json::json!({"entryID": "1", "EVENT": {"entryID": 2}, "other": 3});
        fold_value(&mut v, &["entryId", "event"]);
        assert_eq!(
            v,
            serde_json::json!({"entryId": "1", "event": {"entryID": 2}, "other": 3})
        );
    }
}
