//! `/v1.0/state/...`: save, get, delete, bulk get, transaction and the alpha query API.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{query_param, read_body, request_metadata};
use crate::runtime::StateComponent;
use crate::state::{
    Concurrency, DeleteRequest, SetRequest, StateEntry, StateError, TransactionOp, parse_ttl,
};
use crate::{ApiError, Runtime};

type Rt = State<Arc<Runtime>>;

/// The operation an error belongs to, which picks Dapr's error code.
#[derive(Clone, Copy)]
enum Op {
    Save,
    Get,
    Delete,
    Transaction,
    Query,
}

impl Op {
    fn code(self) -> &'static str {
        match self {
            Op::Save => "ERR_STATE_SAVE",
            Op::Get => "ERR_STATE_GET",
            Op::Delete => "ERR_STATE_DELETE",
            Op::Transaction => "ERR_STATE_TRANSACTION",
            Op::Query => "ERR_STATE_QUERY",
        }
    }

    /// Dapr's message for a failure of this operation on `store`.
    fn message(self, store: &str, e: &StateError) -> String {
        match self {
            Op::Save => format!("failed saving state in state store {store}: {e}"),
            Op::Get => format!("fail to get state from state store {store}: {e}"),
            Op::Delete => format!("failed deleting state in state store {store}: {e}"),
            Op::Transaction => format!("error while executing state transaction: {e}"),
            Op::Query => format!("failed query in state store {store}: {e}"),
        }
    }
}

fn state_error(op: Op, store: &str, e: StateError) -> ApiError {
    let message = op.message(store, &e);
    match e {
        StateError::NotSupported(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_STATE_STORE_NOT_SUPPORTED",
            message,
        ),
        // Dapr answers 500 for any failed transaction, ETag mismatches included.
        _ if matches!(op, Op::Transaction) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, op.code(), message)
        }
        StateError::EtagMismatch(_) => ApiError::new(StatusCode::CONFLICT, op.code(), message),
        StateError::EtagInvalid(_) | StateError::InvalidRequest(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, op.code(), message)
        }
        StateError::Backend(_) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, op.code(), message)
        }
    }
}

fn component<'a>(rt: &'a Runtime, name: &str) -> Result<&'a StateComponent, ApiError> {
    if rt.state.is_empty() {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_STATE_STORE_NOT_CONFIGURED",
            "state store is not configured",
        ));
    }
    rt.state.get(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ERR_STATE_STORE_NOT_FOUND",
            format!("state store {name} is not found"),
        )
        .with_reason("DAPR_STATE_NOT_FOUND")
    })
}

fn full_key(
    rt: &Runtime,
    store: &str,
    comp: &StateComponent,
    key: &str,
) -> Result<String, ApiError> {
    if key.contains("||") {
        return Err(
            ApiError::malformed(format!("input key/keyPrefix '{key}' can't contain '||'"))
                .with_reason("DAPR_STATE_ILLEGAL_KEY"),
        );
    }
    if key.is_empty() {
        return Err(ApiError::malformed("\"key\" is a required field"));
    }
    Ok(format!(
        "{}{key}",
        comp.key_prefix.prefix(&rt.app_id, store)
    ))
}

fn parse_concurrency(value: Option<&str>) -> Result<Concurrency, ApiError> {
    match value.unwrap_or("") {
        "" | "last-write" => Ok(Concurrency::LastWrite),
        "first-write" => Ok(Concurrency::FirstWrite),
        other => Err(ApiError::malformed(format!(
            "invalid concurrency {other:?} (expected first-write or last-write)"
        ))),
    }
}

/// One save / upsert item as Dapr's runtime decodes it (Go matches field names case-insensitively).
struct SaveItem {
    key: String,
    value: Bytes,
    etag: Option<String>,
    metadata: BTreeMap<String, String>,
    concurrency: Concurrency,
}

type RawObject = BTreeMap<String, Box<RawValue>>;

fn take_field(obj: &mut RawObject, name: &str) -> Option<Box<RawValue>> {
    let key = obj.keys().find(|k| k.eq_ignore_ascii_case(name))?.clone();
    obj.remove(&key)
}

fn field_as<T: serde::de::DeserializeOwned>(
    obj: &mut RawObject,
    name: &str,
) -> Result<Option<T>, ApiError> {
    match take_field(obj, name) {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|e| ApiError::malformed(format!("invalid field {name:?}: {e}"))),
    }
}

