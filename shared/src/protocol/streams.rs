//! Views that last or look back: events, health history, the diagnostic stream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `events`, narrowed by `server` or `selector` and optionally one container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsRequest {
    /// A container name or id prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// `history` of one container on `server`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    /// The container's name.
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
