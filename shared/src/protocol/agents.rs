//! Agents: the hub's list, revocation, ping, info, key rotation.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::channel::DockerStatus;
use super::policy::AgentPolicy;
use crate::labels::Labels;

/// The payload of actions that take no arguments: `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `revoke_agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeAgent {
    /// The agent's name.
    pub name: String,
}

/// `revoke_agent`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentRevoked {
    /// The agent's name.
    pub name: String,
    /// Always true.
    pub revoked: bool,
    /// Whether its connection was cut.
    pub was_online: bool,
}

/// `rotate_key`. Clients send `{}` with `server`; the hub adds the nonce it
/// sends on to the agent, which signs it with its new key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// The agent, when the request names no `server` (older clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Set by the hub (at least 32 characters); a client's is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// The agent's answer to `rotate_key`: its pending key and proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RotateKeyProof {
    /// OpenSSH public key line of the new key.
    pub public_key: String,
    /// The nonce signed with the new key (base64).
    pub signature: String,
}

/// `rotate_key_commit` (hub -> agent): the store holds the new key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyCommit {
    /// The key the hub stored; must be the agent's pending key.
    pub public_key: String,
}

/// The agent's answer to `rotate_key_commit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RotateKeyCommitted {
    /// Always true.
    pub committed: bool,
}

/// `ping`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pong {
    /// The agent's clock, unix milliseconds.
    pub agent_time_ms: i64,
    /// Hub <-> agent round trip, added by the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_agent_rtt_ms: Option<f64>,
}

/// Answer to `info`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct AgentInfo {
    /// Host name.
    pub hostname: String,
    /// OS pretty name (from /etc/os-release).
    pub os: String,
    /// Kernel release.
    pub kernel: String,
    /// CPU architecture.
    pub arch: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Total memory in bytes.
    pub memory_total_bytes: u64,
    /// Available memory in bytes.
    pub memory_available_bytes: u64,
    /// Agent version.
    pub agent_version: String,
    /// Seconds since the agent process started.
    pub agent_uptime_s: u64,
    /// Seconds since the host booted.
    pub host_uptime_s: u64,
    /// Docker availability.
    pub docker: DockerStatus,
    /// The agent's own policy (absent from older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<AgentPolicy>,
    /// The buffer that keeps snapshots and events while the hub is out of
    /// reach (absent from older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<BufferStats>,
}

/// [`AgentInfo::buffer`]: what the agent holds for the hub and what it lost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct BufferStats {
    /// Bytes on disk now.
    pub bytes: u64,
    /// The bound (`--buffer-max-bytes`).
    pub max_bytes: u64,
    /// Records (snapshots and events) not acknowledged by the hub yet.
    pub records: u64,
    /// Snapshots thinned out to stay within the bound, since the agent started.
    pub dropped_snapshots: u64,
    /// Events dropped to stay within the bound, since the agent started.
    pub dropped_events: u64,
}

/// One agent in `list_agents`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct AgentSummary {
    /// Name (from the join token).
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Connected now.
    pub online: bool,
    /// Last time the hub heard from it (RFC 3339), if ever.
    pub last_seen: Option<String>,
    /// Agent version from its last hello.
    pub version: Option<String>,
    /// Address the connection came from.
    pub address: Option<String>,
    /// Host name from its last hello.
    pub hostname: Option<String>,
    /// Key fingerprint, `SHA256:...`.
    pub fingerprint: String,
    /// Enrolment time (RFC 3339).
    pub enrolled_at: String,
    /// Docker availability from its last hello.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerStatus>,
    /// Set while two agents share this agent's key: their connections kept
    /// replacing each other, so the hub keeps one and refuses the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<KeyConflict>,
    /// The agent's own policy from its hello, while it is online (absent
    /// for offline agents and agents too old to report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<AgentPolicy>,
    /// In a cluster of hubs, the hub holding the agent's connection while
    /// it is online (absent from a hub that is not in a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<HubRef>,
}

/// One hub of a cluster, as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct HubRef {
    /// The hub's id (random at each start).
    pub id: String,
    /// `HOST:PORT` agents dial.
    pub ssh_address: String,
    /// Its API's URL.
    pub api_url: String,
}

/// Two live connections with one agent key (a copied config, or a second
/// agent process on one config) kept replacing each other.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct KeyConflict {
    /// When the hub first refused a connection for it (RFC 3339).
    pub since: String,
    /// Where the connection the hub keeps comes from.
    pub kept: String,
    /// Where the last refused connection came from.
    pub refused: String,
    /// Connections refused so far.
    pub refusals: u64,
}

/// `rotate_key`'s answer to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeyRotated {
    /// The agent.
    pub name: String,
    /// `SHA256:...` of the key it had.
    pub old_fingerprint: String,
    /// `SHA256:...` of the key it has now.
    pub new_fingerprint: String,
    /// Whether the agent acknowledged the switch (else it finds out when the
    /// old key is refused on its next connection).
    pub agent_confirmed: bool,
}
