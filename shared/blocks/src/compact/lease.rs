//! The compaction lease of a tenant: at most one compactor works on a tenant at a time, decided
//! by the object store's conditional create (`If-None-Match: *` on S3 and Azure, an exclusive
//! create on local disk), not by hope.
//!
//! Leases are a sequence of objects `<tenant>/compactor-lease/<seq>`; the highest one is the
//! lease. Taking it means creating the next sequence number, which only one contender can do.
//! A lease ends at its expiry (set past the holder's time budget) or when its holder writes an
//! expired successor. Only the local filesystem lacks compare-and-swap on an existing object,
//! which is why this is a sequence of creates rather than one object updated by ETag.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tempest_core::TenantId;

use crate::BlockError;
use crate::reader::corrupt;
use crate::store::Location;

/// The folder under a tenant that holds its lease objects.
pub const LEASE_FOLDER: &str = "compactor-lease";

/// What a lease object records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Who holds it.
    pub owner: String,
    /// Until when, Unix milliseconds.
    pub expires_at_unix_ms: u64,
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    loc: Location,
    tenant: TenantId,
    seq: u64,
    record: LeaseRecord,
}

/// The outcome of trying to take a lease.
#[derive(Debug)]
pub enum Acquired {
    /// Taken.
    Held(Lease),
    /// Another compactor holds it.
    Busy(LeaseRecord),
}

impl Lease {
    /// Tries to take `tenant`'s lease for `owner` until `now + ttl` (milliseconds).
    pub async fn acquire(
        loc: &Location,
        tenant: &TenantId,
        owner: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Acquired, BlockError> {
        let seqs = sequence(loc, tenant).await?;
        let next = match seqs.last() {
            Some(&top) => {
                if let Some(current) = read(loc, tenant, top).await?
                    && current.owner != owner
                    && current.expires_at_unix_ms > now_ms
                {
                    return Ok(Acquired::Busy(current));
                }
                top + 1
            }
            None => 0,
        };
        let record = LeaseRecord {
            owner: owner.to_owned(),
            expires_at_unix_ms: now_ms.saturating_add(ttl_ms),
        };
        if !create(loc, tenant, next, &record).await? {
            return Ok(Acquired::Busy(busy(loc, tenant, next).await?));
        }
        // A contender whose listing was older may have created a lower number after a newer
        // one was taken (old numbers are deleted); the highest number is the lease.
        let after = sequence(loc, tenant).await?;
        if let Some(&top) = after.last()
            && top > next
        {
            return Ok(Acquired::Busy(busy(loc, tenant, top).await?));
        }
        // Predecessors are history: keep the one before ours for diagnosis.
        for old in after.iter().filter(|&&s| s + 1 < next) {
            loc.delete_if_present(&path(loc, tenant, *old)).await?;
        }
        Ok(Acquired::Held(Lease {
            loc: loc.clone(),
            tenant: tenant.clone(),
            seq: next,
            record,
        }))
    }

    /// Fails unless the lease is still ours at `now_ms`: called before every write that
    /// changes what readers see.
    pub fn check(&self, now_ms: u64) -> Result<(), BlockError> {
        if now_ms < self.record.expires_at_unix_ms {
            Ok(())
        } else {
            Err(BlockError::LeaseExpired {
                tenant: self.tenant.to_string(),
            })
        }
    }

    /// Ends the lease early so the next compactor need not wait for its expiry.
    pub async fn release(self) -> Result<(), BlockError> {
        let ended = LeaseRecord {
            owner: self.record.owner.clone(),
            expires_at_unix_ms: 0,
        };
        // Losing this race only means someone else already holds the next lease.
        create(&self.loc, &self.tenant, self.seq + 1, &ended).await?;
        Ok(())
    }
}

fn path(loc: &Location, tenant: &TenantId, seq: u64) -> object_store::path::Path {
    loc.path(&[tenant.as_str(), LEASE_FOLDER, &format!("{seq:020}")])
}

/// The lease numbers present, ascending.
async fn sequence(loc: &Location, tenant: &TenantId) -> Result<Vec<u64>, BlockError> {
    let folder = loc.path(&[tenant.as_str(), LEASE_FOLDER]);
    let objects: Vec<_> = loc.store.list(Some(&folder)).try_collect().await?;
    let mut seqs: Vec<u64> = objects
        .iter()
        .filter_map(|o| o.location.filename()?.parse().ok())
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

async fn read(
    loc: &Location,
    tenant: &TenantId,
    seq: u64,
) -> Result<Option<LeaseRecord>, BlockError> {
    loc.read_json(&path(loc, tenant, seq)).await
}

/// The holder of lease `seq`, for reporting who won.
async fn busy(loc: &Location, tenant: &TenantId, seq: u64) -> Result<LeaseRecord, BlockError> {
    Ok(read(loc, tenant, seq).await?.unwrap_or(LeaseRecord {
        owner: "another compactor".into(),
        expires_at_unix_ms: 0,
    }))
}

/// Creates lease object `seq` unless it exists: `false` if another writer got there first.
async fn create(
    loc: &Location,
    tenant: &TenantId,
    seq: u64,
    record: &LeaseRecord,
) -> Result<bool, BlockError> {
    let json = serde_json::to_vec(record).map_err(|e| corrupt(tenant.as_str(), e))?;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match loc
        .store
        .put_opts(
            &path(loc, tenant, seq),
            PutPayload::from(Bytes::from(json)),
            opts,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
