//! Smaller footers for small blocks. parquet-rs writes, for every column chunk, parts of the
//! file metadata that the format makes optional and no reader of a block needs: per-page
//! encoding statistics, size statistics (unencoded byte counts, level histograms) and the
//! deprecated copies of integer min/max. In a block of a few hundred spans they are about a
//! sixth of the footer (~0.8 bytes per span, BENCHMARKS.md). This rewrites the footer without
//! them; the data pages, the schema, the kept statistics and every offset stay as they were.

use parquet::errors::ParquetError;
use parquet::file::FOOTER_SIZE;
use parquet::file::metadata::{
    ColumnChunkMetaData, FooterTail, ParquetMetaData, ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::file::statistics::Statistics;

/// Replaces the footer at the end of `file`, a whole Parquet file described by `metadata`,
/// with one without the optional parts above. A file with a page index is left as it is:
/// its index offsets would have to be rewritten as well, and only large blocks have one.
pub(crate) fn slim(file: &mut Vec<u8>, metadata: ParquetMetaData) -> Result<(), ParquetError> {
    let columns = || metadata.row_groups().iter().flat_map(|rg| rg.columns());
    if columns().any(|c| c.offset_index_offset().is_some() || c.column_index_offset().is_some()) {
        return Ok(());
    }
    let tail = FooterTail::try_from(&file[file.len().saturating_sub(FOOTER_SIZE)..])?;
    let start = file
        .len()
        .checked_sub(tail.metadata_length() + FOOTER_SIZE)
        .ok_or_else(|| ParquetError::General("footer longer than the file".into()))?;
    let mut builder = metadata.into_builder();
    let groups = builder
        .take_row_groups()
        .into_iter()
        .map(slim_row_group)
        .collect::<Result<Vec<_>, _>>()?;
    let slimmed = builder.set_row_groups(groups).build();
    file.truncate(start);
    ParquetMetaDataWriter::new(&mut *file, &slimmed).finish()
}

fn slim_row_group(group: RowGroupMetaData) -> Result<RowGroupMetaData, ParquetError> {
    let mut builder = group.into_builder();
    let columns = builder
        .take_columns()
        .into_iter()
        .map(slim_column)
        .collect::<Result<Vec<_>, _>>()?;
    builder.set_column_metadata(columns).build()
}

fn slim_column(column: ColumnChunkMetaData) -> Result<ColumnChunkMetaData, ParquetError> {
    let statistics = column.statistics().cloned().map(without_deprecated_min_max);
    let mut builder = column
        .into_builder()
        .clear_page_encoding_stats()
        .set_unencoded_byte_array_data_bytes(None)
        .set_repetition_level_histogram(None)
        .set_definition_level_histogram(None);
    if let Some(statistics) = statistics {
        builder = builder.set_statistics(statistics);
    }
    builder.build()
}

/// Readers take min/max from `min_value`/`max_value` (with the file's column orders); the
/// deprecated `min`/`max` copies serve only readers from before 2018.
fn without_deprecated_min_max(statistics: Statistics) -> Statistics {
    match statistics {
        Statistics::Int32(s) => Statistics::Int32(s.with_backwards_compatible_min_max(false)),
        Statistics::Int64(s) => Statistics::Int64(s.with_backwards_compatible_min_max(false)),
        other => other,
    }
}
