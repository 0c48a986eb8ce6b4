//! A local folder as an object store, on nothing but `std::fs`: what the WebAssembly host (Spin)
//! stores blocks in, since `object_store`'s own `LocalFileSystem` is not built for wasm32. Native
//! hosts use `LocalFileSystem`; this one is compiled everywhere so its tests run natively.
//!
//! Objects are files under the root, one folder per path segment. A write goes to a hidden
//! staging file in the same folder and is renamed into place, so a reader sees the whole object
//! or none of it (the same promise `LocalFileSystem` makes). `PutMode::Create` links the staged
//! file to its name, which fails if the name exists: the create is atomic, as the compactor's
//! lease needs. `PutMode::Update` (compare-and-swap on an ETag) is not offered.

use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path as FsPath, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use object_store::path::Path;
use object_store::{
    Attributes, CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};

/// Staging files start with this; listings skip them.
const STAGING: &str = ".staging-";

const STORE: &str = "FolderStore";

/// Objects as files under one folder.
#[derive(Debug)]
pub struct FolderStore {
    root: PathBuf,
}

impl FolderStore {
    /// The store over `root`, which is created if missing.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(FolderStore { root })
    }

    fn file(&self, location: &Path) -> PathBuf {
        let mut file = self.root.clone();
        for part in location.parts() {
            file.push(part.as_ref());
        }
        file
    }

    /// Writes `data` to a staging file beside `file` and returns its name.
    fn stage(&self, file: &FsPath, data: &[u8]) -> std::io::Result<PathBuf> {
        let dir = file.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir)?;
        let staged = dir.join(format!("{STAGING}{}", uuid::Uuid::new_v4().simple()));
        fs::write(&staged, data)?;
        Ok(staged)
    }

    /// Moves a staged file to `file`: replacing what is there, or (`create`) only if nothing is.
    fn commit(&self, staged: &FsPath, file: &FsPath, location: &Path, create: bool) -> Result<()> {
        let done = if create {
            fs::hard_link(staged, file).and_then(|()| fs::remove_file(staged))
        } else {
            fs::rename(staged, file)
        };
        done.map_err(|e| {
            let _ = fs::remove_file(staged);
            if create && e.kind() == ErrorKind::AlreadyExists {
                object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: Box::new(e),
                }
            } else {
                io_error(location, e)
            }
        })
    }

    fn meta(&self, location: &Path, file: &FsPath) -> Result<ObjectMeta> {
        let md = fs::metadata(file).map_err(|e| io_error(location, e))?;
        if md.is_dir() {
            return Err(not_found(location, "a folder, not an object"));
        }
        Ok(object_meta(location.clone(), &md))
    }

    /// Every object under `dir` (whose path is `prefix`), depth first.
    fn walk(&self, dir: &FsPath, prefix: &Path, out: &mut Vec<Result<ObjectMeta>>) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(e) => return out.push(Err(io_error(prefix, e))),
        };
        for entry in entries {
            let (name, md) = match entry.and_then(|e| Ok((e.file_name(), e.metadata()?))) {
                Ok(found) => found,
                Err(e) => {
                    out.push(Err(io_error(prefix, e)));
                    continue;
                }
            };
            let Some(name) = name.to_str().filter(|n| !n.starts_with(STAGING)) else {
                continue;
            };
            let location = prefix.clone().join(name);
            if md.is_dir() {
                self.walk(&dir.join(name), &location, out);
            } else {
                out.push(Ok(object_meta(location, &md)));
            }
        }
    }
}

impl std::fmt::Display for FolderStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FolderStore({})", self.root.display())
    }
}

fn object_meta(location: Path, md: &fs::Metadata) -> ObjectMeta {
    let last_modified: DateTime<Utc> = md
        .modified()
        .map(DateTime::from)
        .unwrap_or(DateTime::UNIX_EPOCH);
    let e_tag = format!(
        "{:x}-{:x}",
        last_modified.timestamp_nanos_opt().unwrap_or_default(),
        md.len()
    );
    ObjectMeta {
        location,
        last_modified,
        size: md.len(),
        e_tag: Some(e_tag),
        version: None,
    }
}

