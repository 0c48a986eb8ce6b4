//! `state.postgresql` (v1): Dapr's table layout, so data is shared with daprd — `key` text
//! primary key, `value` jsonb, `isbinary`, `insertdate`, `updatedate`, `expiredate` — and the
//! row's `xmin` as the ETag. Every conditional write is one statement whose WHERE clause is the
//! condition, so races are settled by PostgreSQL's row locks.

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use tempest_building_blocks::state::{
    Concurrency, DeleteRequest, Feature, SetRequest, StateEntry, StateError, StateStore,
    TransactionOp,
};
use tokio::sync::Mutex;
use tokio_postgres::{Client, GenericClient, NoTls};

use crate::ComponentError;
use crate::metadata::Metadata;

/// A PostgreSQL-backed state store.
pub struct PostgresStateStore {
    /// Shared connection for single statements (tokio-postgres pipelines concurrent queries).
    client: Client,
    /// A second connection owned by one transaction at a time.
    tx_client: Mutex<Client>,
    table: String,
}

fn pg_err(e: tokio_postgres::Error) -> StateError {
    StateError::backend(e)
}

async fn open(conn_str: &str, component: &str) -> Result<Client, ComponentError> {
    let (client, connection) = tokio_postgres::connect(conn_str, NoTls)
        .await
        .map_err(|e| ComponentError::Init {
            component: component.to_owned(),
            message: format!("cannot connect: {e}"),
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("postgres connection ended: {e}");
        }
    });
    Ok(client)
}

const LIVE: &str = "(expiredate IS NULL OR expiredate > now())";

fn check_etag(etag: &str) -> Result<(), StateError> {
    etag.parse::<u32>().map(|_| ()).map_err(|_| {
        StateError::EtagInvalid(format!("{etag:?} is not a PostgreSQL ETag (a number)"))
    })
}

async fn apply_set<C: GenericClient>(
    c: &C,
    table: &str,
    req: &SetRequest,
) -> Result<(), StateError> {
    let value = std::str::from_utf8(&req.value)
        .map_err(|_| StateError::InvalidRequest("value is not UTF-8 JSON".into()))?;
    let ttl = req.ttl_seconds.map(|t| t as i64);
    let expires = "now() + ($3::bigint * interval '1 second')";
    let n = match (
        req.etag.as_deref().filter(|e| !e.is_empty()),
        req.concurrency,
    ) {
        (Some(etag), _) => {
            check_etag(etag)?;
            let sql = format!(
                "UPDATE {table} SET value = $2::text::jsonb, isbinary = false, updatedate = now(), expiredate = {expires} WHERE key = $1 AND xmin::text = $4 AND {LIVE}"
            );
            c.execute(&sql, &[&req.key, &value, &ttl, &etag]).await
        }
        (None, Concurrency::FirstWrite) => {
            let sql = format!(
                "INSERT INTO {table} (key, value, isbinary, expiredate) VALUES ($1, $2::text::jsonb, false, {expires}) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, isbinary = false, updatedate = now(), expiredate = EXCLUDED.expiredate \
                 WHERE {table}.expiredate IS NOT NULL AND {table}.expiredate <= now()"
            );
            c.execute(&sql, &[&req.key, &value, &ttl]).await
        }
        (None, Concurrency::LastWrite) => {
            let sql = format!(
                "INSERT INTO {table} (key, value, isbinary, expiredate) VALUES ($1, $2::text::jsonb, false, {expires}) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, isbinary = false, updatedate = now(), expiredate = EXCLUDED.expiredate"
            );
            c.execute(&sql, &[&req.key, &value, &ttl]).await
        }
    };
    match n {
        Ok(0) => Err(StateError::EtagMismatch(format!(
            "key {} was changed or does not exist",
            req.key
        ))),
        Ok(_) => Ok(()),
        Err(e)
            if e.as_db_error().is_some_and(|d| {
                d.code() == &tokio_postgres::error::SqlState::INVALID_TEXT_REPRESENTATION
            }) =>
        {
            Err(StateError::InvalidRequest(format!(
                "value is not valid JSON: {e}"
            )))
        }
        Err(e) => Err(pg_err(e)),
    }
}

