//! `state.sqlite` (the embedded default, a file in the data folder) and `state.in-memory`
//! (the same engine on a private in-memory database). ETags are UUIDs, so an ETag from a
//! deleted and re-created key never matches again.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tempest_building_blocks::state::{
    Concurrency, DeleteRequest, Feature, SetRequest, StateEntry, StateError, StateStore,
    TransactionOp, expiry_from_ttl,
};

use crate::sqlite::{Db, now_ms};

/// How often expired rows are removed (they are invisible before that).
const CLEANUP_EVERY_MS: i64 = 60_000;

/// A SQLite-backed state store.
pub struct SqliteStateStore {
    db: Db,
    table: String,
    last_cleanup: Arc<AtomicI64>,
}

fn db_err(e: rusqlite::Error) -> StateError {
    StateError::backend(e)
}

impl SqliteStateStore {
    /// Opens the store on `db`, creating `table` if needed.
    pub fn new(db: Db, table: &str) -> Result<Self, StateError> {
        if !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || table.is_empty() {
            return Err(StateError::InvalidRequest(format!(
                "invalid table name {table:?}"
            )));
        }
        db.run_now(|c| {
            c.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, \
                 etag TEXT NOT NULL, expires_at INTEGER); \
                 DELETE FROM {table} WHERE expires_at IS NOT NULL AND expires_at <= {};",
                now_ms()
            ))
        })
        .map_err(db_err)?;
        Ok(SqliteStateStore {
            db,
            table: table.to_owned(),
            last_cleanup: Arc::new(AtomicI64::new(now_ms())),
        })
    }
}

/// Removes expired rows at most once a minute; until then reads already skip them.
fn maybe_cleanup(c: &Connection, table: &str, last_cleanup: &AtomicI64) {
    let now = now_ms();
    let last = last_cleanup.load(Ordering::Relaxed);
    if now - last > CLEANUP_EVERY_MS
        && last_cleanup
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let sql = format!("DELETE FROM {table} WHERE expires_at IS NOT NULL AND expires_at <= ?1");
        if let Err(e) = c.execute(&sql, params![now]) {
            tracing::warn!("expired state cleanup failed: {e}");
        }
    }
}

fn live(now: i64) -> String {
    format!("(expires_at IS NULL OR expires_at > {now})")
}

fn apply_set(c: &Connection, table: &str, req: &SetRequest) -> Result<(), StateError> {
    let now = now_ms();
    let etag = uuid::Uuid::new_v4().to_string();
    let expires = expiry_from_ttl(req.ttl_seconds).map(|t| t.timestamp_millis());
    let value = req.value.as_ref();
    let changed = match (req.etag.as_deref().filter(|e| !e.is_empty()), req.concurrency) {
        (Some(expected), _) => c.execute(
            &format!("UPDATE {table} SET value = ?2, etag = ?3, expires_at = ?4 WHERE key = ?1 AND etag = ?5 AND {}", live(now)),
            params![req.key, value, etag, expires, expected],
        ),
        (None, Concurrency::FirstWrite) => c.execute(
            &format!(
                "INSERT INTO {table} (key, value, etag, expires_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, etag = excluded.etag, expires_at = excluded.expires_at \
                 WHERE {table}.expires_at IS NOT NULL AND {table}.expires_at <= {now}"
            ),
            params![req.key, value, etag, expires],
        ),
        (None, Concurrency::LastWrite) => c.execute(
            &format!(
                "INSERT INTO {table} (key, value, etag, expires_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, etag = excluded.etag, expires_at = excluded.expires_at"
            ),
            params![req.key, value, etag, expires],
        ),
    }
    .map_err(db_err)?;
    if changed == 0 {
        return Err(StateError::EtagMismatch(format!(
            "key {} was changed or does not exist",
            req.key
        )));
    }
    Ok(())
}

fn apply_delete(c: &Connection, table: &str, req: &DeleteRequest) -> Result<(), StateError> {
    match &req.etag {
        Some(expected) => {
            let n = c
                .execute(
                    &format!(
                        "DELETE FROM {table} WHERE key = ?1 AND etag = ?2 AND {}",
                        live(now_ms())
                    ),
                    params![req.key, expected],
                )
                .map_err(db_err)?;
            if n == 0 {
                return Err(StateError::EtagMismatch(format!(
                    "key {} was changed or does not exist",
                    req.key
                )));
            }
        }
        None => {
            c.execute(
                &format!("DELETE FROM {table} WHERE key = ?1"),
                params![req.key],
            )
            .map_err(db_err)?;
        }
    }
    Ok(())
}

fn row_entry(value: Vec<u8>, etag: String, expires: Option<i64>) -> StateEntry {
    StateEntry {
        value: Bytes::from(value),
        etag,
        expires_at: expires.and_then(chrono::DateTime::from_timestamp_millis),
    }
}

#[async_trait]
impl StateStore for SqliteStateStore {
    fn features(&self) -> &'static [Feature] {
        &[
            Feature::Etag,
            Feature::Transactional,
            Feature::Ttl,
            Feature::QueryApi,
        ]
    }

    async fn get(&self, key: &str) -> Result<Option<StateEntry>, StateError> {
        let (table, key) = (self.table.clone(), key.to_owned());
        self.db
            .run(move |c| {
                c.prepare_cached(&format!(
                    "SELECT value, etag, expires_at FROM {table} WHERE key = ?1 AND {}",
                    live(now_ms())
                ))
                .and_then(|mut st| {
                    st.query_row(params![key], |r| {
                        Ok(row_entry(r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()
                })
                .map_err(db_err)
            })
            .await
    }

    async fn set(&self, req: SetRequest) -> Result<(), StateError> {
        let (table, last_cleanup) = (self.table.clone(), self.last_cleanup.clone());
        self.db
            .run(move |c| {
                maybe_cleanup(c, &table, &last_cleanup);
                apply_set(c, &table, &req)
            })
            .await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), StateError> {
        let table = self.table.clone();
        self.db.run(move |c| apply_delete(c, &table, &req)).await
    }

    async fn transact(&self, ops: Vec<TransactionOp>) -> Result<(), StateError> {
        let table = self.table.clone();
        self.db
            .run(move |c| {
                let tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(db_err)?;
                for op in &ops {
                    match op {
                        TransactionOp::Upsert(req) => apply_set(&tx, &table, req)?,
                        TransactionOp::Delete(req) => apply_delete(&tx, &table, req)?,
                    }
                }
                // Dropping the transaction on an error above rolls everything back.
                tx.commit().map_err(db_err)
            })
            .await
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<(String, StateEntry)>, StateError> {
        let (table, prefix) = (self.table.clone(), prefix.to_owned());
        self.db
            .run(move |c| {
                let mut st = c
                    .prepare(&format!("SELECT key, value, etag, expires_at FROM {table} WHERE substr(key, 1, length(?1)) = ?1 AND {} ORDER BY key", live(now_ms())))
                    .map_err(db_err)?;
                let rows = st
                    .query_map(params![prefix], |r| Ok((r.get::<_, String>(0)?, row_entry(r.get(1)?, r.get(2)?, r.get(3)?))))
                    .map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await
    }
}