fn not_found(location: &Path, why: &str) -> object_store::Error {
    object_store::Error::NotFound {
        path: location.to_string(),
        source: why.into(),
    }
}

fn io_error(location: &Path, e: std::io::Error) -> object_store::Error {
    match e.kind() {
        ErrorKind::NotFound => object_store::Error::NotFound {
            path: location.to_string(),
            source: Box::new(e),
        },
        _ => object_store::Error::Generic {
            store: STORE,
            source: format!("{location}: {e}").into(),
        },
    }
}

#[async_trait]
impl ObjectStore for FolderStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let create = match opts.mode {
            PutMode::Overwrite => false,
            PutMode::Create => true,
            PutMode::Update(_) => {
                return Err(object_store::Error::NotImplemented {
                    operation: "put with PutMode::Update".into(),
                    implementer: STORE.into(),
                });
            }
        };
        let file = self.file(location);
        let data: Bytes = payload.into();
        let staged = self
            .stage(&file, &data)
            .map_err(|e| io_error(location, e))?;
        self.commit(&staged, &file, location, create)?;
        let meta = self.meta(location, &file)?;
        Ok(PutResult {
            e_tag: meta.e_tag,
            version: None,
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(object_store::Error::NotImplemented {
            operation: "put_multipart".into(),
            implementer: STORE.into(),
        })
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let file = self.file(location);
        let mut f = fs::File::open(&file).map_err(|e| io_error(location, e))?;
        let md = f.metadata().map_err(|e| io_error(location, e))?;
        if md.is_dir() {
            return Err(not_found(location, "a folder, not an object"));
        }
        let meta = object_meta(location.clone(), &md);
        options.check_preconditions(&meta)?;
        let range = match &options.range {
            Some(r) => r
                .as_range(meta.size)
                .map_err(|e| object_store::Error::Generic {
                    store: STORE,
                    source: Box::new(e),
                })?,
            None => 0..meta.size,
        };
        let data = if options.head {
            Bytes::new()
        } else {
            let mut buf = vec![0; (range.end - range.start) as usize];
            f.seek(SeekFrom::Start(range.start))
                .and_then(|_| f.read_exact(&mut buf))
                .map_err(|e| io_error(location, e))?;
            Bytes::from(buf)
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream::once(async move { Ok(data) }).boxed()),
            meta,
            range,
            attributes: Attributes::default(),
            extensions: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let root = self.root.clone();
        locations
            .map(move |location| {
                let location = location?;
                let store = FolderStore { root: root.clone() };
                fs::remove_file(store.file(&location)).map_err(|e| io_error(&location, e))?;
                Ok(location)
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let prefix = prefix.cloned().unwrap_or_default();
        let mut out = Vec::new();
        self.walk(&self.file(&prefix), &prefix, &mut out);
        stream::iter(out).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let prefix = prefix.cloned().unwrap_or_default();
        let mut result = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
            extensions: Default::default(),
        };
        let entries = match fs::read_dir(self.file(&prefix)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(result),
            Err(e) => return Err(io_error(&prefix, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&prefix, e))?;
            let md = entry.metadata().map_err(|e| io_error(&prefix, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| !n.starts_with(STAGING)) else {
                continue;
            };
            let location = prefix.clone().join(name);
            if md.is_dir() {
                result.common_prefixes.push(location);
            } else {
                result.objects.push(object_meta(location, &md));
            }
        }
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let data = fs::read(self.file(from)).map_err(|e| io_error(from, e))?;
        let file = self.file(to);
        let staged = self.stage(&file, &data).map_err(|e| io_error(to, e))?;
        self.commit(&staged, &file, to, options.mode == CopyMode::Create)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{GetRange, ObjectStoreExt};

    fn store() -> (tempfile::TempDir, FolderStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FolderStore::new(dir.path().join("root")).expect("store");
        (dir, store)
    }

    #[tokio::test]
    async fn put_get_range_head_and_delete() {
        let (_dir, s) = store();
        let p = Path::from("t/block/data.parquet");
        s.put(&p, Bytes::from_static(b"0123456789").into())
            .await
            .expect("put");
        let all = s.get(&p).await.expect("get").bytes().await.expect("bytes");
        assert_eq!(&all[..], b"0123456789");
        assert_eq!(&s.get_range(&p, 2..5).await.expect("range")[..], b"234");
        let suffix = s
            .get_opts(
                &p,
                GetOptions {
                    range: Some(GetRange::Suffix(3)),
                    ..Default::default()
                },
            )
            .await
            .expect("suffix");
        assert_eq!(suffix.range, 7..10);
        assert_eq!(&suffix.bytes().await.expect("bytes")[..], b"789");
        assert_eq!(s.head(&p).await.expect("head").size, 10);
        s.delete(&p).await.expect("delete");
        assert!(matches!(
            s.get(&p).await,
            Err(object_store::Error::NotFound { .. })
        ));
        assert!(matches!(
            s.delete(&p).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn create_refuses_an_existing_object_and_keeps_it() {
        let (_dir, s) = store();
        let p = Path::from("t/lease");
        let create = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        s.put_opts(&p, Bytes::from_static(b"first").into(), create())
            .await
            .expect("create");
        let again = s
            .put_opts(&p, Bytes::from_static(b"second").into(), create())
            .await;
        assert!(matches!(
            again,
            Err(object_store::Error::AlreadyExists { .. })
        ));
        let kept = s.get(&p).await.expect("get").bytes().await.expect("bytes");
        assert_eq!(&kept[..], b"first");
        let update = PutOptions {
            mode: PutMode::Update(object_store::UpdateVersion {
                e_tag: None,
                version: None,
            }),
            ..Default::default()
        };
        assert!(matches!(
            s.put_opts(&p, Bytes::new().into(), update).await,
            Err(object_store::Error::NotImplemented { .. })
        ));
        // No staging file is left behind by the refused writes.
        let names: Vec<_> = fs::read_dir(s.root.join("t"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("lease")]);
    }

    #[tokio::test]
    async fn listings_skip_staging_files_and_split_on_the_delimiter() {
        let (_dir, s) = store();
        for p in ["a/1/meta.json", "a/1/data.parquet", "a/2/meta.json", "b/x"] {
            s.put(&Path::from(p), Bytes::from_static(b"{}").into())
                .await
                .expect("put");
        }
        fs::write(s.root.join("a").join(".staging-abc"), b"half").expect("staging");
        let mut all: Vec<String> = s
            .list(Some(&Path::from("a")))
            .map(|m| m.expect("meta").location.to_string())
            .collect()
            .await;
        all.sort();
        assert_eq!(all, ["a/1/data.parquet", "a/1/meta.json", "a/2/meta.json"]);
        let top = s.list_with_delimiter(None).await.expect("list");
        let mut prefixes: Vec<_> = top.common_prefixes.iter().map(|p| p.to_string()).collect();
        prefixes.sort();
        assert_eq!(prefixes, ["a", "b"]);
        assert!(top.objects.is_empty());
        let none = s
            .list_with_delimiter(Some(&Path::from("missing")))
            .await
            .expect("list");
        assert!(none.objects.is_empty() && none.common_prefixes.is_empty());
        s.copy(&Path::from("b/x"), &Path::from("b/y"))
            .await
            .expect("copy");
        assert!(matches!(
            s.copy_if_not_exists(&Path::from("b/x"), &Path::from("b/y"))
                .await,
            Err(object_store::Error::AlreadyExists { .. })
        ));
    }
}
