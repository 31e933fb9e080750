//! Facts about the host, read from /proc and /etc: never made up.

use std::time::Instant;

use nextdeploy_shared::protocol::{AgentInfo, AgentPolicy, DockerStatus};

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The host's name.
pub fn hostname() -> String {
    let h = read_trim("/proc/sys/kernel/hostname");
    if h.is_empty() {
        "unknown".into()
    } else {
        h
    }
}

/// `PRETTY_NAME` from /etc/os-release.
pub fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string())
}

/// A `kB` field of /proc/meminfo, in bytes.
fn read_meminfo(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| crate::host::meminfo_bytes(&t, field))
        .unwrap_or(0)
}

/// Everything `info` reports, the agent's policy included.
pub fn collect(started: Instant, docker: DockerStatus, policy: &AgentPolicy) -> AgentInfo {
    let host_uptime_s = read_trim("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .map(|f| f as u64)
        .unwrap_or(0);
    AgentInfo {
        hostname: hostname(),
        os: os_name(),
        kernel: read_trim("/proc/sys/kernel/osrelease"),
        arch: std::env::consts::ARCH.to_string(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_total_bytes: read_meminfo("MemTotal"),
        memory_available_bytes: read_meminfo("MemAvailable"),
        agent_version: nextdeploy_shared::VERSION.to_string(),
        agent_uptime_s: started.elapsed().as_secs(),
        host_uptime_s,
        docker,
        policy: Some(policy.clone()),
        buffer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_host_facts() {
        let i = collect(
            Instant::now(),
            DockerStatus::default(),
            &AgentPolicy::default(),
        );
        assert!(i.cpus >= 1);
        assert!(i.memory_total_bytes > 0);
        assert!(!i.kernel.is_empty());
        assert!(i.host_uptime_s > 0);
    }
}
