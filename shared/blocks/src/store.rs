//! Object storage chosen by URL: `file:///abs/path` or a plain path (local folder), `memory://`.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

use crate::BlockError;

/// A store and the prefix under which tenants live.
#[derive(Clone, Debug)]
pub struct Location {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix (may be empty).
    pub prefix: Path,
}

impl Location {
    /// Opens the store a URL names; a plain path means a local folder, created if missing.
    pub fn open(url: &str) -> Result<Self, BlockError> {
        let err = |message: String| BlockError::Url {
            url: url.to_owned(),
            message,
        };
        if url == "memory://" || url.starts_with("memory://") {
            return Ok(Location {
                store: Arc::new(object_store::memory::InMemory::new()),
                prefix: Path::from(url.trim_start_matches("memory://")),
            });
        }
        let dir = match url.strip_prefix("file://") {
            Some(p) => std::path::PathBuf::from(p),
            None if !url.contains("://") => std::path::PathBuf::from(url),
            None => {
                return Err(err(
                    "unsupported scheme (supported: file://, a plain path, memory://)".into(),
                ));
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| err(e.to_string()))?;
        Ok(Location {
            store: Arc::new(store),
            prefix: Path::default(),
        })
    }

    /// `<prefix>/<parts…>`.
    pub fn path(&self, parts: &[&str]) -> Path {
        let mut p = self.prefix.clone();
        for part in parts {
            p = p.child(*part);
        }
        p
    }
}
