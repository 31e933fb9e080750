//! Views that last or look back: events, health history, the diagnostic stream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::docker::{ContainerHealth, HostSample};
use crate::labels::Labels;

/// `events`, narrowed by `server` or `selector` and optionally one container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsRequest {
    /// A container name or id prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// First replay the matching events the hub kept from this far back
    /// (`10m`-style text or seconds; the last 64 per agent, in memory, lost
    /// on a hub restart), oldest first, then go on live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Since>,
}

/// `history` of one container on `server`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    /// The container: name, full id or unique id prefix (the id as the
    /// agent's latest snapshot knows it).
    pub container: String,
    /// How far back: `1h`-style text or seconds (default one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Since>,
    /// How far back in seconds (older clients; `since` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_s: Option<i64>,
    /// `5s`, `1m` or `15m`; by default the finest tier that covers `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// A look-back as text (`24h`) or seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Since {
    /// Seconds.
    Seconds(i64),
    /// `30s`, `5m`, `1h`, `2d`.
    Text(String),
}

/// `diag_stream`: `bytes` bytes of `x` in `log` replies of `chunk` bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagStream {
    /// Total bytes (default 1 MiB, at most 10 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Bytes per reply (default 16 KiB, at most 256 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u64>,
    /// `hub`: the hub reads the stream itself and answers with a summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<DiagSink>,
}

/// Who reads a diagnostic stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiagSink {
    /// The hub, which answers with what arrived and how fast.
    Hub,
    /// The client (the default).
    Client,
}

/// `status`, for one server, a selector or every agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// Sums over each agent's containers (`totals`) instead of the list
    /// (`containers` empty): what a fleet overview of thousands of agents
    /// needs, at a few dozen bytes an agent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub summary: bool,
}

/// An agent's containers summed up (`status` with `summary`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContainerTotals {
    /// Containers running.
    pub running: u32,
    /// Containers in all.
    pub total: u32,
    /// Sum of their CPU figures, percent of one CPU; absent when none had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Sum of their memory use, bytes.
    pub mem_usage: u64,
}

impl ContainerTotals {
    /// The sums over `containers`.
    pub fn of(containers: &[ContainerHealth]) -> ContainerTotals {
        let mut t = ContainerTotals::default();
        for c in containers {
            t.total += 1;
            t.running += u32::from(c.state == "running");
            if let Some(cpu) = c.cpu_percent {
                t.cpu_percent = Some(t.cpu_percent.unwrap_or(0.0) + cpu);
            }
            t.mem_usage = t.mem_usage.saturating_add(c.mem_usage);
        }
        t
    }
}

/// One agent in `status`: its latest health snapshot, without asking it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusRow {
    /// The agent.
    pub server: String,
    /// Its labels.
    pub labels: Labels,
    /// Connected now.
    pub online: bool,
    /// Last time the hub heard from it (RFC 3339).
    pub last_seen: Option<String>,
    /// Whether its engine answered at the last snapshot.
    pub docker_available: Option<bool>,
    /// Why not.
    pub docker_error: Option<String>,
    /// When the snapshot was taken (RFC 3339).
    pub snapshot_at: Option<String>,
    /// How long the agent's sweep took.
    pub sweep_ms: Option<u64>,
    /// Its containers at the snapshot.
    pub containers: Vec<ContainerHealth>,
    /// The host's CPU, memory and load at the snapshot; absent without a
    /// snapshot or from an agent older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostSample>,
    /// With `summary`: the containers summed up (and `containers` empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<ContainerTotals>,
    /// In a cluster of hubs, the id of the hub holding the agent while it
    /// is online (its snapshot is that hub's: empty here until hubs share them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
}

/// `history`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryAnswer {
    /// The agent.
    pub server: String,
    /// The container.
    pub container: String,
    /// Seconds per point.
    pub resolution_s: i64,
    /// Oldest first.
    pub points: Vec<HistoryPoint>,
}

/// One point of a container's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryPoint {
    /// Bucket start, Unix seconds (`t` before the `_s` rule; still read).
    #[serde(alias = "t")]
    pub t_s: i64,
    /// Samples in the bucket.
    pub samples: i64,
    /// Mean CPU percent (none when no sample in the bucket had a CPU figure).
    pub cpu_avg: Option<f64>,
    /// Max CPU percent.
    pub cpu_max: Option<f64>,
    /// Mean memory bytes.
    pub mem_avg: u64,
    /// Max memory bytes.
    pub mem_max: u64,
    /// Memory limit.
    pub mem_limit: u64,
    /// Network bytes received at the bucket's last sample.
    pub net_rx: u64,
    /// Network bytes sent.
    pub net_tx: u64,
    /// Restart count at the last sample.
    pub restarts: i64,
    /// State at the last sample.
    pub state: String,
    /// Health at the last sample.
    pub health: Option<String>,
}

/// `diag_stream` with `sink: "hub"`: what reached the hub and how fast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiagSummary {
    /// Bytes of the log replies' data as the agent encoded it.
    pub data_bytes: u64,
    /// Log replies.
    pub replies: u64,
    /// From the request to the end.
    pub seconds: f64,
    /// `data_bytes` per second, in MB.
    pub mb_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_what_the_containers_report() {
        let c = |state: &str, cpu: Option<f64>, mem: u64| ContainerHealth {
            state: state.into(),
            cpu_percent: cpu,
            mem_usage: mem,
            ..Default::default()
        };
        let t = ContainerTotals::of(&[
            c("running", Some(1.5), 100),
            c("exited", None, 0),
            c("running", Some(2.0), 50),
        ]);
        assert_eq!((t.running, t.total, t.mem_usage), (2, 3, 150));
        assert_eq!(t.cpu_percent, Some(3.5));
        assert_eq!(
            ContainerTotals::of(&[c("exited", None, 0)]).cpu_percent,
            None
        );
        // `{}` still reads as the full status; `summary` only when asked.
        let full: StatusRequest = serde_json::from_str("{}").unwrap();
        assert!(!full.summary);
        assert!(serde_json::from_str::<StatusRequest>(r#"{"sumary":true}"#).is_err());
    }
}
