//! The C allocator's settings for a process that encodes blocks. An ingest call allocates and
//! frees a few MiB: the decoded spans, the Arrow columns, Parquet's pages and a zstd context per
//! compressed column. With glibc's defaults the freed top of the heap goes back to the kernel
//! once it passes a threshold that follows the largest block recently freed (a few hundred
//! KiB here), and the next call faults it in again, page by page and zeroed: 9% of an ingest
//! call's CPU, and `brk` and `munmap` another 5% (BENCHMARKS.md, Trace ingest, 2026-12-05:
//! the allocator). Keeping a call's worth of freed memory removes that.

/// Freed bytes at the top of a heap that glibc keeps rather than returns (`M_TRIM_THRESHOLD`):
/// several ingest calls' working memory. It holds for each of glibc's arenas (the main thread's
/// and one per thread that allocated at the same time as another): a process holds at most this
/// much more per arena than it uses, and only pages a call has touched are resident.
pub const KEEP_FREED: usize = 16 << 20;

/// Allocations from this size up get their own `mmap` (`M_MMAP_THRESHOLD`). Below it — a
/// request's decoded spans, a batch's Arrow columns, a block's pages — they reuse the heap; a
/// large request's body or block still goes back to the kernel whole when freed. Setting the
/// trim threshold stops glibc from moving this one by itself, and left at its 128 KiB start
/// decoding a request ran 10% slower (its span vectors are larger).
pub const OWN_MAPPING_FROM: usize = 4 << 20;

/// Makes the allocator keep up to [`KEEP_FREED`] bytes of freed memory for the next call, with
/// allocations below [`OWN_MAPPING_FROM`] served from the heap. Call it once, at the start of
/// `main`. True when the settings took effect (glibc on Linux).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_freed_memory() -> bool {
    let set = |param: libc::c_int, bytes: usize| {
        libc::c_int::try_from(bytes).is_ok_and(|bytes| {
            // SAFETY: `mallopt` takes two integers and changes only the allocator's
            // parameters, under the main arena's lock; it touches no memory of ours.
            unsafe { libc::mallopt(param, bytes) == 1 }
        })
    };
    set(libc::M_TRIM_THRESHOLD, KEEP_FREED) && set(libc::M_MMAP_THRESHOLD, OWN_MAPPING_FROM)
}

/// Elsewhere there is no `mallopt`: does nothing and returns false.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() -> bool {
    false
}
