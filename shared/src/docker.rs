//! Docker data as it travels: container rows, stats samples, health snapshots
//! (with the host's CPU and memory), events. Every figure comes from the
//! engine or the kernel.

pub use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::labels::Labels;

/// One container in `ps`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ContainerRow {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Image as the container was created from it.
    pub image: String,
    /// `running`, `exited`, ...
    pub state: String,
    /// Docker's status text, e.g. `Up 5 minutes (healthy)`.
    pub status: String,
    /// `healthy`, `unhealthy`, `starting`, or none without a healthcheck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// When it was created (RFC 3339; older agents sent Unix seconds).
    #[serde(deserialize_with = "crate::time::de_rfc3339")]
    pub created: String,
    /// Container labels.
    #[serde(default)]
    pub labels: Labels,
    /// The command it runs, as `docker ps` shows it.
    #[serde(default)]
    pub command: String,
    /// Ports as `docker ps` shows them: `0.0.0.0:8080->80/tcp`, or `80/tcp`
    /// when exposed but not published.
    #[serde(default)]
    pub ports: Vec<String>,
}

/// One stats sample of one container, computed as the docker CLI does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
pub struct StatsSample {
    /// Full id.
    pub id: String,
    /// Name.
    pub name: String,
    /// CPU percent of one core (200 = two cores busy); `None` on a first sample.
    pub cpu_percent: Option<f64>,
    /// CPU time used since the container started, nanoseconds (the engine's
    /// `cpu_usage.total_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_total_ns: Option<u64>,
    /// Memory in use minus inactive file cache, bytes.
    pub mem_usage: u64,
    /// Memory limit, bytes.
    pub mem_limit: u64,
    /// `mem_usage / mem_limit * 100`.
    pub mem_percent: f64,
    /// Network bytes received (all interfaces).
    pub net_rx: u64,
    /// Network bytes sent.
    pub net_tx: u64,
    /// Block bytes read.
    pub block_read: u64,
    /// Block bytes written.
    pub block_write: u64,
    /// Processes and threads.
    pub pids: u64,
    /// When the engine read it, Unix milliseconds.
    pub at_ms: i64,
}

// Its short strings are `CompactString`s, kept inline up to 24 bytes (and
// sent as JSON strings): the hub holds every agent's latest snapshot, and an
// allocation per field was a fifth of a 20-container snapshot's memory
// (docs/benchmarks.md, issue 20).
/// One container in a health snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
pub struct ContainerHealth {
    /// Full id.
    pub id: String,
    /// Name.
    pub name: CompactString,
    /// Image.
    pub image: CompactString,
    /// `running`, `exited`, ...
    pub state: CompactString,
    /// Healthcheck status, if the container has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<CompactString>,
    /// Docker's restart count.
    pub restarts: i64,
    /// When its current run started (RFC 3339); running containers only.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::time::de_rfc3339_opt_compact"
    )]
    pub started_at: Option<CompactString>,
    /// CPU percent over the last interval (running containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// CPU time the container used since it started, nanoseconds: a
    /// counter (Prometheus' `container_cpu_usage_seconds_total`); absent
    /// from agents older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_total_ns: Option<u64>,
    /// Memory as `docker stats` shows it.
    #[serde(default)]
    pub mem_usage: u64,
    /// Memory limit.
    #[serde(default)]
    pub mem_limit: u64,
    /// Network bytes received.
    #[serde(default)]
    pub net_rx: u64,
    /// Network bytes sent.
    #[serde(default)]
    pub net_tx: u64,
    /// Where CPU, memory and network came from: [`STATS_FROM_KERNEL`] (the
    /// container's cgroup and network namespace) or [`STATS_FROM_ENGINE`]
    /// (the engine's stats API); absent for a container that is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_from: Option<CompactString>,
}

/// [`ContainerHealth::stats_from`]: read from the kernel by the agent.
pub const STATS_FROM_KERNEL: &str = "kernel";
/// [`ContainerHealth::stats_from`]: the engine's stats API.
pub const STATS_FROM_ENGINE: &str = "engine";

