//! Probes of other processes through `/proc` (the `procfs` crate): memory,
//! CPU time, command lines, open files and TCP connections.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use procfs::net::TcpState;
use procfs::process::{all_processes, FDTarget, Process};

fn process(pid: u32) -> Result<Process> {
    let raw = i32::try_from(pid).with_context(|| format!("pid {pid} out of range"))?;
    Process::new(raw).with_context(|| format!("/proc/{pid}"))
}

/// Resident memory (`VmRSS`) of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = process(pid)?
        .status()
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let kib = status
        .vmrss
        .ok_or_else(|| anyhow!("no VmRSS line in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}

/// CPU time (user + system) a process has used so far, from
/// `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = process(pid)?
        .stat()
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    let hz = procfs::ticks_per_second().max(1);
    Ok(Duration::from_millis((stat.utime + stat.stime) * 1000 / hz))
}

/// Pids of live (non-zombie) processes whose command line (arguments joined
/// by spaces) contains `needle` (the test process itself excluded).
pub fn pids_matching(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(all) = all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter_map(|p| {
            let pid = u32::try_from(p.pid).ok().filter(|&pid| pid != me)?;
            // A zombie has an empty cmdline, so it never matches.
            let line = p.cmdline().ok()?.join(" ");
            line.contains(needle).then_some(pid)
        })
        .collect()
}

/// Pids of the running processes named `comm` (by `/proc/<pid>/stat`).
pub fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(all) = all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter(|p| p.stat().is_ok_and(|s| s.comm == comm))
        .filter_map(|p| u32::try_from(p.pid).ok())
        .collect()
}

/// Pids of the running `dockerd` processes.
pub fn dockerd_pids() -> Vec<u32> {
    pids_named("dockerd")
}

/// Pid of the one running `dockerd`.
pub fn dockerd_pid() -> Result<u32> {
    let found = dockerd_pids();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no dockerd process found"),
        many => bail!("several dockerd processes: {many:?}"),
    }
}

/// How many of `pid`'s open file descriptors point at `path`.
pub fn fds_open_on(pid: u32, path: &Path) -> Result<usize> {
    let fds = process(pid)?
        .fd()
        .with_context(|| format!("read /proc/{pid}/fd"))?;
    Ok(fds
        .flatten()
        .filter(|fd| matches!(&fd.target, FDTarget::Path(p) if p == path))
        .count())
}

/// The established IPv4 TCP connections a process holds, as
/// `(local, remote)`, from its fds and `/proc/<pid>/net/tcp`.
pub fn tcp_connections_of(pid: u32) -> Result<Vec<(SocketAddr, SocketAddr)>> {
    let p = process(pid)?;
    let inodes: HashSet<u64> = p
        .fd()
        .with_context(|| format!("read /proc/{pid}/fd"))?
        .flatten()
        .filter_map(|fd| match fd.target {
            FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect();
    let table = p
        .tcp()
        .with_context(|| format!("read /proc/{pid}/net/tcp"))?;
    Ok(table
        .into_iter()
        .filter(|e| e.state == TcpState::Established && inodes.contains(&e.inode))
        .map(|e| (e.local_address, e.remote_address))
        .collect())
}
