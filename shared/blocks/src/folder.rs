//! A local folder as an object store, on nothing but `std::fs`: where every host keeps blocks in a
//! local folder, the WebAssembly host (Spin) included.
//!
//! Objects are files under the root, one folder per path segment. A write goes to a hidden
//! staging file in the same folder and is renamed into place, so a reader sees the whole object
//! or none of it. `PutMode::Create` links the staged file to its name, which fails if the name
//! exists: the create is atomic, as the compactor's lease needs. `PutMode::Update`
//! (compare-and-swap on an ETag) is not offered. A multipart upload appends its parts to one
//! staging file as they come and renames it into place on completion.
//!
//! The file system is called on the calling thread. `object_store`'s `LocalFileSystem` moves
//! every call to a blocking thread instead, and for the few-KiB files of an ingested block the
//! hand-offs cost more than the writes: 8% of an ingest call's CPU on the blocking threads and
//! wake-ups on the caller's (BENCHMARKS.md). Writes land in the page cache, so a call returns in
//! microseconds; a cold read of a large range holds its worker for the read, which another
//! worker's tasks do not wait for.

use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::ops::Range;
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
    PutResult, Result, UploadPart,
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

    /// Creates an empty staging file beside `file` (and the folders above it, when missing).
    fn create_staged(&self, file: &FsPath) -> std::io::Result<(fs::File, PathBuf)> {
        let dir = file.parent().unwrap_or(&self.root);
        let staged = dir.join(format!("{STAGING}{}", uuid::Uuid::new_v4().simple()));
        let create = || {
            fs::File::options()
                .write(true)
                .create_new(true)
                .open(&staged)
        };
        let f = match create() {
            // Only a new object's first write creates its folder: try the file first.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(dir)?;
                create()?
            }
            done => done?,
        };
        Ok((f, staged))
    }

    /// Writes `data` to a staging file beside `file`; returns its name and the ETag the object
    /// will have (a rename keeps the file's inode and times).
    fn stage(&self, file: &FsPath, data: &[u8]) -> std::io::Result<(PathBuf, String)> {
        let (mut f, staged) = self.create_staged(file)?;
        let written = f.write_all(data).and_then(|()| f.metadata());
        match written {
            Ok(md) => Ok((staged, e_tag(&md))),
            Err(e) => {
                let _ = fs::remove_file(&staged);
                Err(e)
            }
        }
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

    /// The object's file, open for reading, and its metadata; a folder is not an object.
    fn open(&self, location: &Path) -> Result<(fs::File, fs::Metadata)> {
        let f = fs::File::open(self.file(location)).map_err(|e| io_error(location, e))?;
        let md = f.metadata().map_err(|e| io_error(location, e))?;
        if md.is_dir() {
            return Err(not_found(location, "a folder, not an object"));
        }
        Ok((f, md))
    }

    /// Every object under `dir` (whose path is `prefix`), depth first.
    fn walk(&self, dir: &FsPath, prefix: &Path, out: &mut Vec<Result<ObjectMeta>>) {
        let entries = match entries(dir, prefix) {
            Ok(entries) => entries,
            Err(e) => return out.push(Err(e)),
        };
        for (name, md) in entries {
            let location = prefix.clone().join(name.as_str());
            if md.is_dir() {
                self.walk(&dir.join(&name), &location, out);
            } else {
                out.push(Ok(object_meta(location, &md)));
            }
        }
    }
}

/// The entries of `dir` (whose path is `prefix`) with their metadata: none if it does not exist,
/// and without staging files or entries removed while the folder was read (another writer's
/// staging file, a block being deleted), as a listing of an object store would not show them.
fn entries(dir: &FsPath, prefix: &Path) -> Result<Vec<(String, fs::Metadata)>> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(prefix, e)),
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| io_error(prefix, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(STAGING) {
            continue;
        }
        match entry.metadata() {
            Ok(md) => out.push((name, md)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(prefix, e)),
        }
    }
    Ok(out)
}

/// A multipart upload into a local folder: parts are appended to a staging file as they come
/// (`put_part` is called in the object's order), and the file is renamed into place on
/// completion, so memory holds one part at a time however large the object.
#[derive(Debug)]
struct FolderUpload {
    location: Path,
    file: PathBuf,
    staged: PathBuf,
    /// The staging file, until the upload is completed or aborted.
    staging: Option<fs::File>,
    /// The first failed part's error: a later part, or the completion, fails with it too.
    failed: Option<String>,
}

