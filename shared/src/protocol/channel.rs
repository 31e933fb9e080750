//! Hub <-> agent: the frames the hub writes on an agent's SSH channels
//! ([`Downstream`]), the agent's [`Hello`], enrolment, and the names of the
//! channels that are not requests.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::labels::Labels;

/// SSH user name an enrolled agent logs in with. Identity comes from the key
/// alone; the name only tells the hub which conversation to expect.
pub const AGENT_USER: &str = "nextdeploy-agent";

/// SSH user name prefix for enrolment: `nextdeploy-enroll-<join token id>`.
pub const ENROLL_USER_PREFIX: &str = "nextdeploy-enroll-";

/// SSH user name with which an agent withdraws its own recent enrolment (an
/// install that failed after enrolling): a key accepted under this name has
/// been forgotten by the hub and its join token is usable again. No session
/// follows; the agent disconnects.
pub const WITHDRAW_USER: &str = "nextdeploy-withdraw";

/// How the hub's SSH disconnect message starts when it refuses a connection
/// because another live connection holds the same key (two agents sharing
/// one key, which would otherwise replace each other forever). The agent
/// logs the message and backs off for longer.
pub const KEY_CONFLICT_PREFIX: &str = "key conflict:";

/// Channels the hub opens that carry no client request: their first frame is
/// a [`Downstream::Request`] with one of these names.
pub mod channel_kind {
    /// The control channel: hello, heartbeats, one-shot requests.
    pub const CONTROL: &str = "control";
    /// The enrolment exchange.
    pub const ENROLL: &str = "enroll";
}

/// Capabilities an agent lists in its [`Hello`]; the hub uses a feature only
/// with agents that list it, so older agents keep working.
pub mod feature {
    /// One-shot requests (([`super::Action::is_control_request`])) may arrive on the
    /// control channel as [`super::Downstream::Request`] frames with an id of 1
    /// or more; the agent answers with one `result` or `error` carrying that id
    /// and honours [`super::Downstream::Cancel`].
    pub const CONTROL_REQUESTS: &str = "control_requests";
    /// `exec` requests, with [`super::Downstream::Input`] and
    /// [`super::Downstream::Resize`] frames on their channel.
    pub const EXEC: &str = "exec";
    /// Snapshots and events carry a buffer sequence number (`seq`); the
    /// agent keeps them on disk until the hub acknowledges them
    /// ([`super::Downstream::BufferAck`]) and replays what the hub lacks
    /// after a reconnection, marked `late`. Its hello names its buffer
    /// ([`super::Hello::buffer`]).
    pub const BUFFER: &str = "buffer";
}

/// The agent's on-disk buffer as its hello names it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BufferHello {
    /// Random id made with the buffer: a new id (a fresh agent, a lost
    /// buffer) makes the hub forget the sequence numbers it had.
    pub id: String,
    /// Snapshots thinned out of the buffer since the agent started.
    #[serde(default)]
    pub dropped_snapshots: u64,
    /// Events dropped from the buffer since the agent started.
    #[serde(default)]
    pub dropped_events: u64,
}

/// The control channel's opening payload (hub -> agent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ControlOpen {
    /// Heartbeat at least this often (seconds): three beats per hub timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_s: Option<u64>,
}

/// The enrolment channel's opening payload (hub -> agent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnrollOpen {
    /// The join token the agent logged in with (its user name's suffix).
    pub token_id: String,
}

/// The `data` of an agent's `heartbeat` on the control channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HeartbeatData {
    /// Counts up from 1; the hub echoes it.
    pub seq: u64,
}

/// The `data` of a `result` an agent pushes on its control channel (id 0):
/// the outcome of a deploy that finished while the hub was away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PushedOutcome {
    /// The deploy's outcome, as `deploy` answers it.
    pub deploy_outcome: super::deploy::DeployOutcome,
}

/// Hub -> agent frames on a channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum Downstream {
    /// The request this channel carries (always the first frame).
    Request {
        /// The hub's id for it.
        id: u64,
        /// What to do.
        action: String,
        /// Arguments.
        #[serde(default)]
        payload: Value,
    },
    /// The hub has delivered this many more bytes: the agent may send them.
    Credit {
        /// Bytes of credit granted.
        bytes: u32,
    },
    /// Exec channels: bytes for the command's stdin, within the input
    /// credit the agent granted (`credit` replies); `eof` closes stdin.
    Input {
        /// The bytes, base64.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        b64: String,
        /// Close stdin after them.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        eof: bool,
    },
    /// Exec channels with a TTY: the terminal's new size.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// The hub stored a deploy outcome the agent pushed (control channel).
    Ack {
        /// The deploy.
        deploy_id: String,
    },
    /// Control channel, agents with `feature::BUFFER`: the sequence numbers
    /// the hub has ingested from buffer `id`, as inclusive ranges, sorted.
    /// Sent once right after the hello (before any heartbeat answer), then
    /// whenever the hub has stored more; the agent drops what they cover
    /// and replays the rest.
    BufferAck {
        /// The buffer's id, from the hello.
        id: String,
        /// Inclusive `[first, last]` ranges.
        ranges: Vec<[u64; 2]>,
    },
    /// Answer to the agent's heartbeat on the control channel.
    Heartbeat {
        /// Echo of the agent's sequence number.
        seq: u64,
    },
    /// Control channel: the hub no longer waits for request `id` (timed out,
    /// client gone); the agent drops its work and sends nothing for it.
    Cancel {
        /// The hub's id of the request.
        id: u64,
    },
    /// Enrolment outcome.
    Outcome {
        /// Whether the enrolment was accepted.
        ok: bool,
        /// [`EnrollOutcome`] or an [`ErrorBody`].
        data: Value,
    },
}

/// What Docker looks like from the agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, JsonSchema)]
pub struct DockerStatus {
    /// Whether the engine answered.
    pub available: bool,
    /// Engine version, e.g. `20.10.24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Negotiated API version, e.g. `1.41`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Why it is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Agent -> hub, first frame on the control channel. Information, never identity:
/// the hub names the agent by its key alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hello {
    /// The host's name.
    pub hostname: String,
    /// Agent version.
    pub version: String,
    /// OS pretty name.
    pub os: String,
    /// Docker availability.
    pub docker: DockerStatus,
    /// Protocol features this agent supports (see [`feature`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// The agent's own policy (absent from older agents: the hub cannot
    /// tell, and leaves the decision to the agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<super::policy::AgentPolicy>,
    /// The agent's buffer (agents with `feature::BUFFER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<BufferHello>,
}

impl Hello {
    /// Whether the agent listed `feature`.
    pub fn supports(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// Agent -> hub answer to the `enroll` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollAnswer {
    /// The join token's secret part, sent only after the hub's key matched the pin.
    pub secret: String,
    /// The host's name (information).
    pub hostname: String,
}

/// Hub -> agent when enrolment succeeded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnrollOutcome {
    /// The agent's name as the hub records it.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hello_features_optional() {
        let old: Hello = serde_json::from_value(json!({
            "hostname": "h", "version": "0.1.0", "os": "x", "docker": {"available": false}
        }))
        .unwrap();
        assert!(!old.supports(feature::CONTROL_REQUESTS));
        assert_eq!(
            serde_json::to_value(&Downstream::Cancel { id: 9 }).unwrap(),
            json!({"frame": "cancel", "id": 9})
        );
    }

    #[test]
    fn downstream_tagged() {
        let d = Downstream::Credit { bytes: 10 };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"frame": "credit", "bytes": 10})
        );
    }
}
