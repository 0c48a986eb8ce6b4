//! A block's `data.parquet` as Parquet's async reader sees it: ranged reads from the object
//! store, with the file size known from `meta.json` so the footer costs one request. A file no
//! larger than that first read is fetched whole by it and served from memory from then on:
//! ingested blocks are mostly that small, and compaction opens a hundred of them at a time.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::listing::{DATA, block_path};
use crate::meta::BlockMeta;
use crate::store::Location;

/// Footer bytes fetched with the first read of a block: our footers are a few KiB, so one
/// request gets the whole Parquet metadata (and the page index, when asked for).
pub(crate) const FOOTER_HINT: usize = 64 << 10;

/// One block's data file in an object store.
#[derive(Clone, Debug)]
pub struct DataFile {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    /// The whole file, once the footer read fetched all of it.
    whole: Option<Bytes>,
}

impl DataFile {
    /// The data file of the block `meta` describes.
    pub fn of(loc: &Location, meta: &BlockMeta) -> Self {
        DataFile {
            store: loc.store.clone(),
            path: block_path(loc, &meta.tenant, &meta.block_id, DATA),
            size: meta.data_size,
            whole: None,
        }
    }

    /// `range` of the whole file held in memory, if it is held.
    fn held(&self, range: &Range<u64>) -> Option<parquet::errors::Result<Bytes>> {
        let whole = self.whole.as_ref()?;
        let fits = range.start <= range.end && range.end <= whole.len() as u64;
        Some(if fits {
            // Both ends are within `whole`, so they fit a usize.
            Ok(whole.slice(range.start as usize..range.end as usize))
        } else {
            Err(ParquetError::EOF(format!(
                "{range:?} is outside the {}-byte data file",
                whole.len()
            )))
        })
    }
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for DataFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        if let Some(held) = self.held(&range) {
            return futures::future::ready(held).boxed();
        }
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        if self.whole.is_some() {
            let held = ranges.iter().filter_map(|r| self.held(r)).collect();
            return futures::future::ready(held).boxed();
        }
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let mut reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(FOOTER_HINT));
            if let Some(options) = options {
                reader = reader
                    .with_metadata_options(Some(options.metadata_options().clone()))
                    .with_column_index_policy(options.column_index_policy())
                    .with_offset_index_policy(options.offset_index_policy());
            }
            let size = self.size;
            if size <= FOOTER_HINT as u64 {
                // The footer read would fetch the whole file anyway: keep it.
                let whole = self.store.get(&self.path).await.map_err(external)?;
                let whole = whole.bytes().await.map_err(external)?;
                if whole.len() as u64 != size {
                    return Err(ParquetError::General(format!(
                        "{} is {} bytes, its meta.json says {size}",
                        self.path,
                        whole.len()
                    )));
                }
                let md = reader.parse_and_finish(&whole)?;
                self.whole = Some(whole);
                return Ok(Arc::new(md));
            }
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}
