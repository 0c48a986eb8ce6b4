//! `malloc::keep_freed_memory`: memory a call frees stays with the process for the next call
//! instead of going back to the kernel. Its own binary without the test harness, so it runs on
//! the main thread (whose heap glibc trims, as it does for a Lambda host's handler) and nothing
//! else allocates while it reads the process's resident memory.

/// The process's resident memory, from the kernel.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status");
    kb << 10
}

/// Allocates and touches 8 MiB in 4 KiB pieces (as a call's strings and pages are, each below
/// glibc's `mmap` threshold), then frees them: the resident bytes freeing gave back.
fn returned_by_a_call() -> u64 {
    let pieces: Vec<Box<[u8]>> = (0..2048u32)
        .map(|i| vec![(i % 255 + 1) as u8; 4096].into_boxed_slice())
        .collect();
    let held = resident_bytes();
    drop(pieces);
    held.saturating_sub(resident_bytes())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    const MIB: u64 = 1 << 20;
    print!("test freed_memory_stays_resident_for_the_next_call ... ");
    // glibc's defaults: the freed top of the heap goes back to the kernel.
    let before = returned_by_a_call();
    assert!(
        before >= 6 * MIB,
        "without the setting, freeing 8 MiB gave back only {before} bytes"
    );
    assert!(tempest_blocks::malloc::keep_freed_memory());
    let after = returned_by_a_call();
    assert!(
        after < MIB,
        "with the setting, freeing 8 MiB still gave back {after} bytes"
    );
    println!("ok (freeing 8 MiB gave back {before} bytes before, {after} after)");
}

/// Elsewhere the setting does nothing, and says so.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    assert!(!tempest_blocks::malloc::keep_freed_memory());
}
