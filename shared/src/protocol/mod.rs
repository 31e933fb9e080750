//! Messages. Two conversations use them:
//!
//! 1. WebSocket clients <-> hub: [`Request`] in, [`Reply`] out, in the seed's
//!    vocabulary (`{"id":7,"action":"ping","server":"prod","payload":{}}` ->
//!    `{"id":7,"type":"result","data":{...}}`). docs/protocol.md documents it;
//!    docs/protocol.schema.json is its JSON Schema, generated from these types.
//! 2. Hub <-> agent. Streams get one SSH channel per request, opened by the
//!    hub: the hub writes [`Downstream`] frames (the request first, then credit
//!    grants), the agent answers with [`Reply`] frames and ends with `end` or
//!    `error`; closing the channel cancels the request. One-shot requests
//!    ([`Action::is_control_request`]) travel on the control channel instead,
//!    tagged with a hub-chosen id, when the agent's [`Hello`] lists
//!    [`feature::CONTROL_REQUESTS`]: no channel to open, no extra round trip.
//!
//! Layout:
//! - [`action`]: the one list of actions ([`Action`], [`ActionKind`]): role,
//!   target and transport of each, and reading a payload by its action.
//! - [`envelope`]: [`Request`] and [`Reply`], with the log-chunk fast path.
//! - [`errors`]: the wire's [`ErrorCode`]s.
//! - [`channel`]: hub <-> agent frames, hello, enrolment.
//! - [`policy`]: the agent's own policy and its checks, run by the agent on
//!   every request and by the hub to refuse early.
//! - Payloads and answers by concern: [`agents`], [`containers`], [`deploy`],
//!   [`admin`], [`streams`], [`exec`], [`alerts`] (and its channels,
//!   [`alert_channels`]), [`alert_rules`] (silences, scope preview,
//!   `alert_apply`), [`cluster`] (several hubs on one store).
//! - [`schema`]: the JSON Schema of all of it.

pub mod action;
pub mod admin;
pub mod agents;
pub mod alert_channels;
pub mod alert_rules;
pub mod alerts;
pub mod channel;
pub mod cluster;
pub mod containers;
pub mod deploy;
pub mod envelope;
pub mod errors;
pub mod exec;
pub mod policy;
pub mod schema;
pub mod streams;

pub use action::{Action, ActionError, ActionKind, Role, Target, Transport};
pub use agents::{AgentInfo, AgentSummary, BufferStats, Empty};
pub use channel::{
    channel_kind, feature, BufferHello, ControlOpen, DockerStatus, Downstream, EnrollAnswer,
    EnrollOpen, EnrollOutcome, HeartbeatData, Hello, PushedOutcome, AGENT_USER, ENROLL_USER_PREFIX,
    KEY_CONFLICT_PREFIX, WITHDRAW_USER,
};
pub use envelope::{RawData, Reply, ReplyType, Request};
pub use errors::{ErrorBody, ErrorCode};
pub use policy::{AgentPolicy, PolicyDenied, PolicyRule};
