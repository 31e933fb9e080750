//! The hub's allocator: jemalloc (the `jemalloc` feature, on by default;
//! `main.rs` makes it the global allocator), with the settings below.
//!
//! Why: with thousands of agents pushing health snapshots, the hub makes and
//! frees a snapshot's strings every 5 s per agent, and glibc's malloc and
//! free (with its bin consolidation) were a third of the hub's CPU. Measured
//! with `nextdeploy-bench health --agents 2000 --containers 20 --seconds 60`
//! on the same build otherwise (docs/benchmarks.md, issue 20): glibc 5.25 us
//! of hub CPU per container point and 52.0 KiB RSS per agent; jemalloc with
//! its defaults 3.73 us but 64.1 KiB (eight arenas, dirty pages kept for 10 s);
//! with [`MALLOC_CONF`] 4.06 us and 48.4 KiB. mimalloc, tried before, gave
//! 8.22 against glibc's 9.03 us but 264.5 KiB against 70.3 (session notes of
//! 2026-12-04). `tikv-jemallocator` is the binding rustc and TiKV ship with.

/// jemalloc's settings, read at its start from this symbol: one arena (the
/// hub's two worker threads share it; each keeps its own cache of small
/// sizes up to 1 KiB), and pages freed are given back to the kernel within
/// half a second instead of ten.
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: jemalloc reads this NUL-terminated string once, at its start; it
// is immutable and lives for the whole process.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 62] =
    b"narenas:1,tcache_max:1024,dirty_decay_ms:500,muzzy_decay_ms:0\0";
