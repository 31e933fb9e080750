//! Allocator settings for the hub and the agent.
//!
//! glibc's malloc hands memory back to the kernel as soon as the free space at
//! the top of a heap passes 128 KiB, and grows a heap by exactly what a request
//! needs. A bulk stream allocates and frees buffers of tens of KiB per packet
//! (russh's channel data, the frame decoder, the JSON reply), so each packet
//! paid for the kernel zeroing fresh pages: page faults and `memset` were a
//! tenth of the hub's CPU per MB streamed. Keeping up to 8 MiB free per heap
//! and growing by 1 MiB at a time ends that churn.
//!
//! The cost is bounded: at most 8 MiB of free memory kept per malloc arena
//! (glibc keeps one per thread that allocates, at most 8 per core), against
//! hundreds of MiB of live memory on a hub with thousands of agents. Measured
//! with `nextdeploy-bench quick --only throughput`: hub 1.75-1.90 -> 1.49-1.56
//! ms/MB, agent 1.42-1.49 -> 1.27-1.30 ms/MB; idle RSS per agent unchanged.

/// Free bytes a heap keeps before it is trimmed (glibc's default: 128 KiB).
pub const TRIM_THRESHOLD: i32 = 8 << 20;
/// Extra bytes a heap grows by (glibc's default: 128 KiB).
pub const TOP_PAD: i32 = 1 << 20;

/// Apply the settings. Call first thing in `main`, before any thread starts.
/// A no-op where the C library is not glibc.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and only changes malloc's tuning
    // parameters; it touches no memory of ours. It is called before other
    // threads exist.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
    }
}

/// What every binary's `main` does: [`tune`] first, then run `main` on a
/// multi-threaded tokio runtime (what `#[tokio::main]` builds). A runtime
/// that cannot start is reported and the process exits with 1.
pub fn run<F: std::future::Future>(main: F) -> F::Output {
    tune();
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(main),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    }
}
