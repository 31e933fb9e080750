//! Wire error codes: every failure a client sees is one of these.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Machine-readable error codes; `message` says the same for people.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message was not valid JSON or not a valid request.
    BadRequest,
    /// No such action.
    UnknownAction,
    /// No agent has that name.
    UnknownAgent,
    /// The agent is enrolled but not connected.
    AgentOffline,
    /// Both or neither of `server` and `selector`, or a selector matching nothing.
    Ambiguous,
    /// The caller's role does not allow this action.
    Forbidden,
    /// The agent's own policy (`[policy]` in its agent.toml) refuses it; the
    /// message names the rule (`policy.read_only`, ...).
    ForbiddenByPolicy,
    /// A bound was reached (streams, requests in flight).
    Busy,
    /// The agent did not answer in time.
    Timeout,
    /// A message or frame exceeded the size limit.
    TooLarge,
    /// The request was cancelled.
    Cancelled,
    /// The thing named does not exist (token id, ...).
    NotFound,
    /// The request conflicts with existing state (a name in use, ...).
    Conflict,
    /// The agent failed to carry out the request.
    AgentError,
    /// No visible container matches the name or id prefix.
    NoSuchContainer,
    /// An id prefix matches several containers.
    AmbiguousContainer,
    /// The agent cannot reach its Docker Engine.
    DockerUnavailable,
    /// The agent may not use the Docker socket.
    DockerPermissionDenied,
    /// The engine refused or failed the operation.
    DockerError,
    /// The hub failed.
    Internal,
}

/// The `data` of an `error` reply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}
