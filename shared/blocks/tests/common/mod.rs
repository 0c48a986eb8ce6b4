//! Helpers shared by the block tests.

#![allow(dead_code, clippy::expect_used)]

/// The metadata of every column chunk of a block's data file in the local folder `dir`, as its
/// footer records it.
pub fn column_chunks(
    dir: &std::path::Path,
    meta: &tempest_blocks::BlockMeta,
) -> Vec<parquet::file::metadata::ColumnChunkMetaData> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let path = dir
        .join(&meta.tenant)
        .join(&meta.block_id)
        .join("data.parquet");
    let reader =
        SerializedFileReader::new(std::fs::File::open(path).expect("open")).expect("parquet");
    reader
        .metadata()
        .row_groups()
        .iter()
        .flat_map(|rg| rg.columns().iter().cloned())
        .collect()
}
