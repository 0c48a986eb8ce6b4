//! Retiring blocks: marking one compacted (Tempo's `meta.compacted.json`), and deleting a
//! marked block once its grace period is over. Each step is one object write, ordered so a
//! crash between any two leaves a state the next run finishes.

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::PutPayload;

use crate::BlockError;
use crate::listing::{COMPACTED_META, ListedBlock, META, block_path};
use crate::meta::{BlockMeta, CompactedMeta};
use crate::reader::corrupt;
use crate::store::Location;

/// Marks a block compacted: writes `meta.compacted.json`, then deletes `meta.json`. From the
/// first write on, readers no longer see the block; in-flight queries that already chose it
/// still find its data until it is deleted.
pub async fn mark_compacted(
    loc: &Location,
    meta: &BlockMeta,
    at_unix_ms: u64,
) -> Result<(), BlockError> {
    let mark = CompactedMeta {
        meta: meta.clone(),
        compacted_at_unix_ms: at_unix_ms,
    };
    let json = serde_json::to_vec_pretty(&mark).map_err(|e| corrupt(&meta.block_id, e))?;
    let (t, id) = (meta.tenant.as_str(), meta.block_id.as_str());
    loc.store
        .put(
            &block_path(loc, t, id, COMPACTED_META),
            PutPayload::from(Bytes::from(json)),
        )
        .await?;
    loc.delete_if_present(&block_path(loc, t, id, META)).await
}

/// A marked block's `meta.compacted.json`; `None` if it is gone.
pub async fn read_compacted(
    loc: &Location,
    tenant: &str,
    block_id: &str,
) -> Result<Option<CompactedMeta>, BlockError> {
    loc.read_json(&block_path(loc, tenant, block_id, COMPACTED_META))
        .await
}

/// Deletes every object of a block folder, its meta files last: a crash part-way leaves the
/// block marked (or uncommitted), and the next run deletes the rest.
pub async fn delete_block(loc: &Location, block: &ListedBlock) -> Result<(), BlockError> {
    let is_meta = |o: &&object_store::ObjectMeta| {
        matches!(o.location.filename(), Some(META) | Some(COMPACTED_META))
    };
    for object in block.objects.iter().filter(|o| !is_meta(o)) {
        loc.delete_if_present(&object.location).await?;
    }
    // `meta.json` before `meta.compacted.json`: a half-deleted block is never live again.
    let mut metas: Vec<_> = block.objects.iter().filter(is_meta).collect();
    metas.sort_by_key(|o| o.location.filename() == Some(COMPACTED_META));
    for object in metas {
        loc.delete_if_present(&object.location).await?;
    }
    Ok(())
}
