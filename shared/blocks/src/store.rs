//! Object storage chosen by URL: `file:///abs/path` or a plain path (local folder), `memory://`.

use object_store::ObjectStoreExt;
use std::sync::Arc;

use bytes::Bytes;
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
    /// A cloud store reached over HTTP (S3, Azure Blob, Google Cloud Storage), rather than a
    /// local folder or memory: writers store independent objects at once and upload large ones
    /// in parts of S3's minimum size only there.
    pub remote: bool,
}

/// Splits `scheme://bucket/prefix?k=v&…` into bucket, prefix and options.
fn split_url(rest: &str) -> (String, String, Vec<(String, String)>) {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    let opts = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, "true"));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    (bucket.to_owned(), prefix.trim_matches('/').to_owned(), opts)
}

/// Applies `?key=value` URL options through a builder's `with_config`.
fn configure<B, K>(
    mut builder: B,
    opts: Vec<(String, String)>,
    set: fn(B, K, String) -> B,
) -> Result<B, object_store::Error>
where
    K: std::str::FromStr<Err = object_store::Error>,
{
    for (k, v) in opts {
        builder = set(builder, k.parse()?, v);
    }
    Ok(builder)
}

impl Location {
    /// A local (not [`remote`](Self::remote)) `store` under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        Location {
            store,
            prefix,
            remote: false,
        }
    }

    /// Opens the store a URL names:
    /// - a plain path or `file:///abs/path`: a local folder, created if missing;
    /// - `memory://`: in memory (tests);
    /// - `s3://bucket/prefix`: S3 or any S3-compatible store; credentials, region and endpoint
    ///   from the usual `AWS_*` variables, or as query options (`?endpoint=http://…&allow_http=true`);
    ///   path-style requests;
    /// - `az://container/prefix`: Azure Blob (`AZURE_STORAGE_*` variables, or `?use_emulator=true`
    ///   for Azurite);
    /// - `gs://bucket/prefix`: Google Cloud Storage (`GOOGLE_*` variables).
    pub fn open(url: &str) -> Result<Self, BlockError> {
        let err = |message: String| BlockError::Url {
            url: url.to_owned(),
            message,
        };
        if let Some(rest) = url.strip_prefix("memory://") {
            return Ok(Location::new(
                Arc::new(object_store::memory::InMemory::new()),
                Path::from(rest),
            ));
        }
        if let Some(location) = open_cloud(url)? {
            return Ok(location);
        }
        let dir = match url.strip_prefix("file://") {
            Some(p) => std::path::PathBuf::from(p),
            None if !url.contains("://") => std::path::PathBuf::from(url),
            None => return Err(err(
                "unsupported scheme (supported: a path, file://, memory://, s3://, az://, gs://)"
                    .into(),
            )),
        };
        let store = crate::folder::FolderStore::new(&dir).map_err(|e| err(e.to_string()))?;
        Ok(Location::new(Arc::new(store), Path::default()))
    }

    /// The object at `path`; `None` if there is none.
    pub async fn get_if_present(&self, path: &Path) -> Result<Option<Bytes>, BlockError> {
        match self.store.get(path).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The JSON object at `path`; `None` if there is none, an error if it does not parse.
    pub async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
    ) -> Result<Option<T>, BlockError> {
        let Some(bytes) = self.get_if_present(path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| crate::reader::corrupt(path.as_ref(), e))
    }

    /// Deletes `path`; an object already gone is not an error.
    pub async fn delete_if_present(&self, path: &Path) -> Result<(), BlockError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `<prefix>/<parts…>`.
    pub fn path(&self, parts: &[&str]) -> Path {
        let mut p = self.prefix.clone();
        for part in parts {
            p = p.join(*part);
        }
        p
    }
}

/// The cloud stores (`s3://`, `az://`, `gs://`); `None` for any other URL. On wasm32 requests go
/// through the host's `wasi:http` and signing through RustCrypto ([`crate::wasi_http`]); Google
/// Cloud Storage, whose service accounts sign with RSA, is not offered there.
fn open_cloud(url: &str) -> Result<Option<Location>, BlockError> {
    let err = |message: String| BlockError::Url {
        url: url.to_owned(),
        message,
    };
    let cloud = |store: Result<Arc<dyn ObjectStore>, object_store::Error>, prefix: String| {
        Ok(Location {
            store: store.map_err(|e| err(e.to_string()))?,
            prefix: Path::from(prefix),
            remote: true,
        })
    };
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix, opts) = split_url(rest);
        let b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        #[cfg(target_arch = "wasm32")]
        let b = b
            .with_http_connector(crate::wasi_http::WasiHttpConnector)
            .with_crypto_provider(Arc::new(crate::wasi_http::RustCrypto));
        let store = configure(b, opts, |b, k, v| b.with_config(k, v)).and_then(|b| b.build());
        return cloud(store.map(|s| Arc::new(s) as Arc<dyn ObjectStore>), prefix).map(Some);
    }
    if let Some(rest) = url.strip_prefix("az://") {
        let (container, prefix, opts) = split_url(rest);
        let b =
            object_store::azure::MicrosoftAzureBuilder::from_env().with_container_name(container);
        #[cfg(target_arch = "wasm32")]
        let b = b
            .with_http_connector(crate::wasi_http::WasiHttpConnector)
            .with_crypto_provider(Arc::new(crate::wasi_http::RustCrypto));
        let store = configure(b, opts, |b, k, v| b.with_config(k, v)).and_then(|b| b.build());
        return cloud(store.map(|s| Arc::new(s) as Arc<dyn ObjectStore>), prefix).map(Some);
    }
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(rest) = url.strip_prefix("gs://") {
        let (bucket, prefix, opts) = split_url(rest);
        let b = object_store::gcp::GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
        let store = configure(b, opts, |b, k, v| b.with_config(k, v)).and_then(|b| b.build());
        return cloud(store.map(|s| Arc::new(s) as Arc<dyn ObjectStore>), prefix).map(Some);
    }
    Ok(None)
}
