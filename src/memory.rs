//! Process-wide memory settings: the global allocator and transparent huge pages.

/// mimalloc for every binary, test and benchmark that links paykeep: glibc malloc's arena
/// locks and consolidation showed up as about an eighth of the CPU profile of the load
/// benchmark (many small allocations across threads in sled, hyper and the actors).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`,
/// prctl(2)); later page faults map 4 KiB pages. Idempotent; an error (a kernel without
/// THP) is ignored, since there is then nothing to turn off.
///
/// Why: sled allocates a fresh segment-sized log buffer (512 KiB) each time its log rolls to
/// a new segment, and mimalloc `madvise`s its large regions `MADV_HUGEPAGE`. The first write
/// into such a buffer faulted in and zeroed a 2 MiB huge page, on this VM in milliseconds of
/// CPU, inside a sled insert (then the committer's; today the applier thread's). About 100 single inserts per load run took 4–10
/// ms; with THP off, 7 did (BENCHMARKS.md, "Huge pages").
pub fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "transparent huge pages could not be turned off"
        );
    }
}