impl FolderUpload {
    fn append(&mut self, data: &PutPayload) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(generic(&self.location, e));
        }
        let Some(f) = self.staging.as_mut() else {
            return Err(generic(&self.location, "the upload is finished"));
        };
        for chunk in data.iter() {
            if let Err(e) = f.write_all(chunk) {
                self.failed = Some(e.to_string());
                return Err(io_error(&self.location, e));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MultipartUpload for FolderUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let written = self.append(&data);
        Box::pin(std::future::ready(written))
    }

    async fn complete(&mut self) -> Result<PutResult> {
        if let Some(e) = &self.failed {
            return Err(generic(&self.location, e));
        }
        let Some(f) = self.staging.take() else {
            return Err(generic(&self.location, "the upload is finished"));
        };
        let md = f.metadata().map_err(|e| io_error(&self.location, e))?;
        drop(f);
        fs::rename(&self.staged, &self.file).map_err(|e| io_error(&self.location, e))?;
        Ok(PutResult {
            e_tag: Some(e_tag(&md)),
            version: None,
            extensions: Default::default(),
        })
    }

    async fn abort(&mut self) -> Result<()> {
        if self.staging.take().is_some() {
            fs::remove_file(&self.staged).map_err(|e| io_error(&self.location, e))?;
        }
        Ok(())
    }
}

impl Drop for FolderUpload {
    /// An upload dropped unfinished leaves no staging file behind.
    fn drop(&mut self) {
        if self.staging.take().is_some() {
            let _ = fs::remove_file(&self.staged);
        }
    }
}

impl std::fmt::Display for FolderStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FolderStore({})", self.root.display())
    }
}

fn modified(md: &fs::Metadata) -> DateTime<Utc> {
    md.modified()
        .map(DateTime::from)
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// A file's ETag: its inode, modification time and size. Every write stores a new file (staged,
/// then renamed), so the inode tells two writes apart even within the clock's resolution.
fn e_tag(md: &fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(md);
    #[cfg(not(unix))]
    let inode = 0u64;
    format!(
        "{inode:x}-{:x}-{:x}",
        modified(md).timestamp_nanos_opt().unwrap_or_default(),
        md.len()
    )
}

fn object_meta(location: Path, md: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        location,
        last_modified: modified(md),
        size: md.len(),
        e_tag: Some(e_tag(md)),
        version: None,
    }
}

fn read_range(f: &mut fs::File, range: &Range<u64>) -> std::io::Result<Bytes> {
    let len = usize::try_from(range.end - range.start).map_err(std::io::Error::other)?;
    let mut buf = vec![0; len];
    f.seek(SeekFrom::Start(range.start))?;
    f.read_exact(&mut buf)?;
    Ok(Bytes::from(buf))
}

fn not_found(location: &Path, why: &str) -> object_store::Error {
    object_store::Error::NotFound {
        path: location.to_string(),
        source: why.into(),
    }
}

fn generic(location: &Path, why: impl std::fmt::Display) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: format!("{location}: {why}").into(),
    }
}