fn etag_value(v: Option<Value>) -> Result<Option<String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(ApiError::malformed(format!(
            "invalid etag {other}: must be a string"
        ))),
    }
}

fn parse_item(
    mut obj: RawObject,
    query_md: &BTreeMap<String, String>,
) -> Result<SaveItem, ApiError> {
    let key: String = field_as(&mut obj, "key")?
        .ok_or_else(|| ApiError::malformed("\"key\" is a required field"))?;
    let value = take_field(&mut obj, "value").map_or_else(
        || Bytes::from_static(b"null"),
        |raw| Bytes::copy_from_slice(raw.get().as_bytes()),
    );
    let etag = etag_value(field_as(&mut obj, "etag")?)?;
    let mut metadata: BTreeMap<String, String> =
        field_as(&mut obj, "metadata")?.unwrap_or_default();
    metadata.extend(query_md.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut options: RawObject = field_as(&mut obj, "options")?.unwrap_or_default();
    let concurrency: Option<String> = field_as(&mut options, "concurrency")?;
    let _consistency: Option<String> = field_as(&mut options, "consistency")?;
    Ok(SaveItem {
        key,
        value,
        etag,
        metadata,
        concurrency: parse_concurrency(concurrency.as_deref())?,
    })
}

fn into_set(
    rt: &Runtime,
    store: &str,
    comp: &StateComponent,
    item: SaveItem,
) -> Result<SetRequest, ApiError> {
    let ttl_seconds = parse_ttl(item.metadata.get("ttlInSeconds").map(String::as_str))
        .map_err(|e| state_error(Op::Save, store, e))?;
    Ok(SetRequest {
        key: full_key(rt, store, comp, &item.key)?,
        value: item.value,
        etag: item.etag,
        concurrency: item.concurrency,
        ttl_seconds,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::malformed(format!("failed to parse JSON body: {e}")))
}

/// `POST|PUT /v1.0/state/{store}`.
pub(super) async fn save(
    State(rt): Rt,
    Path(store): Path<String>,
    uri: Uri,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let comp = component(&rt, &store)?;
    let body = read_body(&rt, body).await?;
    let items: Vec<RawObject> = parse_json(&body)?;
    let query_md = request_metadata(&uri);
    // Validate every item before writing any, so a bad item cannot leave a half-applied batch.
    let reqs = items
        .into_iter()
        .map(|obj| parse_item(obj, &query_md).and_then(|item| into_set(&rt, &store, comp, item)))
        .collect::<Result<Vec<_>, _>>()?;
    for req in reqs {
        comp.store
            .set(req)
            .await
            .map_err(|e| state_error(Op::Save, &store, e))?;
    }
    Ok(StatusCode::NO_CONTENT)
}

fn entry_response(entry: StateEntry) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(etag) = HeaderValue::from_str(&entry.etag) {
        headers.insert("etag", etag);
    }
    if let Some(at) = entry.expires_at
        && let Ok(v) = HeaderValue::from_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    {
        headers.insert("metadata.ttlexpiretime", v);
    }
    (StatusCode::OK, headers, entry.value).into_response()
}

async fn get_key(rt: &Runtime, store: &str, key: &str) -> Result<Response, ApiError> {
    let comp = component(rt, store)?;
    let full = full_key(rt, store, comp, key)?;
    match comp
        .store
        .get(&full)
        .await
        .map_err(|e| state_error(Op::Get, store, e))?
    {
        Some(entry) => Ok(entry_response(entry)),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `GET /v1.0/state/{store}/{key}`.
pub(super) async fn get(
    State(rt): Rt,
    Path((store, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    get_key(&rt, &store, &key).await
}

/// `GET /v1.0/state/{store}/bulk|transaction`: a plain get of a key with that name.
pub(super) async fn get_literal(
    State(rt): Rt,
    Path(store): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
    get_key(&rt, &store, &key).await
}

async fn delete_key(
    rt: &Runtime,
    store: &str,
    key: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<StatusCode, ApiError> {
    let comp = component(rt, store)?;
    let full = full_key(rt, store, comp, key)?;
    // A present-but-empty If-Match still counts as an ETag, as in Dapr.
    let etag = headers
        .get("if-match")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let concurrency = parse_concurrency(query_param(uri, "concurrency").as_deref())?;
    comp.store
        .delete(DeleteRequest {
            key: full,
            etag,
            concurrency,
        })
        .await
        .map_err(|e| state_error(Op::Delete, store, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1.0/state/{store}/{key}`.
pub(super) async fn delete(
    State(rt): Rt,
    Path((store, key)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    delete_key(&rt, &store, &key, &uri, &headers).await
}

/// `DELETE /v1.0/state/{store}/bulk|transaction`: a plain delete of a key with that name.
pub(super) async fn delete_literal(
    State(rt): Rt,
    Path(store): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let key = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
    delete_key(&rt, &store, &key, &uri, &headers).await
}

/// `POST|PUT /v1.0/state/{store}/bulk`.
pub(super) async fn bulk_get(
    State(rt): Rt,
    Path(store): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let comp = component(&rt, &store)?;
    let body = read_body(&rt, body).await?;
    let mut obj: RawObject = parse_json(&body)?;
    let keys: Vec<String> = field_as(&mut obj, "keys")?.unwrap_or_default();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let full = full_key(&rt, &store, comp, &key)?;
        let item = match comp.store.get(&full).await {
            Ok(Some(entry)) => {
                // Stored values are JSON text; one that is not is returned as a JSON string.
                let data = serde_json::from_slice::<Value>(&entry.value).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&entry.value).into_owned())
                });
                let mut v = serde_json::json!({"key": key, "data": data, "etag": entry.etag});
                if let Some(at) = entry.expires_at {
                    v["metadata"] = serde_json::json!({"ttlExpireTime": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
                }
                v
            }
            Ok(None) => serde_json::json!({"key": key}),
            Err(e) => serde_json::json!({"key": key, "error": e.to_string()}),
        };
        out.push(item);
    }
    Ok((StatusCode::OK, axum::Json(out)).into_response())
}

/// `POST|PUT /v1.0/state/{store}/transaction`.
pub(super) async fn transaction(
    State(rt): Rt,
    Path(store): Path<String>,
    uri: Uri,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let comp = component(&rt, &store)?;
    let body = read_body(&rt, body).await?;
    let mut obj: RawObject = parse_json(&body)?;
    let operations: Vec<RawObject> = field_as(&mut obj, "operations")?.unwrap_or_default();
    let mut query_md = request_metadata(&uri);
    let req_md: BTreeMap<String, String> = field_as(&mut obj, "metadata")?.unwrap_or_default();
    for (k, v) in req_md {
        query_md.entry(k).or_insert(v);
    }
    let mut ops = Vec::with_capacity(operations.len());
    for mut op in operations {
        let kind: String = field_as(&mut op, "operation")?.unwrap_or_default();
        let request: RawObject = field_as(&mut op, "request")?
            .ok_or_else(|| ApiError::malformed("operation without \"request\""))?;
        let item = parse_item(request, &query_md)?;
        ops.push(match kind.as_str() {
            "upsert" => TransactionOp::Upsert(into_set(&rt, &store, comp, item)?),
            "delete" => TransactionOp::Delete(DeleteRequest {
                key: full_key(&rt, &store, comp, &item.key)?,
                etag: item.etag,
                concurrency: item.concurrency,
            }),
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ERR_NOT_SUPPORTED_STATE_OPERATION",
                    format!("operation type {other} not supported"),
                ));
            }
        });
    }
    if ops.is_empty() {
        return Ok(StatusCode::NO_CONTENT);
    }
    comp.store
        .transact(ops)
        .await
        .map_err(|e| state_error(Op::Transaction, &store, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST|PUT /v1.0-alpha1/state/{store}/query`.
pub(super) async fn query(
    State(rt): Rt,
    Path(store): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let comp = component(&rt, &store)?;
    let body = read_body(&rt, body).await?;
    let q: crate::state::Query = parse_json(&body)?;
    let prefix = comp.key_prefix.prefix(&rt.app_id, &store);
    let entries = comp
        .store
        .scan(&prefix)
        .await
        .map_err(|e| state_error(Op::Query, &store, e))?;
    let stripped = entries
        .into_iter()
        .map(|(k, e)| (k[prefix.len()..].to_owned(), e))
        .collect();
    let (results, token) =
        crate::state::query::run(&q, stripped).map_err(|e| state_error(Op::Query, &store, e))?;
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| serde_json::json!({"key": r.key, "data": r.data, "etag": r.etag}))
        .collect();
    let mut body = serde_json::json!({"results": results});
    if let Some(t) = token {
        body["token"] = t.into();
    }
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}
