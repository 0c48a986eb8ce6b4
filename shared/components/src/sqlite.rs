//! The shared SQLite handle used by the embedded state store and broker: one connection behind
//! a mutex, used from blocking threads so the async runtime never waits on disk.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// A SQLite database usable from async code.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) a database file in WAL mode: a committed write survives the
    /// process being killed.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// A private in-memory database (for the `in-memory` component types).
    pub fn in_memory() -> rusqlite::Result<Self> {
        Ok(Db {
            conn: Arc::new(Mutex::new(Connection::open_in_memory()?)),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static + From<String>,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| E::from(format!("database task failed: {e}")))?
    }

    /// Runs `f` on the calling thread (for setup).
    pub fn run_now<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