/// What the agent pushes every health interval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
pub struct HealthSnapshot {
    /// Unix time of the sweep (`at_s` on the wire; older agents sent `at`).
    #[serde(rename = "at_s", alias = "at")]
    pub at: i64,
    /// Whether the engine answered.
    pub docker_available: bool,
    /// Why not, if not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_error: Option<String>,
    /// How long the sweep took, ms.
    pub sweep_ms: u64,
    /// Every visible container.
    pub containers: Vec<ContainerHealth>,
    /// The host's CPU, memory and load at the sweep; absent from agents
    /// older than the field (and where /proc could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostSample>,
    /// The agent's buffer sequence number (hub <-> agent only: agents that
    /// list `feature::BUFFER` number every snapshot and event; the hub
    /// skips one it has ingested already, and clears the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Taken while the agent's link was down and replayed after it came
    /// back: written into the history at its own time, never the live state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// The host's CPU and memory at one sweep, read by the agent from /proc (the
/// whole machine, not the agent's cgroup).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
pub struct HostSample {
    /// Busy share of all CPUs together since the previous sweep, 0 to 100
    /// (100 = every CPU busy): from /proc/stat, 100 × (1 − (idle + iowait) /
    /// total) of the jiffies that passed. Absent on the agent's first sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// CPUs the kernel counts in /proc/stat (the `cpuN` lines).
    pub cpus: u32,
    /// Memory in use, bytes: `MemTotal − MemAvailable` of /proc/meminfo
    /// (page cache the kernel can drop counts as free, as `free` shows it).
    pub mem_used_bytes: u64,
    /// Memory the kernel manages, bytes (`MemTotal`).
    pub mem_total_bytes: u64,
    /// Load average over 1 minute (/proc/loadavg): runnable plus
    /// uninterruptible tasks, not divided by `cpus`.
    #[serde(default)]
    pub load1: f64,
    /// Load average over 5 minutes.
    #[serde(default)]
    pub load5: f64,
    /// Load average over 15 minutes.
    #[serde(default)]
    pub load15: f64,
    /// Seconds since the host booted (/proc/uptime).
    #[serde(default)]
    pub uptime_s: u64,
}

/// A container event (or an agent online/offline event, with `kind` "agent").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
pub struct Event {
    /// `container` or `agent`.
    pub kind: String,
    /// `create`, `start`, `die`, `oom`, `kill`, `restart`, `health_status`,
    /// `stop`, `destroy`, or `online`/`offline` for agents.
    pub action: String,
    /// Unix milliseconds.
    pub time_ms: i64,
    /// Container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Exit code of a `die`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// New status of a `health_status` (`healthy`, `unhealthy`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Signal of a `kill`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The agent's buffer sequence number (hub <-> agent only, as
    /// [`HealthSnapshot::seq`]; the hub clears it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Happened while the agent's link was down, replayed after it came
    /// back; `time_ms` is when it happened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// Memory as `docker stats` shows it: usage minus inactive file cache
/// (cgroup v1 `total_inactive_file`, v2 `inactive_file`), never below zero.
pub fn mem_usage(usage: u64, stats: Option<&std::collections::HashMap<String, u64>>) -> u64 {
    let inactive = stats.and_then(|s| {
        s.get("total_inactive_file")
            .or_else(|| s.get("inactive_file"))
            .copied()
    });
    match inactive {
        Some(i) if i < usage => usage - i,
        _ => usage,
    }
}

/// CPU percent by the docker CLI's formula: container CPU delta over system
/// CPU delta, times online CPUs, times 100.
pub fn cpu_percent(
    cpu_now: u64,
    cpu_prev: u64,
    sys_now: u64,
    sys_prev: u64,
    online: u32,
) -> Option<f64> {
    let cpu_delta = cpu_now.checked_sub(cpu_prev)? as f64;
    let sys_delta = sys_now.checked_sub(sys_prev)? as f64;
    if sys_delta <= 0.0 {
        return None;
    }
    Some(cpu_delta / sys_delta * online.max(1) as f64 * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn memory_like_docker_cli() {
        let mut v1 = HashMap::new();
        v1.insert("total_inactive_file".to_string(), 100);
        assert_eq!(mem_usage(1000, Some(&v1)), 900);
        let mut v2 = HashMap::new();
        v2.insert("inactive_file".to_string(), 300);
        assert_eq!(mem_usage(1000, Some(&v2)), 700);
        v2.insert("inactive_file".to_string(), 3000);
        assert_eq!(mem_usage(1000, Some(&v2)), 1000);
        assert_eq!(mem_usage(1000, None), 1000);
    }

    #[test]
    fn snapshots_with_and_without_host_parse_and_an_absent_host_is_not_sent() {
        // An agent from before `host`: it parses, without one.
        let old = r#"{"at_s": 1800000000, "docker_available": true, "sweep_ms": 3,
            "containers": [{"id": "a", "name": "web", "image": "app:1",
                            "state": "running", "restarts": 0}]}"#;
        let s: HealthSnapshot = serde_json::from_str(old).unwrap();
        assert_eq!(s.host, None);
        assert_eq!(s.containers.len(), 1);
        // Without a host nothing new goes on the wire (an old hub sees the
        // shape it knows); with one, it travels whole.
        assert!(serde_json::to_value(&s).unwrap().get("host").is_none());
        let host = HostSample {
            cpu_percent: Some(37.5),
            cpus: 4,
            mem_used_bytes: 3 << 30,
            mem_total_bytes: 8 << 30,
            load1: 0.5,
            load5: 0.25,
            load15: 0.125,
            uptime_s: 86_400,
        };
        let new = HealthSnapshot {
            host: Some(host.clone()),
            ..s
        };
        let text = serde_json::to_string(&new).unwrap();
        let back: HealthSnapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back.host, Some(host));
        // A first sweep's host (no CPU figure yet) leaves the field out.
        let first = serde_json::json!({"cpus": 2, "mem_used_bytes": 1, "mem_total_bytes": 2});
        let h: HostSample = serde_json::from_value(first).unwrap();
        assert_eq!(h.cpu_percent, None);
        assert!(serde_json::to_value(&h)
            .unwrap()
            .get("cpu_percent")
            .is_none());
    }

