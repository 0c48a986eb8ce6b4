//! A block's `data.parquet` as Parquet's async reader sees it: ranged reads from the object
//! store, with the file size known from `meta.json` so the footer costs one request.

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
}

impl DataFile {
    /// The data file of the block `meta` describes.
    pub fn of(loc: &Location, meta: &BlockMeta) -> Self {
        DataFile {
            store: loc.store.clone(),
            path: block_path(loc, &meta.tenant, &meta.block_id, DATA),
            size: meta.data_size,
        }
    }
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for DataFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
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
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}
