//! `state.azure.tablestorage`: one entity per key in an Azure Table, laid out as Dapr's
//! component does (partition key = the key's app prefix before `||`, row key = the rest,
//! value in the `Value` property), so tables are shared with daprd. ETags are the service's
//! own; first-write is an insert, an ETag'd write a replace with `If-Match`.

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use tempest_building_blocks::state::{
    Concurrency, DeleteRequest, Feature, SetRequest, StateEntry, StateError, StateStore,
};

use crate::ComponentError;
use crate::azure::{Credential, Service, describe, request, service_url};
use crate::metadata::Metadata;

/// Dapr's separator between the app id and the key.
const KEY_DELIMITER: &str = "||";
/// The entity property that holds the value (Dapr's name).
const VALUE: &str = "Value";

/// An Azure Table as a state store.
pub struct TableStateStore {
    credential: Credential,
    /// `<service URL>/<table>`.
    table_url: String,
}

impl TableStateStore {
    /// Connects from Dapr's metadata: `accountName`, `tableName`, `accountKey` or Entra ID
    /// fields, `serviceURL` (an emulator), `skipCreateTable`. The table is created unless
    /// `skipCreateTable` is true.
    pub async fn connect(md: &Metadata) -> Result<Self, ComponentError> {
        let invalid = |message: String| ComponentError::Invalid {
            component: md.component.clone(),
            message,
        };
        let account = md.required("accountName")?;
        let table = md.required("tableName")?;
        let valid = table.len() >= 3
            && table.len() <= 63
            && table.starts_with(|c: char| c.is_ascii_alphabetic())
            && table.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(invalid(format!(
                "tableName {table:?} is not a table name (3-63 letters and digits, a letter first)"
            )));
        }
        let service = service_url(md, account, "table");
        let store = TableStateStore {
            credential: Credential::from_metadata(md, Some(account), Service::Table)?,
            table_url: format!("{service}/{table}"),
        };
        if !md.flag("skipCreateTable", false)? {
            let resp = store
                .send(
                    Method::POST,
                    format!("{service}/Tables"),
                    Some(json!({ "TableName": table })),
                    None,
                )
                .await
                .map_err(|e| invalid(format!("cannot create table {table}: {e}")))?;
            if !(resp.status().is_success() || resp.status() == StatusCode::CONFLICT) {
                let why = describe(&resp);
                return Err(invalid(format!("cannot create table {table}: {why}")));
            }
        }
        Ok(store)
    }

    async fn send(
        &self,
        method: Method,
        url: String,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Result<tempest_http::Response, StateError> {
        // Minimal metadata: types come back, so binary values can be told from text.
        let mut headers = vec![
            ("Accept", "application/json;odata=minimalmetadata"),
            ("DataServiceVersion", "3.0"),
            ("Prefer", "return-no-content"),
        ];
        let body = match body {
            Some(body) => {
                headers.push(("Content-Type", "application/json"));
                body.to_string()
            }
            None => String::new(),
        };
        if let Some(etag) = if_match {
            headers.push(("If-Match", etag));
        }
        let req = request(method, &url, &headers, body).map_err(StateError::Backend)?;
        self.credential.send(req).await.map_err(StateError::Backend)
    }

    /// The entity URL of `key`, or why the key cannot be a Table key.
    fn entity_url(&self, key: &str) -> Result<String, StateError> {
        let (pk, rk) = split_key(key);
        let bad = |c: char| matches!(c, '/' | '\\' | '#' | '?') || c.is_control();
        if pk.chars().chain(rk.chars()).any(bad) {
            return Err(StateError::InvalidRequest(format!(
                "key {key:?}: Azure Table keys cannot hold '/', '\\', '#', '?' or control characters"
            )));
        }
        // OData string literals double their quotes; the path is then percent-encoded.
        let literal = |s: &str| {
            let quoted = s.replace('\'', "''");
            url_encode(&quoted)
        };
        Ok(format!(
            "{}(PartitionKey='{}',RowKey='{}')",
            self.table_url,
            literal(pk),
            literal(rk)
        ))
    }
}