    #[test]
    fn cpu_like_docker_cli() {
        // 1 s of one core over 2 s of system time on 2 CPUs -> 100 %.
        let p = cpu_percent(
            2_000_000_000,
            1_000_000_000,
            4_000_000_000,
            2_000_000_000,
            2,
        )
        .unwrap();
        assert!((p - 100.0).abs() < 1e-9);
        assert_eq!(cpu_percent(1, 2, 3, 4, 1), None);
        assert_eq!(cpu_percent(2, 1, 4, 4, 1), None);
    }

    /// What a 20-container snapshot costs in its frame (issue 20): the
    /// figures docs/benchmarks.md quotes, with CPU as computed and rounded
    /// to the hundredths the hub keeps (as the agent now sends it).
    #[test]
    fn a_twenty_container_snapshot_on_the_wire() {
        let snap = |round: bool| HealthSnapshot {
            at: 1_800_000_000,
            docker_available: true,
            sweep_ms: 4,
            containers: (0..20)
                .map(|i| {
                    let cpu = 3.0 + i as f64 / 7.0;
                    ContainerHealth {
                        id: format!("{:064x}", 0xabcdef_u64 * (i + 1)),
                        name: format!("shop-web-{i}").into(),
                        image: "registry.example.com/team/web:2024.11.3".into(),
                        state: "running".into(),
                        health: Some("healthy".into()),
                        restarts: 0,
                        started_at: Some("2026-11-30T08:12:44.123456789Z".into()),
                        cpu_percent: Some(if round {
                            (cpu * 100.0).round() / 100.0
                        } else {
                            cpu
                        }),
                        cpu_total_ns: Some(123_456_789_012 + i * 1_000_000),
                        mem_usage: 123_456_789 + i * 1000,
                        mem_limit: 2_147_483_648,
                        net_rx: 9_876_543_210 + i,
                        net_tx: 1_234_567_890 + i,
                        stats_from: Some(STATS_FROM_KERNEL.into()),
                    }
                })
                .collect(),
            ..Default::default()
        };
        let bytes = |s: &HealthSnapshot| crate::frame::encode(s).unwrap().len();
        let (before, after) = (bytes(&snap(false)), bytes(&snap(true)));
        eprintln!("20-container snapshot frame: {before} bytes, {after} with CPU rounded");
        assert!(after < before && after < 8 * 1024, "{before} {after}");
    }
}
