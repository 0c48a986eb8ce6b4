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
use crate::marks;
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
    /// Blocks found marked compacted, with the blocks each replaces.
    pub marked: Vec<(String, Vec<String>)>,
}

/// Whether [`resolve`] must look for marks: ids from a folder listing may name marked blocks
/// whose marking was interrupted (`meta.json` still beside `meta.compacted.json`); ids from a
/// full listing's live blocks cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marks {
    /// Look for `meta.compacted.json` beside each block read.
    Check,
    /// The ids are known not to be marked.
    Known,
}

/// The blocks `ids` names: taken from `known` where it has them, the rest read (meta and
/// bloom, concurrently). A block without `meta.json` is left out: marked compacted (reported),
/// or not committed yet.
pub async fn resolve<'a>(
    loc: &Location,
    tenant: &TenantId,
    ids: impl Iterator<Item = &'a str>,
    known: &HashMap<&str, IndexedBlock>,
    marks: Marks,
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
            let (meta, mark) = match marks {
                // Both at once: one round trip.
                Marks::Check => {
                    let (meta, mark) = futures::join!(
                        reader::read_meta(loc, tenant, &id),
                        marks::read_compacted(loc, tenant.as_str(), &id)
                    );
                    (meta?, mark?)
                }
                Marks::Known => (reader::read_meta(loc, tenant, &id).await?, None),
            };
            if let Some(mark) = mark {
                return Ok(Err((id, mark.meta.replaces)));
            }
            let Some(meta) = meta else {
                return Ok(Ok(None));
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
            Err(marked_block) => marked.push(marked_block),
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
    /// Blocks known to be marked compacted (never live again), with what each replaces.
    marked: HashMap<String, Vec<String>>,
    /// The version of the persisted index last read.
    index_version: Option<(Option<String>, i64, u64)>,
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
    /// oldest first, with their blooms. One listing of the tenant's top level (with the
    /// persisted index read beside it when this process has not seen the tenant yet, or after
    /// the listing shows `compact` rewrote it), plus reads of folders not seen before. Blocks
    /// marked by a run are dropped once that run has written its index; a compaction's inputs
    /// are hidden by its output's `replaces` from the moment the output is committed.
    pub async fn blocks(&self, tenant: &TenantId) -> Result<Arc<Vec<IndexedBlock>>, BlockError> {
        let cached = self.tenants.lock().await.get(tenant).cloned();
        let (root, persisted) = match &cached {
            Some(state) => {
                let root = reader::list_tenant_root(&self.loc, tenant).await?;
                // `compact` rewrote the index since: it names the blocks marked meanwhile.
                let changed = root.index.as_ref().map(version) != state.index_version;
                let persisted = if changed {
                    self.read_index(tenant).await
                } else {
                    None
                };
                (root, persisted)
            }
            None => {
                let (root, index) = futures::join!(
                    reader::list_tenant_root(&self.loc, tenant),
                    self.read_index(tenant)
                );
                (root?, index)
            }
        };
        let ids = &root.block_ids;
        let from_index = persisted.as_ref().map(from_persisted).unwrap_or_default();
        let mut known: HashMap<&str, IndexedBlock> = from_index
            .iter()
            .map(|b| (b.meta.block_id.as_str(), b.clone()))
            .collect();
        // A completed run marks a block's inputs before the block, so the blocks an index
        // lists as compacted need no `replaces` of their own.
        let mut marked: HashMap<String, Vec<String>> = persisted
            .iter()
            .flat_map(|p| p.compacted.iter().map(|c| (c.block_id.clone(), Vec::new())))
            .collect();
        if let Some(c) = &cached {
            known.extend(c.live.iter().map(|b| (b.meta.block_id.as_str(), b.clone())));
            for (id, replaces) in &c.marked {
                let entry = marked.entry(id.clone()).or_default();
                if entry.is_empty() {
                    entry.clone_from(replaces);
                }
            }
        }
        let present: HashSet<&str> = ids.iter().map(String::as_str).collect();
        marked.retain(|id, _| present.contains(id.as_str()));
        let candidates = ids
            .iter()
            .map(String::as_str)
            .filter(|id| !marked.contains_key(*id));
        let resolved = resolve(&self.loc, tenant, candidates, &known, Marks::Check).await?;
        marked.extend(resolved.marked);
        let visible: Vec<IndexedBlock> = listing::visible(
            &resolved.blocks,
            |b| &b.meta,
            marked.values().flatten().map(String::as_str),
        )
        .into_iter()
        .cloned()
        .collect();
        self.tenants.lock().await.insert(
            tenant.clone(),
            Arc::new(TenantState {
                live: resolved.blocks,
                marked,
                index_version: root.index.as_ref().map(version),
            }),
        );
        Ok(Arc::new(visible))
    }

    /// The persisted tenant index; `None` when absent or unreadable (then blocks are read).
    async fn read_index(&self, tenant: &TenantId) -> Option<TenantIndex> {
        TenantIndex::read(&self.loc, tenant)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(tenant = %tenant, error = %e, "tenant index unreadable; reading blocks instead");
                None
            })
    }
}

/// What identifies one version of an object in a listing.
fn version(o: &object_store::ObjectMeta) -> (Option<String>, i64, u64) {
    (o.e_tag.clone(), o.last_modified.timestamp_micros(), o.size)
}
