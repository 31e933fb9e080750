//! Containers: list, inspect, lifecycle, logs, stats.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `ps`: docker's `all` and `filters` (e.g. `{"label": ["k=v"]}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PsRequest {
    /// Stopped containers too.
    #[serde(default)]
    pub all: bool,
    /// Filter names to lists of values, as the Docker API takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<BTreeMap<String, Vec<String>>>,
}

/// One container by name or id prefix: `inspect`, `start`, `rollback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerRef {
    /// Name or id prefix.
    pub container: String,
}

/// `stop` and `restart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// Name or id prefix.
    pub container: String,
    /// Seconds of grace before SIGKILL (0 to 3600; default the engine's 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// `kill`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillRequest {
    /// Name or id prefix.
    pub container: String,
    /// Signal name (default `SIGKILL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// The answer to `start`, `stop`, `restart` and `kill`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LifecycleDone {
    /// The container's full id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The action carried out.
    pub action: String,
}

/// `logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsRequest {
    /// Name or id prefix.
    pub container: String,
    /// Keep streaming new lines until cancelled.
    #[serde(default)]
    pub follow: bool,
    /// Lines from the end: a number or `"all"` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<Tail>,
    /// Only lines after this unix time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Only lines before this unix time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Prefix each line with the engine's RFC 3339 timestamp.
    #[serde(default)]
    pub timestamps: bool,
}

/// How many lines `logs` starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "TailWire", into = "TailWire")]
#[schemars(with = "TailWire")]
pub enum Tail {
    /// Every line.
    All,
    /// The last n lines.
    Lines(u64),
}

impl Tail {
    /// As the Docker API takes it.
    pub fn as_docker(self) -> String {
        match self {
            Tail::All => "all".into(),
            Tail::Lines(n) => n.to_string(),
        }
    }
}

/// `tail` on the wire: a number, or `"all"` or a number as text.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TailWire {
    /// Lines.
    Lines(u64),
    /// `"all"` or digits.
    Text(String),
}

impl TryFrom<TailWire> for Tail {
    type Error = String;
    fn try_from(w: TailWire) -> Result<Tail, String> {
        match w {
            TailWire::Lines(n) => Ok(Tail::Lines(n)),
            TailWire::Text(s) if s == "all" => Ok(Tail::All),
            TailWire::Text(s) => s
                .parse()
                .map(Tail::Lines)
                .map_err(|_| "tail must be a number or \"all\"".to_string()),
        }
    }
}

impl From<Tail> for TailWire {
    fn from(t: Tail) -> TailWire {
        match t {
            Tail::All => TailWire::Text("all".into()),
            Tail::Lines(n) => TailWire::Lines(n),
        }
    }
}

/// The `data` of a `log` reply: a chunk of one stream. Agents write it
/// without serde (see [`crate::json`]); this type documents it and reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogChunk {
    /// `stdout` or `stderr` (absent in `diag_stream`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The bytes, when they are UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The bytes in base64, when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b64: Option<String>,
    /// `diag_stream`'s filler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<String>,
}

/// `stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsRequest {
    /// One container (name or id prefix); every running one by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// A `stats` reply about every second until cancelled, instead of one `result`.
    #[serde(default)]
    pub stream: bool,
}

/// `rm`: remove a container, as `docker rm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveRequest {
    /// Name or id prefix.
    pub container: String,
    /// Remove it even when it runs (docker's `-f`).
    #[serde(default)]
    pub force: bool,
    /// Remove its anonymous volumes too (docker's `-v`).
    #[serde(default)]
    pub volumes: bool,
}

/// `rm`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Removed {
    /// The container's full id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Always true.
    pub removed: bool,
}

/// `images`: the images on the agent's engine, as `docker images`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImagesRequest {
    /// Intermediate images too (docker's `-a`).
    #[serde(default)]
    pub all: bool,
}

/// One image in `images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImageRow {
    /// `sha256:...`.
    pub id: String,
    /// `repo:tag` names; empty for a dangling image.
    pub repo_tags: Vec<String>,
    /// Unix time the image was created.
    pub created_s: i64,
    /// Bytes.
    pub size: i64,
    /// Containers using it (-1 when the engine did not count).
    pub containers: i64,
}

/// `pull`: fetch an image ahead of a deploy, with `progress` replies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// `repo:tag` or `repo@sha256:...`.
    pub image: String,
}

/// A `progress` reply of `pull`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PullProgress {
    /// The layer, when the engine names one.
    pub layer: String,
    /// The engine's status text (`Downloading`, `Pull complete`, ...).
    pub status: String,
    /// Bytes done of this layer.
    pub current: i64,
    /// Bytes of this layer (0 when unknown).
    pub total: i64,
}

/// `pull`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pulled {
    /// The image as asked.
    pub image: String,
    /// Its id now (`sha256:...`).
    pub id: String,
}
