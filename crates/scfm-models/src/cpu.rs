//! Process settings for running the models on the default CPU backend.

/// Lets the C allocator keep freed memory for reuse instead of handing it back to the
/// operating system after every tensor; call once at the start of a program that runs
/// models on the CPU. Returns whether the settings took (glibc only; elsewhere this does
/// nothing and returns false).
///
/// burn-flex allocates a fresh buffer for the result of every tensor operation. glibc returns
/// large freed blocks to the kernel (blocks above its mmap threshold, and the free top of the
/// heap), so the next operation's buffer comes back as new pages: a page fault and a kernel
/// zeroing per 4 KiB. On Geneformer V1 with 8 cells of 256 tokens that was a fifth of the CPU
/// time (docs/benchmarks.md). This sets the mmap threshold to glibc's maximum (32 MiB) and
/// the trim threshold to 1 GiB; peak memory stays the same on the benchmark shapes. The
/// setting is process-wide, which is why the library never makes it on its own; the `scfm`
/// command line and the examples do.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator tunables; both values are in range.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_allocator_settings() {
        // glibc refuses an mmap threshold above its maximum; the settings must be in range.
        assert!(super::keep_freed_memory());
    }
}
