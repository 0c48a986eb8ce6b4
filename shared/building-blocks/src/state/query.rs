//! The state query API (alpha): filter / sort / page over JSON values, evaluated in Tempest so
//! every store that can list its keys supports it the same way.

use serde::Deserialize;
use serde_json::Value;

use super::{StateEntry, StateError};

/// A Dapr state query.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Query {
    /// `{"EQ":{..}}`, `{"IN":{..}}`, `{"AND":[..]}`, `{"OR":[..]}`; absent matches everything.
    pub filter: Option<Value>,
    /// Sort keys, applied in order.
    pub sort: Vec<Sort>,
    /// Page size and continuation token.
    pub page: Page,
}

/// One sort key.
#[derive(Debug, Clone, Deserialize)]
pub struct Sort {
    /// Dotted path into the value.
    pub key: String,
    /// `ASC` (default) or `DESC`.
    #[serde(default)]
    pub order: Option<String>,
}

/// Paging.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Page {
    /// Maximum results; 0 means all.
    pub limit: usize,
    /// Opaque token from the previous page.
    pub token: Option<String>,
}

/// One query hit.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// Key without the store's prefix.
    pub key: String,
    /// The value.
    pub data: Value,
    /// Its ETag.
    pub etag: String,
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, part| v.get(part))
}

fn single_pair(obj: &Value, op: &str) -> Result<(String, Value), StateError> {
    match obj.as_object() {
        Some(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().expect("length checked");
            Ok((k.clone(), v.clone()))
        }
        _ => Err(StateError::InvalidRequest(format!(
            "{op} filter must be an object with exactly one field"
        ))),
    }
}

fn matches(filter: &Value, value: &Value) -> Result<bool, StateError> {
    let (op, arg) = single_pair(filter, "query")?;
    match op.as_str() {
        "EQ" => {
            let (path, want) = single_pair(&arg, "EQ")?;
            Ok(lookup(value, &path) == Some(&want))
        }
        "IN" => {
            let (path, want) = single_pair(&arg, "IN")?;
            let options = want.as_array().ok_or_else(|| {
                StateError::InvalidRequest("IN filter needs an array of values".into())
            })?;
            Ok(lookup(value, &path).is_some_and(|v| options.contains(v)))
        }
        "AND" | "OR" => {
            let parts = arg.as_array().filter(|a| a.len() >= 2).ok_or_else(|| {
                StateError::InvalidRequest(format!("{op} filter needs an array of 2+ filters"))
            })?;
            let mut results = parts.iter().map(|f| matches(f, value));
            if op == "AND" {
                results.try_fold(true, |acc, r| r.map(|m| acc && m))
            } else {
                results.try_fold(false, |acc, r| r.map(|m| acc || m))
            }
        }
        other => Err(StateError::InvalidRequest(format!(
            "unknown query filter operation {other:?} (expected EQ, IN, AND, OR)"
        ))),
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
        (None, None) => Ordering::Equal,
    }
}

/// Runs `query` over `entries` (keys already stripped of the store prefix).
/// Returns the page and the token for the next one, if any.
pub fn run(
    query: &Query,
    entries: Vec<(String, StateEntry)>,
) -> Result<(Vec<QueryResult>, Option<String>), StateError> {
    let mut hits = Vec::new();
    for (key, entry) in entries {
        // Values that are not JSON cannot match a JSON filter; skip them as Dapr's stores do.
        let Ok(data) = serde_json::from_slice::<Value>(&entry.value) else {
            continue;
        };
        if let Some(filter) = &query.filter
            && !matches(filter, &data)?
        {
            continue;
        }
        hits.push(QueryResult {
            key,
            data,
            etag: entry.etag,
        });
    }
    hits.sort_by(|a, b| {
        for s in &query.sort {
            let ord = compare(lookup(&a.data, &s.key), lookup(&b.data, &s.key));
            let ord = if s
                .order
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case("DESC"))
            {
                ord.reverse()
            } else {
                ord
            };
            if ord.is_ne() {
                return ord;
            }
        }
        a.key.cmp(&b.key)
    });
    let start: usize = match &query.page.token {
        Some(t) if !t.is_empty() => t
            .parse()
            .map_err(|_| StateError::InvalidRequest(format!("invalid page token {t:?}")))?,
        _ => 0,
    };
    let total = hits.len();
    let mut page: Vec<QueryResult> = hits.into_iter().skip(start).collect();
    let mut token = None;
    if query.page.limit > 0 && page.len() > query.page.limit {
        page.truncate(query.page.limit);
        token = Some((start + query.page.limit).to_string());
    } else if query.page.limit > 0 && start + page.len() < total {
        token = Some((start + page.len()).to_string());
    }
    Ok((page, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(v: &str) -> StateEntry {
        StateEntry {
            value: Bytes::from(v.to_owned()),
            etag: "1".into(),
            expires_at: None,
        }
    }

    #[test]
    fn filters_sorts_and_pages() {
        let entries = vec![
            ("a".into(), entry(r#"{"state":"CA","person":{"id":3}}"#)),
            ("b".into(), entry(r#"{"state":"WA","person":{"id":1}}"#)),
            ("c".into(), entry(r#"{"state":"CA","person":{"id":2}}"#)),
            ("d".into(), entry("not json")),
        ];
        let q: Query = serde_json::from_value(serde_json::json!({
            "filter": {"OR": [{"EQ": {"state": "CA"}}, {"IN": {"person.id": [1]}}]},
            "sort": [{"key": "person.id", "order": "DESC"}],
            "page": {"limit": 2}
        }))
        .expect("query");
        let (page, token) = run(&q, entries.clone()).expect("run");
        let keys: Vec<_> = page.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "c"]);
        assert_eq!(token.as_deref(), Some("2"));
        let mut q2 = q.clone();
        q2.page.token = token;
        let (page, token) = run(&q2, entries).expect("run");
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].key, "b");
        assert_eq!(token, None);
    }

    #[test]
    fn rejects_unknown_operations() {
        let q: Query =
            serde_json::from_value(serde_json::json!({"filter": {"LIKE": {"a": 1}}})).expect("q");
        assert!(run(&q, vec![("a".into(), entry("{}"))]).is_err());
    }
}
