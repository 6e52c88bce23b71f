//! Keeping freed large buffers from staying in the process: the memory budget bounds the bytes
//! the server holds for peers, and this makes the process's resident memory follow them.
//!
//! glibc's malloc serves an allocation of at least its mmap threshold from a mapping of its own,
//! given back to the system when freed. The threshold starts at 128 KiB but rises to the size of
//! the largest such block freed so far (up to 32 MiB): after the first 16 MiB frame is done with,
//! later ones come from malloc's arenas, which keep freed memory. A server that received frames
//! up to its budget on many threads could then stay hundreds of MiB above it for good. Setting
//! the threshold once fixes it where it is. Elsewhere (musl, other systems) this does nothing.

/// The environment variable through which glibc reads the threshold at start-up; when the
/// operator set it, their value stands.
const ENV: &str = "MALLOC_MMAP_THRESHOLD_";

/// Fixes malloc's mmap threshold at `bytes` for this process, unless `MALLOC_MMAP_THRESHOLD_`
/// set one. Returns whether it was set.
pub(crate) fn fix_mmap_threshold(bytes: usize) -> bool {
    if std::env::var_os(ENV).is_some() {
        return false;
    }
    set(bytes)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set(bytes: usize) -> bool {
    let Ok(bytes) = libc::c_int::try_from(bytes) else {
        return false;
    };
    // SAFETY: mallopt only changes a malloc parameter; glibc takes its own lock for it.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set(_bytes: usize) -> bool {
    false
}
