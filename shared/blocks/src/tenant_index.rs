//! The tenant index object `<tenant>/index.v1.zst`, rewritten by `compact`: every live block's
//! meta and bloom filter, and the blocks marked compacted with when. A reader starting cold
//! reads it beside its listing (one round trip) instead of every block's meta and bloom; the
//! listing stays the truth about which blocks exist, so a stale index costs reads, never
//! correctness.
//!
//! Layout (zstd-compressed): magic `TIX1`, a u32 LE length, that many bytes of JSON
//! ([`IndexHeader`]), then each block's bloom bytes in header order (`meta.bloom_size` each).

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::PutPayload;
use serde::{Deserialize, Serialize};
use tempest_core::TenantId;

use crate::BlockError;
use crate::meta::BlockMeta;
use crate::reader::corrupt;
use crate::store::Location;

/// The index object's name under the tenant.
pub const INDEX: &str = "index.v1.zst";
const MAGIC: &[u8; 4] = b"TIX1";

/// A block marked compacted, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactedEntry {
    /// Block id.
    pub block_id: String,
    /// When it was marked, Unix milliseconds.
    pub compacted_at_unix_ms: u64,
}

/// The JSON part of the index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct IndexHeader {
    created_at_unix_ms: u64,
    blocks: Vec<BlockMeta>,
    compacted: Vec<CompactedEntry>,
}

/// A tenant's index: live blocks with their bloom bytes, and marked blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantIndex {
    /// When it was written, Unix milliseconds.
    pub created_at_unix_ms: u64,
    /// Live blocks and their bloom filters' bytes.
    pub blocks: Vec<(BlockMeta, Bytes)>,
    /// Blocks marked compacted.
    pub compacted: Vec<CompactedEntry>,
}

impl TenantIndex {
    /// The stored form.
    pub fn encode(&self) -> Result<Vec<u8>, BlockError> {
        let header = IndexHeader {
            created_at_unix_ms: self.created_at_unix_ms,
            blocks: self.blocks.iter().map(|(m, _)| m.clone()).collect(),
            compacted: self.compacted.clone(),
        };
        let json = serde_json::to_vec(&header).map_err(|e| corrupt(INDEX, e))?;
        let len = u32::try_from(json.len()).map_err(|e| corrupt(INDEX, e))?;
        let mut raw = Vec::with_capacity(8 + json.len());
        raw.extend_from_slice(MAGIC);
        raw.extend_from_slice(&len.to_le_bytes());
        raw.extend_from_slice(&json);
        for (meta, bloom) in &self.blocks {
            if bloom.len() as u64 != meta.bloom_size {
                return Err(corrupt(&meta.block_id, "bloom size differs from meta"));
            }
            raw.extend_from_slice(bloom);
        }
        zstd::bulk::compress(&raw, 3).map_err(|e| corrupt(INDEX, e))
    }

    /// Parses the stored form; any inconsistency is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, BlockError> {
        // Bounded: an index of a million blocks is well under this.
        let raw = zstd::bulk::decompress(bytes, 1 << 30).map_err(|e| corrupt(INDEX, e))?;
        let rest = raw
            .strip_prefix(MAGIC)
            .ok_or_else(|| corrupt(INDEX, "bad magic"))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(INDEX, "truncated"))?;
        let len = u32::from_le_bytes(*len) as usize;
        let json = rest
            .get(..len)
            .ok_or_else(|| corrupt(INDEX, "truncated header"))?;
        let header: IndexHeader = serde_json::from_slice(json).map_err(|e| corrupt(INDEX, e))?;
        let mut blooms = Bytes::copy_from_slice(&rest[len..]);
        let mut blocks = Vec::with_capacity(header.blocks.len());
        for meta in header.blocks {
            let size = usize::try_from(meta.bloom_size).unwrap_or(usize::MAX);
            if size > blooms.len() {
                return Err(corrupt(INDEX, "truncated blooms"));
            }
            blocks.push((meta, blooms.split_to(size)));
        }
        if !blooms.is_empty() {
            return Err(corrupt(INDEX, "trailing bytes"));
        }
        Ok(TenantIndex {
            created_at_unix_ms: header.created_at_unix_ms,
            blocks,
            compacted: header.compacted,
        })
    }

    /// Reads `tenant`'s index; `None` if there is none. A corrupt index is reported and
    /// ignored by callers that can list instead.
    pub async fn read(loc: &Location, tenant: &TenantId) -> Result<Option<Self>, BlockError> {
        loc.get_if_present(&loc.path(&[tenant.as_str(), INDEX]))
            .await?
            .map(|bytes| Self::decode(&bytes))
            .transpose()
    }

    /// Writes `tenant`'s index (replacing the previous one).
    pub async fn write(&self, loc: &Location, tenant: &TenantId) -> Result<(), BlockError> {
        let bytes = self.encode()?;
        loc.store
            .put(
                &loc.path(&[tenant.as_str(), INDEX]),
                PutPayload::from(Bytes::from(bytes)),
            )
            .await?;
        Ok(())
    }
}
