//! The tenant index the query side keeps while its process stays warm: every committed block's
//! `meta.json` and bloom filter. Refreshing costs one listing request plus the meta and bloom
//! of blocks not seen before, so a trace lookup reads the index, then only the blocks whose
//! bloom admits the trace — a fixed number of sequential round trips however many blocks exist.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tempest_core::TenantId;

use crate::BlockError;
use crate::bloom::Bloom;
use crate::meta::BlockMeta;
use crate::reader;
use crate::scan::Footer;
use crate::store::Location;

/// Blocks whose meta and bloom are fetched at once while refreshing.
const FETCH_CONCURRENCY: usize = 16;

/// One indexed block.
#[derive(Debug, Clone)]
pub struct IndexedBlock {
    /// Its `meta.json`.
    pub meta: BlockMeta,
    /// Its trace-id bloom filter.
    pub bloom: Bloom,
    /// Its data file's footer, read on first use and kept while the process stays warm.
    pub footer: Arc<Footer>,
}

/// Per-tenant block indexes over one location, refreshed on each use.
pub struct BlockIndex {
    loc: Location,
    tenants: tokio::sync::Mutex<HashMap<TenantId, Arc<Vec<IndexedBlock>>>>,
}

impl BlockIndex {
    /// An empty index over `loc`.
    pub fn new(loc: Location) -> Self {
        BlockIndex {
            loc,
            tenants: Default::default(),
        }
    }

    /// The location indexed.
    pub fn location(&self) -> &Location {
        &self.loc
    }

    /// `tenant`'s committed blocks, oldest first, with their blooms: one listing, plus reads
    /// of blocks committed since the last call. Blocks that disappeared drop out.
    pub async fn blocks(&self, tenant: &TenantId) -> Result<Arc<Vec<IndexedBlock>>, BlockError> {
        let ids = reader::list_block_ids(&self.loc, tenant).await?;
        let known: Arc<Vec<IndexedBlock>> = self
            .tenants
            .lock()
            .await
            .get(tenant)
            .cloned()
            .unwrap_or_default();
        let by_id: HashMap<&str, &IndexedBlock> = known
            .iter()
            .map(|b| (b.meta.block_id.as_str(), b))
            .collect();
        let mut blocks: Vec<IndexedBlock> = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match by_id.get(id.as_str()) {
                Some(b) => blocks.push((*b).clone()),
                None => missing.push(id),
            }
        }
        let loc = &self.loc;
        let mut fetched = futures::stream::iter(missing)
            .map(|id| async move {
                let Some(meta) = reader::read_meta(loc, tenant, &id).await? else {
                    // Not committed yet: looked at again next time.
                    return Ok(None);
                };
                let bloom = reader::read_bloom(loc, &meta).await?;
                Ok::<_, BlockError>(Some(IndexedBlock {
                    meta,
                    bloom,
                    footer: Arc::default(),
                }))
            })
            .buffer_unordered(FETCH_CONCURRENCY);
        while let Some(block) = fetched.next().await {
            blocks.extend(block?);
        }
        blocks.sort_by(|a, b| {
            (a.meta.start_time_unix_nano, &a.meta.block_id)
                .cmp(&(b.meta.start_time_unix_nano, &b.meta.block_id))
        });
        let blocks = Arc::new(blocks);
        self.tenants
            .lock()
            .await
            .insert(tenant.clone(), blocks.clone());
        Ok(blocks)
    }
}
