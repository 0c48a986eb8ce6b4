//! What one listing of a tenant's prefix shows: which blocks are live (`meta.json`), which are
//! marked compacted (`meta.compacted.json`, waiting for deletion), and which are neither yet
//! (being written, or left behind by a crash). One paginated listing request answers all three,
//! so readers never fetch a block's meta only to find it is gone.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::TryStreamExt;
use object_store::ObjectMeta;
use object_store::path::Path;
use tempest_core::TenantId;

use crate::BlockError;
use crate::meta::BlockMeta;
use crate::store::Location;

/// A committed block's metadata (written last: the block exists once this does).
pub const META: &str = "meta.json";
/// The metadata of a block that compaction or retention has replaced (deleted after a grace
/// period).
pub const COMPACTED_META: &str = "meta.compacted.json";
/// The block's Parquet file.
pub const DATA: &str = "data.parquet";
/// The block's trace-id bloom filter.
pub const BLOOM: &str = "bloom";

/// The objects of one block folder.
#[derive(Debug, Clone, Default)]
pub struct ListedBlock {
    /// `meta.json` exists.
    pub has_meta: bool,
    /// `meta.compacted.json` exists.
    pub has_compacted_meta: bool,
    /// Every object in the folder.
    pub objects: Vec<ObjectMeta>,
}

impl ListedBlock {
    /// Committed and not marked compacted: readers use it.
    pub fn is_live(&self) -> bool {
        self.has_meta && !self.has_compacted_meta
    }

    /// Marked compacted (a `meta.json` left beside the mark by an interrupted marking does
    /// not make it live again).
    pub fn is_marked(&self) -> bool {
        self.has_compacted_meta
    }

    /// The newest modification time among its objects.
    pub fn last_modified(&self) -> Option<SystemTime> {
        self.objects
            .iter()
            .map(|o| SystemTime::from(o.last_modified))
            .max()
    }
}

/// One listing of a tenant: block folders by id, and the other objects under the tenant.
#[derive(Debug, Clone, Default)]
pub struct TenantListing {
    /// Block folders (names that are UUIDs), by id.
    pub blocks: BTreeMap<String, ListedBlock>,
    /// Objects under the tenant that are not in a block folder (the tenant index, leases).
    pub other: Vec<ObjectMeta>,
}

impl TenantListing {
    /// Lists everything under `<prefix>/<tenant>/` (one request per 1,000 objects).
    pub async fn of(loc: &Location, tenant: &TenantId) -> Result<Self, BlockError> {
        let root = loc.path(&[tenant.as_str()]);
        let objects: Vec<ObjectMeta> = loc.store.list(Some(&root)).try_collect().await?;
        let depth = root.parts().count();
        let mut listing = TenantListing::default();
        for object in objects {
            let parts: Vec<String> = object
                .location
                .parts()
                .skip(depth)
                .map(|p| p.as_ref().to_owned())
                .collect();
            match parts.as_slice() {
                [block, file] if uuid::Uuid::parse_str(block).is_ok() => {
                    let entry = listing.blocks.entry(block.clone()).or_default();
                    entry.has_meta |= file == META;
                    entry.has_compacted_meta |= file == COMPACTED_META;
                    entry.objects.push(object);
                }
                _ => listing.other.push(object),
            }
        }
        Ok(listing)
    }

    /// Ids of the live blocks.
    pub fn live(&self) -> impl Iterator<Item = &str> {
        self.blocks
            .iter()
            .filter(|(_, b)| b.is_live())
            .map(|(id, _)| id.as_str())
    }

    /// Ids of the blocks marked compacted.
    pub fn marked(&self) -> impl Iterator<Item = &str> {
        self.blocks
            .iter()
            .filter(|(_, b)| b.is_marked())
            .map(|(id, _)| id.as_str())
    }
}

/// The object path of `file` in block `block_id` of `tenant`.
pub fn block_path(loc: &Location, tenant: &str, block_id: &str, file: &str) -> Path {
    loc.path(&[tenant, block_id, file])
}

/// The live blocks readers use: those that no other live block replaces, nor any of
/// `marked_replaces` (what blocks known to be marked replaced). While a compaction's output is
/// committed but its inputs are not yet marked, both are live; the output's `replaces` hides
/// the inputs, so no span is returned twice. A marked block's inputs are hidden too: their
/// spans are in it, and so in whatever replaced it (or they are as old as it is, for retention).
pub fn visible<'a, T>(
    blocks: &'a [T],
    meta: impl Fn(&T) -> &BlockMeta,
    marked_replaces: impl Iterator<Item = &'a str>,
) -> Vec<&'a T> {
    let mut replaced: std::collections::HashSet<&str> = marked_replaces.collect();
    replaced.extend(
        blocks
            .iter()
            .flat_map(|b| meta(b).replaces.iter().map(String::as_str)),
    );
    blocks
        .iter()
        .filter(|b| !replaced.contains(meta(b).block_id.as_str()))
        .collect()
}
