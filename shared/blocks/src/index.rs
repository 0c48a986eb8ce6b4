//! The tenant index the query side keeps while its process stays warm: every live block's
//! `meta.json` and bloom filter. Refreshing costs one listing request plus the meta and bloom
//! of blocks not seen before; a cold process reads the persisted index that `compact` writes
//! ([`TenantIndex`]) beside that listing instead of every block's meta and bloom. So a trace
//! lookup reads the index, then only the blocks whose bloom admits the trace — a fixed number
//! of sequential round trips however many blocks exist.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use tempest_core::TenantId;

use crate::BlockError;
use crate::bloom::Bloom;
use crate::listing;
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

/// What [`resolve`] found.
pub struct Resolved {
    /// Committed blocks, oldest first.
    pub blocks: Vec<IndexedBlock>,
    /// Ids found marked compacted (no `meta.json`, a `meta.compacted.json`).
    pub marked: Vec<String>,
}

/// The blocks `ids` names: taken from `known` where it has them, the rest read (meta and
/// bloom, concurrently). A block without `meta.json` is left out: marked compacted (reported),
/// or not committed yet.
pub async fn resolve<'a>(
    loc: &Location,
    tenant: &TenantId,
    ids: impl Iterator<Item = &'a str>,
    known: &HashMap<&str, IndexedBlock>,
) -> Result<Resolved, BlockError> {
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
                let mark = listing::block_path(loc, tenant.as_str(), &id, listing::COMPACTED_META);
                return match loc.store.head(&mark).await {
                    Ok(_) => Ok(Err(id)),
                    Err(object_store::Error::NotFound { .. }) => Ok(Ok(None)),
                    Err(e) => Err(e.into()),
                };
            };
            let bloom = reader::read_bloom(loc, &meta).await?;
            Ok::<_, BlockError>(Ok(Some(IndexedBlock {
                meta,
                bloom: Arc::new(bloom),
                footer: Arc::default(),
            })))
        })
        .buffer_unordered(FETCH_CONCURRENCY);
    let mut marked = Vec::new();
    while let Some(block) = fetched.next().await {
        match block? {
            Ok(block) => blocks.extend(block),
            Err(id) => marked.push(id),
        }
    }
    blocks.sort_by(|a, b| {
        (a.meta.start_time_unix_nano, &a.meta.block_id)
            .cmp(&(b.meta.start_time_unix_nano, &b.meta.block_id))
    });
    Ok(Resolved { blocks, marked })
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

/// What the index knows of one tenant.
#[derive(Default)]
struct TenantState {
    /// Committed blocks (including those another block replaces).
    live: Vec<IndexedBlock>,
    /// Blocks known to be marked compacted: never live again.
    marked: HashSet<String>,
}

/// Per-tenant block indexes over one location, refreshed on each use.
pub struct BlockIndex {
    loc: Location,
    tenants: tokio::sync::Mutex<HashMap<TenantId, Arc<TenantState>>>,
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

    /// `tenant`'s visible blocks (committed, not marked, not replaced by another such block),
    /// oldest first, with their blooms. One listing of the tenant's block folders (with the
    /// persisted index beside it when this process has not seen the tenant yet), plus reads of
    /// folders not seen before. A block marked after it was first seen stays until its folder
    /// is deleted; a compaction's inputs are hidden by its output's `replaces` meanwhile.
    pub async fn blocks(&self, tenant: &TenantId) -> Result<Arc<Vec<IndexedBlock>>, BlockError> {
        let cached = self.tenants.lock().await.get(tenant).cloned();
        let (ids, persisted) = match &cached {
            Some(_) => (reader::list_block_ids(&self.loc, tenant).await?, None),
            None => {
                let (ids, index) = futures::join!(
                    reader::list_block_ids(&self.loc, tenant),
                    TenantIndex::read(&self.loc, tenant)
                );
                let index = index.unwrap_or_else(|e| {
                    tracing::warn!(tenant = %tenant, error = %e, "tenant index unreadable; reading blocks instead");
                    None
                });
                (ids?, index)
            }
        };
        let from_index = persisted.as_ref().map(from_persisted).unwrap_or_default();
        let mut known: HashMap<&str, IndexedBlock> = from_index
            .iter()
            .map(|b| (b.meta.block_id.as_str(), b.clone()))
            .collect();
        let mut marked: HashSet<String> = persisted
            .iter()
            .flat_map(|p| p.compacted.iter().map(|c| c.block_id.clone()))
            .collect();
        if let Some(c) = &cached {
            known.extend(c.live.iter().map(|b| (b.meta.block_id.as_str(), b.clone())));
            marked.extend(c.marked.iter().cloned());
        }
        let present: HashSet<&str> = ids.iter().map(String::as_str).collect();
        marked.retain(|id| present.contains(id.as_str()));
        let candidates = ids
            .iter()
            .map(String::as_str)
            .filter(|id| !marked.contains(*id));
        let resolved = resolve(&self.loc, tenant, candidates, &known).await?;
        marked.extend(resolved.marked);
        let visible: Vec<IndexedBlock> = listing::visible(&resolved.blocks, |b| &b.meta)
            .into_iter()
            .cloned()
            .collect();
        self.tenants.lock().await.insert(
            tenant.clone(),
            Arc::new(TenantState {
                live: resolved.blocks,
                marked,
            }),
        );
        Ok(Arc::new(visible))
    }
}