fn io_error(location: &Path, e: std::io::Error) -> object_store::Error {
    match e.kind() {
        ErrorKind::NotFound => object_store::Error::NotFound {
            path: location.to_string(),
            source: Box::new(e),
        },
        _ => generic(location, e),
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
        let (staged, e_tag) = match payload.as_ref() {
            [one] => self.stage(&file, one),
            _ => self.stage(&file, &Bytes::from(payload)),
        }
        .map_err(|e| io_error(location, e))?;
        self.commit(&staged, &file, location, create)?;
        Ok(PutResult {
            e_tag: Some(e_tag),
            version: None,
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let file = self.file(location);
        let (staging, staged) = self
            .create_staged(&file)
            .map_err(|e| io_error(location, e))?;
        Ok(Box::new(FolderUpload {
            location: location.clone(),
            file,
            staged,
            staging: Some(staging),
            failed: None,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let (mut f, md) = self.open(location)?;
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
            read_range(&mut f, &range).map_err(|e| io_error(location, e))?
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream::once(async move { Ok(data) }).boxed()),
            meta,
            range,
            attributes: Attributes::default(),
            extensions: Default::default(),
        })
    }

    /// Reads the ranges from one open file (the default opens it once a range).
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let (mut f, md) = self.open(location)?;
        let size = md.len();
        ranges
            .iter()
            .map(|range| {
                if range.start > range.end || range.end > size {
                    return Err(generic(
                        location,
                        format!("range {range:?} is outside the object's {size} bytes"),
                    ));
                }
                read_range(&mut f, range).map_err(|e| io_error(location, e))
            })
            .collect()
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
        for (name, md) in entries(&self.file(&prefix), &prefix)? {
            let location = prefix.clone().join(name.as_str());
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
        let (staged, _) = self.stage(&file, &data).map_err(|e| io_error(to, e))?;
        self.commit(&staged, &file, to, options.mode == CopyMode::Create)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{GetRange, ObjectStoreExt};

    /// The names in the store's folder `dir`, staging files included.
    fn names_in(s: &FolderStore, dir: &str) -> Vec<String> {
        fs::read_dir(s.root.join(dir))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    }

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
        assert_eq!(names_in(&s, "t"), ["lease"]);
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

    #[tokio::test]
    async fn multipart_uploads_appear_whole_on_completion_and_leave_nothing_when_dropped() {
        let (_dir, s) = store();
        let p = Path::from("t/block/data.parquet");
        let mut upload = s.put_multipart(&p).await.expect("start");
        for part in [&b"abc"[..], b"", b"defg"] {
            upload
                .put_part(Bytes::copy_from_slice(part).into())
                .await
                .expect("part");
        }
        // Not visible, not listed, until completed.
        assert!(matches!(
            s.get(&p).await,
            Err(object_store::Error::NotFound { .. })
        ));
        let listed: Vec<_> = s.list(None).collect().await;
        assert!(listed.is_empty(), "{listed:?}");
        let done = upload.complete().await.expect("complete");
        let got = s.get(&p).await.expect("get");
        assert_eq!(got.meta.e_tag, done.e_tag);
        assert_eq!(&got.bytes().await.expect("bytes")[..], b"abcdefg");
        assert!(upload.complete().await.is_err(), "a second completion");

        let mut aborted = s.put_multipart(&Path::from("t/x")).await.expect("start");
        aborted
            .put_part(Bytes::from_static(b"part").into())
            .await
            .expect("part");
        aborted.abort().await.expect("abort");
        drop(s.put_multipart(&Path::from("t/y")).await.expect("start"));
        assert_eq!(names_in(&s, "t"), ["block"]);
    }

    #[tokio::test]
    async fn ranges_are_read_from_one_file_and_checked_against_its_size() {
        let (_dir, s) = store();
        let p = Path::from("t/data");
        s.put(&p, Bytes::from_static(b"0123456789").into())
            .await
            .expect("put");
        let got = s
            .get_ranges(&p, &[0..2, 8..10, 3..3])
            .await
            .expect("ranges");
        let got: Vec<&[u8]> = got.iter().map(|b| &b[..]).collect();
        assert_eq!(got, [&b"01"[..], b"89", b""]);
        assert!(matches!(
            s.get_ranges(&p, &[0..1, 2..11]).await,
            Err(object_store::Error::Generic { .. })
        ));
        assert!(matches!(
            s.get_ranges(&Path::from("t/none"), &[0..1, 1..2]).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn every_write_has_a_new_etag_even_with_the_same_size() {
        let (_dir, s) = store();
        let p = Path::from("t/index.json");
        let first = s
            .put(&p, Bytes::from_static(b"one").into())
            .await
            .expect("put");
        let second = s
            .put(&p, Bytes::from_static(b"two").into())
            .await
            .expect("put");
        assert_ne!(first.e_tag, second.e_tag);
        assert_eq!(s.head(&p).await.expect("head").e_tag, second.e_tag);
    }

    #[tokio::test]
    async fn listings_succeed_while_other_writers_create_and_delete() {
        let (_dir, s) = store();
        let s = std::sync::Arc::new(s);
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                futures::executor::block_on(async {
                    for i in 0..2000 {
                        let p = Path::from(format!("t/lease/{i}"));
                        let create = PutOptions {
                            mode: PutMode::Create,
                            ..Default::default()
                        };
                        s.put_opts(&p, Bytes::from_static(b"x").into(), create)
                            .await
                            .expect("create");
                        s.delete(&p).await.expect("delete");
                    }
                })
            })
        };
        let mut lists = 0;
        while !writer.is_finished() {
            let listed: Vec<_> = s.list(Some(&Path::from("t"))).collect().await;
            for m in listed {
                let m = m.expect("a listing while files come and go");
                assert!(!m.location.as_ref().contains(STAGING), "{}", m.location);
            }
            s.list_with_delimiter(Some(&Path::from("t/lease")))
                .await
                .expect("a delimited listing while files come and go");
            lists += 1;
        }
        writer.join().expect("writer");
        assert!(lists > 0);
    }
}
