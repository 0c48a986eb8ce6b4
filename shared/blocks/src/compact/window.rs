//! Reading one merge input in windows of rows. A Parquet stream fetches every selected page
//! of a row group at once; reading a row group as a whole would hold a whole input block's
//! column chunks per input, so memory would grow with block size. Each window is a row
//! selection over the file's offset index, which fetches only the pages the window touches:
//! memory per input is set by the window and the page size, not by the block.

use arrow_array::RecordBatch;
use futures::StreamExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::file::metadata::PageIndexPolicy;

use crate::BlockError;
use crate::data_file::DataFile;
use crate::meta::BlockMeta;
use crate::store::Location;

/// One input block read window by window.
pub(super) struct Windowed {
    file: DataFile,
    metadata: ArrowReaderMetadata,
    window_rows: usize,
    batch_rows: usize,
    row_group: usize,
    offset: usize,
    stream: Option<ParquetRecordBatchStream<DataFile>>,
}

impl Windowed {
    /// Opens `meta`'s data file: one read of its footer and page index.
    pub(super) async fn open(
        loc: &Location,
        meta: &BlockMeta,
        window_rows: usize,
        batch_rows: usize,
    ) -> Result<Self, BlockError> {
        let mut file = DataFile::of(loc, meta);
        let metadata = ArrowReaderMetadata::load_async(
            &mut file,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
        )
        .await?;
        Ok(Windowed {
            file,
            metadata,
            window_rows: window_rows.max(1),
            batch_rows: batch_rows.max(1),
            row_group: 0,
            offset: 0,
            stream: None,
        })
    }

    /// Whether `column` is null in every row of the block, by its footer's statistics
    /// (`false` where a row group has none).
    pub(super) fn all_null(&self, column: &str) -> bool {
        self.metadata.metadata().row_groups().iter().all(|rg| {
            rg.columns()
                .iter()
                .find(|c| c.column_path().string() == column)
                .and_then(|c| c.statistics())
                .and_then(|st| st.null_count_opt())
                .is_some_and(|nulls| i64::try_from(nulls).is_ok_and(|n| n == rg.num_rows()))
        })
    }

    /// The next batch of rows, in stored order; `None` at the end.
    pub(super) async fn next(&mut self) -> Result<Option<RecordBatch>, BlockError> {
        loop {
            if let Some(stream) = &mut self.stream {
                match stream.next().await {
                    Some(batch) => return Ok(Some(batch?)),
                    None => self.stream = None,
                }
            }
            let groups = self.metadata.metadata().row_groups();
            let Some(group) = groups.get(self.row_group) else {
                return Ok(None);
            };
            let rows = usize::try_from(group.num_rows()).unwrap_or(0);
            if self.offset >= rows {
                self.row_group += 1;
                self.offset = 0;
                continue;
            }
            let take = self.window_rows.min(rows - self.offset);
            let selection = RowSelection::from(vec![
                RowSelector::skip(self.offset),
                RowSelector::select(take),
            ]);
            self.stream = Some(
                ParquetRecordBatchStreamBuilder::new_with_metadata(
                    self.file.clone(),
                    self.metadata.clone(),
                )
                .with_row_groups(vec![self.row_group])
                .with_row_selection(selection)
                .with_batch_size(self.batch_rows)
                .build()?,
            );
            self.offset += take;
        }
    }
}
