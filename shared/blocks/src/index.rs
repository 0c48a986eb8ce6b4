//! The tenant index the query side keeps while its process stays warm: every live block's
//! `meta.json` and bloom filter. Refreshing costs one listing request plus the meta and bloom
//! of blocks not seen before; a cold process reads the persisted index that `compact` writes
//! ([`TenantIndex`]) beside that listing instead of every block's meta and bloom. So a trace
//! lookup reads the index, then only the blocks whose bloom admits the trace — a fixed number
//! of sequential round trips however many blocks exist.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tempest_core::TenantId;

use crate::BlockError;
use crate::bloom::Bloom;
use crate::listing::{self, TenantListing};
use crate::meta::BlockMeta;
use crate::reader;
use crate::scan::Footer;
use crate::store::Location;
use crate::tenant_index::TenantIndex;

/// Blocks whose meta and bloom are fetched at once while refreshing.
const FETCH_CONCURRENCY: usize = 16;

/// One indexed block.
#[derive(Debug, Clone)]
pub struct IndexedBlock {
    /// Its `meta.json`.
    pub meta: BlockMeta,
    /// Its trace-id bloom filter.
    pub bloom: Arc<Bloom>,
    /// Its data file's footer, read on first use and kept while the process stays warm.
    pub footer: Arc<Footer>,
}

/// The blocks `ids` names, oldest first: taken from `known` where it has them, the rest read
/// (meta and bloom, concurrently). A block whose meta is gone by the time it is read (marked
/// since the listing) is left out.
pub async fn resolve<'a>(
    loc: &Location,
    tenant: &TenantId,
    ids: impl Iterator<Item = &'a str>,
    known: &HashMap<&str, IndexedBlock>,
) -> Result<Vec<IndexedBlock>, BlockError> {
    let mut blocks: Vec<IndexedBlock> = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match known.get(id) {
            Some(b) => blocks.push(b.clone()),
            None => missing.push(id.to_owned()),
        }
    }
    let mut fetched = futures::stream::iter(missing)
        .map(|id| async move {
            let Some(meta) = reader::read_meta(loc, tenant, &id).await? else {
                return Ok(None);
            };
            let bloom = reader::read_bloom(loc, &meta).await?;
            Ok::<_, BlockError>(Some(IndexedBlock {
                meta,
                bloom: Arc::new(bloom),
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
    Ok(blocks)
}

/// The blocks of a persisted index, as indexed blocks (an entry whose bloom does not parse is
/// left out, so it is read from its block instead).
pub fn from_persisted(index: &TenantIndex) -> Vec<IndexedBlock> {
    index
        .blocks
        .iter()
        .filter_map(|(meta, bloom)| {
            Some(IndexedBlock {
                meta: meta.clone(),
                bloom: Arc::new(Bloom::from_bytes(bloom).ok()?),
                footer: Arc::default(),
            })
        })
        .collect()
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

    /// `tenant`'s visible blocks (live, and not replaced by another live block), oldest first,
    /// with their blooms: one listing (with the persisted index beside it when this process
    /// has not seen the tenant yet), plus reads of blocks committed since.
    pub async fn blocks(&self, tenant: &TenantId) -> Result<Arc<Vec<IndexedBlock>>, BlockError> {
        let cached = self.tenants.lock().await.get(tenant).cloned();
        let (listing, persisted) = match &cached {
            Some(_) => (TenantListing::of(&self.loc, tenant).await?, Vec::new()),
            None => {
                let (listing, index) = futures::join!(
                    TenantListing::of(&self.loc, tenant),
                    TenantIndex::read(&self.loc, tenant)
                );
                let persisted = match index {
                    Ok(Some(index)) => from_persisted(&index),
                    Ok(None) => Vec::new(),
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, error = %e, "tenant index unreadable; reading blocks instead");
                        Vec::new()
                    }
                };
                (listing?, persisted)
            }
        };
        let mut known: HashMap<&str, IndexedBlock> = persisted
            .iter()
            .map(|b| (b.meta.block_id.as_str(), b.clone()))
            .collect();
        for b in cached.iter().flat_map(|c| c.iter()) {
            known.insert(b.meta.block_id.as_str(), b.clone());
        }
        let live = resolve(&self.loc, tenant, listing.live(), &known).await?;
        let visible: Vec<IndexedBlock> = listing::visible(&live, |b| &b.meta)
            .into_iter()
            .cloned()
            .collect();
        self.tenants
            .lock()
            .await
            .insert(tenant.clone(), Arc::new(live));
        Ok(Arc::new(visible))
    }
}