async fn apply_delete<C: GenericClient>(
    c: &C,
    table: &str,
    req: &DeleteRequest,
) -> Result<(), StateError> {
    match &req.etag {
        Some(etag) => {
            check_etag(etag)
                .map_err(|_| StateError::EtagMismatch(format!("ETag {etag:?} does not match")))?;
            let n = c
                .execute(
                    &format!("DELETE FROM {table} WHERE key = $1 AND xmin::text = $2 AND {LIVE}"),
                    &[&req.key, etag],
                )
                .await
                .map_err(pg_err)?;
            if n == 0 {
                return Err(StateError::EtagMismatch(format!(
                    "key {} was changed or does not exist",
                    req.key
                )));
            }
        }
        None => {
            c.execute(&format!("DELETE FROM {table} WHERE key = $1"), &[&req.key])
                .await
                .map_err(pg_err)?;
        }
    }
    Ok(())
}

fn row_entry(value: String, isbinary: bool, etag: String, expires_ms: Option<i64>) -> StateEntry {
    // Rows daprd wrote for binary values hold a base64 JSON string.
    let value = if isbinary {
        serde_json::from_str::<String>(&value)
            .ok()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .map(Bytes::from)
            .unwrap_or_else(|| Bytes::from(value))
    } else {
        Bytes::from(value)
    };
    StateEntry {
        value,
        etag,
        expires_at: expires_ms.and_then(chrono::DateTime::from_timestamp_millis),
    }
}

const SELECT: &str =
    "value::text, isbinary, xmin::text, (extract(epoch from expiredate) * 1000)::bigint";

impl PostgresStateStore {
    /// Connects using Dapr's metadata (`connectionString`, `tableName`) and creates the table if needed.
    pub async fn connect(md: &Metadata) -> Result<Self, ComponentError> {
        let conn_str = md.required("connectionString")?;
        let table = md.get("tableName").unwrap_or("state").to_owned();
        if !table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(ComponentError::Invalid {
                component: md.component.clone(),
                message: format!("invalid tableName {table:?}"),
            });
        }
        let client = open(conn_str, &md.component).await?;
        let tx_client = open(conn_str, &md.component).await?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (key text NOT NULL PRIMARY KEY, value jsonb NOT NULL, isbinary boolean NOT NULL, \
             insertdate TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(), updatedate TIMESTAMP WITH TIME ZONE NULL, \
             expiredate TIMESTAMP WITH TIME ZONE NULL)"
        );
        // Two processes creating the table at once can collide on the catalog; the second try sees it.
        if client.batch_execute(&create).await.is_err() {
            client
                .batch_execute(&create)
                .await
                .map_err(|e| ComponentError::Init {
                    component: md.component.clone(),
                    message: e.to_string(),
                })?;
        }
        Ok(PostgresStateStore {
            client,
            tx_client: Mutex::new(tx_client),
            table,
        })
    }
}

#[async_trait]
impl StateStore for PostgresStateStore {
    fn features(&self) -> &'static [Feature] {
        &[
            Feature::Etag,
            Feature::Transactional,
            Feature::Ttl,
            Feature::QueryApi,
        ]
    }

    async fn get(&self, key: &str) -> Result<Option<StateEntry>, StateError> {
        let sql = format!(
            "SELECT {SELECT} FROM {} WHERE key = $1 AND {LIVE}",
            self.table
        );
        let row = self.client.query_opt(&sql, &[&key]).await.map_err(pg_err)?;
        Ok(row.map(|r| row_entry(r.get(0), r.get(1), r.get(2), r.get(3))))
    }

    async fn set(&self, req: SetRequest) -> Result<(), StateError> {
        apply_set(&self.client, &self.table, &req).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), StateError> {
        apply_delete(&self.client, &self.table, &req).await
    }

    async fn transact(&self, ops: Vec<TransactionOp>) -> Result<(), StateError> {
        let mut client = self.tx_client.lock().await;
        let tx = client.transaction().await.map_err(pg_err)?;
        for op in &ops {
            match op {
                TransactionOp::Upsert(r) => apply_set(&tx, &self.table, r).await?,
                TransactionOp::Delete(r) => apply_delete(&tx, &self.table, r).await?,
            }
        }
        // Dropping `tx` on an error above rolls back.
        tx.commit().await.map_err(pg_err)
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<(String, StateEntry)>, StateError> {
        let sql = format!(
            "SELECT key, {SELECT} FROM {} WHERE starts_with(key, $1) AND {LIVE} ORDER BY key",
            self.table
        );
        let rows = self.client.query(&sql, &[&prefix]).await.map_err(pg_err)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), row_entry(r.get(1), r.get(2), r.get(3), r.get(4))))
            .collect())
    }
}