/// Dapr's `<app>||<key>` as partition and row key; a key without `||` is all partition key.
fn split_key(key: &str) -> (&str, &str) {
    key.split_once(KEY_DELIMITER).unwrap_or((key, ""))
}

/// Percent-encodes everything but unreserved characters.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn etag_of(resp: &tempest_http::Response) -> Result<String, StateError> {
    resp.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| StateError::Backend("the Table service answered no ETag".into()))
}

/// The entity body for a value: text as `Edm.String`, other bytes as `Edm.Binary`.
fn entity(key: &str, value: &Bytes) -> Value {
    let (pk, rk) = split_key(key);
    match std::str::from_utf8(value) {
        Ok(text) => json!({ "PartitionKey": pk, "RowKey": rk, VALUE: text }),
        Err(_) => json!({
            "PartitionKey": pk,
            "RowKey": rk,
            VALUE: base64::engine::general_purpose::STANDARD.encode(value),
            "Value@odata.type": "Edm.Binary",
        }),
    }
}

#[async_trait]
impl StateStore for TableStateStore {
    fn features(&self) -> &'static [Feature] {
        &[Feature::Etag]
    }

    async fn get(&self, key: &str) -> Result<Option<StateEntry>, StateError> {
        let url = self.entity_url(key)?;
        let resp = self.send(Method::GET, url, None, None).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let etag = etag_of(&resp)?;
                let body: Value =
                    serde_json::from_slice(resp.body()).map_err(StateError::backend)?;
                let binary =
                    body.get("Value@odata.type").and_then(Value::as_str) == Some("Edm.Binary");
                let text = body.get(VALUE).and_then(Value::as_str).unwrap_or_default();
                let value = if binary {
                    Bytes::from(
                        base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .map_err(StateError::backend)?,
                    )
                } else {
                    Bytes::from(text.to_owned())
                };
                Ok(Some(StateEntry {
                    value,
                    etag,
                    expires_at: None,
                }))
            }
            _ => Err(StateError::Backend(describe(&resp))),
        }
    }

    async fn set(&self, req: SetRequest) -> Result<(), StateError> {
        if req.ttl_seconds.is_some() {
            return Err(StateError::NotSupported(
                "state.azure.tablestorage does not support TTL".into(),
            ));
        }
        let body = entity(&req.key, &req.value);
        let resp = match (&req.etag, req.concurrency) {
            (Some(etag), _) => {
                let url = self.entity_url(&req.key)?;
                self.send(Method::PUT, url, Some(body), Some(etag)).await?
            }
            (None, Concurrency::FirstWrite) => {
                // An insert names the key in its body; the URL check still refuses bad keys.
                self.entity_url(&req.key)?;
                let url = self.table_url.clone();
                self.send(Method::POST, url, Some(body), None).await?
            }
            (None, Concurrency::LastWrite) => {
                let url = self.entity_url(&req.key)?;
                self.send(Method::PUT, url, Some(body), None).await?
            }
        };
        match resp.status() {
            s if s.is_success() => Ok(()),
            // Absent entity under If-Match, a changed ETag, or an insert over an existing one.
            StatusCode::NOT_FOUND | StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => {
                Err(StateError::EtagMismatch(describe(&resp)))
            }
            StatusCode::BAD_REQUEST if req.etag.is_some() => {
                Err(StateError::EtagInvalid(describe(&resp)))
            }
            _ => Err(StateError::Backend(describe(&resp))),
        }
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), StateError> {
        let url = self.entity_url(&req.key)?;
        let etag = req.etag.as_deref().unwrap_or("*");
        let resp = self.send(Method::DELETE, url, None, Some(etag)).await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND if req.etag.is_none() => Ok(()),
            StatusCode::NOT_FOUND | StatusCode::PRECONDITION_FAILED => {
                Err(StateError::EtagMismatch(describe(&resp)))
            }
            StatusCode::BAD_REQUEST if req.etag.is_some() => {
                Err(StateError::EtagInvalid(describe(&resp)))
            }
            _ => Err(StateError::Backend(describe(&resp))),
        }
    }
}
