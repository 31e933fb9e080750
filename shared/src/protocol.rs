//! Messages. Two conversations use them:
//!
//! 1. WebSocket clients <-> hub: [`Request`] in, [`Reply`] out, in the seed's
//!    vocabulary (`{"id":7,"action":"ping","server":"prod","payload":{}}` ->
//!    `{"id":7,"type":"result","data":{...}}`). docs/protocol.md documents it.
//! 2. Hub <-> agent. Streams get one SSH channel per request, opened by the
//!    hub: the hub writes [`Downstream`] frames (the request first, then credit
//!    grants), the agent answers with [`Reply`] frames and ends with `end` or
//!    `error`; closing the channel cancels the request. One-shot requests
//!    ([`is_control_request`]) travel on the control channel instead, tagged
//!    with a hub-chosen id, when the agent's [`Hello`] lists
//!    [`feature::CONTROL_REQUESTS`]: no channel to open, no extra round trip.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::labels::Labels;

/// SSH user name an enrolled agent logs in with. Identity comes from the key
/// alone; the name only tells the hub which conversation to expect.
pub const AGENT_USER: &str = "nextdeploy-agent";

/// SSH user name prefix for enrolment: `nextdeploy-enroll-<join token id>`.
pub const ENROLL_USER_PREFIX: &str = "nextdeploy-enroll-";

/// Action names. Hub-local actions are answered by the hub itself; agent
/// actions are routed to the agent named by `server` (or every agent matching
/// `selector`).
pub mod action {
    /// List enrolled agents with their state (hub).
    pub const LIST_AGENTS: &str = "list_agents";
    /// Round trip to an agent (agent).
    pub const PING: &str = "ping";
    /// Host and agent facts (agent).
    pub const INFO: &str = "info";
    /// Revoke an agent's key and cut its connection (hub, admin).
    pub const REVOKE_AGENT: &str = "revoke_agent";
    /// Create an API token (hub, admin).
    pub const CREATE_TOKEN: &str = "create_token";
    /// List API tokens, without secrets (hub, admin).
    pub const LIST_TOKENS: &str = "list_tokens";
    /// Revoke an API token (hub, admin).
    pub const REVOKE_TOKEN: &str = "revoke_token";
    /// Create a one-time join token (hub, admin).
    pub const CREATE_JOIN_TOKEN: &str = "create_join_token";
    /// List join tokens, without secrets (hub, admin).
    pub const LIST_JOIN_TOKENS: &str = "list_join_tokens";
    /// Delete a join token (hub, admin).
    pub const DELETE_JOIN_TOKEN: &str = "delete_join_token";
    /// Who the caller is: token id, name, role (hub).
    pub const WHOAMI: &str = "whoami";
    /// Admin, routed to one agent: the agent makes a new key and proves it;
    /// the hub swaps the keys (hub -> agent: `rotate_key` with a nonce, then
    /// `rotate_key_commit` once the store holds the new key).
    pub const ROTATE_KEY: &str = "rotate_key";
    /// Hub -> agent only: the store holds the new key; use it from now on.
    pub const ROTATE_KEY_COMMIT: &str = "rotate_key_commit";
    /// Cancel an earlier request of this connection: `payload.id` (hub).
    pub const CANCEL: &str = "cancel";
    /// Containers: `{all, filters: {label: ["k=v"]}}` (agent, viewer).
    pub const PS: &str = "ps";
    /// One container's inspect document: `{container}` (agent, viewer).
    pub const INSPECT: &str = "inspect";
    /// Logs: `{container, follow, tail, since, until, timestamps}` (agent, viewer).
    pub const LOGS: &str = "logs";
    /// Start a container: `{container}` (agent, operator).
    pub const START: &str = "start";
    /// Stop a container: `{container, timeout}` (agent, operator).
    pub const STOP: &str = "stop";
    /// Restart a container: `{container, timeout}` (agent, operator).
    pub const RESTART: &str = "restart";
    /// Kill a container: `{container, signal}` (agent, operator).
    pub const KILL: &str = "kill";
    /// Stats: `{container?, stream}` (agent, viewer).
    pub const STATS: &str = "stats";
    /// Live events of agents and their containers (hub, viewer).
    pub const EVENTS: &str = "events";
    /// Fleet overview from the latest health snapshots (hub, viewer).
    pub const STATUS: &str = "status";
    /// Stored health history of a container: `{container, since_s, resolution}` (hub, viewer).
    pub const HISTORY: &str = "history";
    /// Deploy a new image: `{image, container?, pull?, health_timeout_s?,
    /// keep_previous?, max_parallel?}` on `server` or `selector` (hub + agent, operator).
    pub const DEPLOY: &str = "deploy";
    /// Swap back to the container kept by `keep_previous`: `{container}` (agent, operator).
    pub const ROLLBACK: &str = "rollback";
    /// Deploy history, newest first: `{limit?}`, optional `server` (hub, viewer).
    pub const DEPLOYS_LIST: &str = "deploys_list";
    /// One deploy with its steps: `{id}` (hub, viewer).
    pub const DEPLOYS_SHOW: &str = "deploys_show";
    /// A synthetic stream of `log` replies (`payload.bytes`, `payload.chunk`):
    /// measures throughput and exercises flow control (agent, admin).
    pub const DIAG_STREAM: &str = "diag_stream";
    /// Hub -> agent only: the control channel (hello, heartbeats).
    pub const CONTROL: &str = "control";
    /// Hub -> agent only: enrolment exchange.
    pub const ENROLL: &str = "enroll";
}

/// Capabilities an agent lists in its [`Hello`]; the hub uses a feature only
/// with agents that list it, so older agents keep working.
pub mod feature {
    /// One-shot requests ([`super::is_control_request`]) may arrive on the
    /// control channel as [`super::Downstream::Request`] frames with an id of 1
    /// or more; the agent answers with one `result` or `error` carrying that id
    /// and honours [`super::Downstream::Cancel`].
    pub const CONTROL_REQUESTS: &str = "control_requests";
}

/// Whether `action` with `payload` is answered by exactly one `result` (or
/// `error`) and may therefore travel on the control channel: small answers,
/// no stream, nothing that outlives the connection.
pub fn is_control_request(action: &str, payload: &Value) -> bool {
    match action {
        action::PING | action::INFO | action::PS | action::INSPECT => true,
        action::START | action::STOP | action::RESTART | action::KILL => true,
        action::STATS => !payload
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        _ => false,
    }
}

/// A request from a WebSocket client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Chosen by the client; every reply to this request carries it.
    pub id: u64,
    /// What to do; see [`action`].
    pub action: String,
    /// Target agent by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Target agents by label selector (`env=prod,role=web`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Action arguments.
    #[serde(default)]
    pub payload: Value,
}

/// The kind of a reply.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReplyType {
    /// The answer to a one-shot request (or one agent's answer in a fan-out).
    Result,
    /// A log chunk of a log stream.
    Log,
    /// A health snapshot.
    Health,
    /// An event (container or agent).
    Event,
    /// Progress of a long operation.
    Progress,
    /// A stats sample.
    Stats,
    /// The request failed; `data` is an [`ErrorBody`]. Ends the request.
    Error,
    /// A stream (or fan-out) is complete. Ends the request.
    End,
    /// Agent -> hub on the control channel: who and what the agent is.
    Hello,
    /// Agent -> hub on the control channel: still alive.
    Heartbeat,
}

impl ReplyType {
    /// Whether this reply ends its request.
    pub fn is_terminal(self) -> bool {
        matches!(self, ReplyType::Error | ReplyType::End)
    }
}

/// A reply to a client, or a frame from an agent.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Reply {
    /// The request's id; `null` only for a message that had no readable id.
    pub id: Option<u64>,
    /// What this reply is.
    #[serde(rename = "type")]
    pub kind: ReplyType,
    /// In replies about an agent (fan-out, events): which one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The content.
    #[serde(default)]
    pub data: Value,
    /// The content as JSON text, relayed as it came; when set it is what is
    /// serialized as `data` (and `data` is `null`). The hub uses it for the
    /// bulk of a stream (log chunks), so their bytes are neither parsed into
    /// a [`Value`] nor escaped again on the way to the client.
    #[serde(skip)]
    pub raw_data: Option<RawData>,
}

/// Already-serialized JSON, compared by its text.
#[derive(Debug, Clone)]
pub enum RawData {
    /// As it came in a frame (the hub relaying an agent's log chunk).
    Parsed(Box<serde_json::value::RawValue>),
    /// Known to be JSON without serde: written by [`crate::json`] (an
    /// agent's log chunk), or checked by [`crate::json::flat_object`] (the
    /// hub reading one). Framed by
    /// [`frame::encode_reply`](crate::frame::encode_reply) and turned into
    /// text by [`frame::reply_text`](crate::frame::reply_text) without serde
    /// reading it again.
    Written(String),
}

impl RawData {
    /// The JSON text.
    pub fn text(&self) -> &str {
        match self {
            RawData::Parsed(raw) => raw.get(),
            RawData::Written(text) => text,
        }
    }
}

impl PartialEq for RawData {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl Serialize for Reply {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("Reply", 4)?;
        m.serialize_field("id", &self.id)?;
        m.serialize_field("type", &self.kind)?;
        match &self.server {
            Some(server) => m.serialize_field("server", server)?,
            None => m.skip_field("server")?,
        }
        match &self.raw_data {
            Some(RawData::Parsed(raw)) => m.serialize_field("data", raw)?,
            // Any serializer but the frame encoder's fast path: checked here.
            Some(RawData::Written(text)) => {
                let raw = serde_json::value::RawValue::from_string(text.clone())
                    .map_err(serde::ser::Error::custom)?;
                m.serialize_field("data", &raw)?
            }
            None => m.serialize_field("data", &self.data)?,
        }
        m.end()
    }
}

/// The envelope of a [`Reply`] frame with its `data` left as JSON text.
#[derive(Deserialize)]
struct RawReply<'a> {
    id: Option<u64>,
    #[serde(rename = "type")]
    kind: ReplyType,
    #[serde(default)]
    server: Option<String>,
    #[serde(borrow, default)]
    data: Option<&'a serde_json::value::RawValue>,
}

impl Reply {
    /// Parse a reply frame; `data` of the kinds in `keep_raw` stays JSON text
    /// ([`Reply::raw_data`]), everything else is parsed as usual.
    pub fn parse(frame: &[u8], keep_raw: &[ReplyType]) -> Result<Reply, serde_json::Error> {
        if keep_raw.contains(&ReplyType::Log) {
            if let Some(r) = Reply::parse_log_chunk(frame) {
                return Ok(r);
            }
        }
        let r: RawReply<'_> = serde_json::from_slice(frame)?;
        let mut reply = Reply::new(r.id, r.kind, Value::Null);
        reply.server = r.server;
        match r.data {
            Some(d) if keep_raw.contains(&r.kind) => {
                reply.raw_data = Some(RawData::Parsed(d.to_owned()))
            }
            Some(d) => reply.data = serde_json::from_str(d.get())?,
            None => {}
        }
        Ok(reply)
    }
}

impl Reply {
    /// A log chunk as agents frame it (`{"id":N,"type":"log","data":{...}}`,
    /// [`frame::encode_reply`](crate::frame::encode_reply)), its `data` a flat
    /// object of strings checked by [`crate::json::flat_object`] instead of
    /// serde; `None` for anything else (serde reads it then).
    fn parse_log_chunk(frame: &[u8]) -> Option<Reply> {
        let rest = frame.strip_prefix(b"{\"id\":")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        // serde_json's numbers: no leading zero, and a u64.
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        let id: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        let data = rest[digits..]
            .strip_prefix(b",\"type\":\"log\",\"data\":")?
            .strip_suffix(b"}")?;
        let text = crate::json::flat_object(data)?;
        Some(Reply::raw(
            Some(id),
            ReplyType::Log,
            RawData::Written(text.to_owned()),
        ))
    }

    /// A reply of `kind` with `data`.
    pub fn new(id: Option<u64>, kind: ReplyType, data: Value) -> Self {
        Reply {
            id,
            kind,
            server: None,
            data,
            raw_data: None,
        }
    }
    /// A reply of `kind` whose `data` is already JSON text.
    pub fn raw(id: Option<u64>, kind: ReplyType, data: RawData) -> Self {
        let mut r = Self::new(id, kind, Value::Null);
        r.raw_data = Some(data);
        r
    }
    /// A `result` reply.
    pub fn result(id: Option<u64>, data: Value) -> Self {
        Self::new(id, ReplyType::Result, data)
    }
    /// An `end` reply.
    pub fn end(id: Option<u64>) -> Self {
        Self::new(id, ReplyType::End, Value::Null)
    }
    /// An `error` reply.
    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(
            id,
            ReplyType::Error,
            serde_json::to_value(ErrorBody {
                code,
                message: message.into(),
            })
            .unwrap_or(Value::Null),
        )
    }
    /// Tag with the agent it concerns.
    pub fn with_server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }
}

/// Machine-readable error codes; `message` says the same for people.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
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
    /// The hub stored a deploy outcome the agent pushed (control channel).
    Ack {
        /// The deploy.
        deploy_id: String,
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
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
}

impl Hello {
    /// Whether the agent listed `feature`.
    pub fn supports(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// Answer to `info`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

/// One agent in `list_agents`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_in_seed_vocabulary() {
        let r: Request = serde_json::from_value(json!({
            "id": 7, "action": "logs", "server": "prod",
            "payload": {"container": "frontend", "follow": true}
        }))
        .unwrap();
        assert_eq!(r.id, 7);
        assert_eq!(r.server.as_deref(), Some("prod"));
        assert!(serde_json::from_value::<Request>(json!({"id": 1})).is_err());
        assert!(
            serde_json::from_value::<Request>(json!({"id": 1, "action": "x", "bogus": 1})).is_err()
        );
    }

    #[test]
    fn reply_shape() {
        let r = Reply::error(Some(3), ErrorCode::UnknownAgent, "no agent named x");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"id": 3, "type": "error", "data": {"code": "unknown_agent", "message": "no agent named x"}})
        );
        assert!(r.kind.is_terminal());
    }

    #[test]
    fn control_requests_are_one_shot_only() {
        assert!(is_control_request(action::PING, &Value::Null));
        assert!(is_control_request(action::STATS, &json!({"stream": false})));
        assert!(!is_control_request(action::STATS, &json!({"stream": true})));
        assert!(!is_control_request(action::LOGS, &json!({})));
        assert!(!is_control_request(action::DEPLOY, &json!({})));
        assert!(!is_control_request(action::ROTATE_KEY, &json!({})));
    }

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
    fn raw_data_relayed_as_it_came() {
        let frame = br#"{"id":4,"type":"log","data":{"stream":"stdout","chunk":"a\u0000b\"c"}}"#;
        let r = Reply::parse(frame, &[ReplyType::Log]).unwrap();
        assert_eq!(r.data, Value::Null);
        let mut r = r;
        r.id = Some(77);
        r.server = Some("prod".into());
        let out = serde_json::to_string(&r).unwrap();
        assert_eq!(
            out,
            r#"{"id":77,"type":"log","server":"prod","data":{"stream":"stdout","chunk":"a\u0000b\"c"}}"#
        );
        // Read back by a client, it is an ordinary reply.
        let back: Reply = serde_json::from_str(&out).unwrap();
        assert_eq!(back.data["chunk"], json!("a\u{0}b\"c"));
        // Kinds not kept raw are parsed, and serialize as before.
        let e = Reply::parse(
            br#"{"id":1,"type":"error","data":{"code":"busy","message":"m"}}"#,
            &[ReplyType::Log],
        )
        .unwrap();
        assert_eq!(e.data["code"], "busy");
        assert!(e.raw_data.is_none());
        assert_eq!(
            serde_json::to_value(Reply::end(Some(2))).unwrap(),
            json!({"id": 2, "type": "end", "data": null})
        );
    }

    #[test]
    fn log_chunks_as_agents_frame_them_are_read_without_serde_and_alike() {
        let text = crate::json::text_object(&[("stream", "stdout"), ("text", "a\"b\\\n\u{1}ü漢")]);
        for id in [0u64, 7, u64::MAX] {
            let sent = Reply::raw(Some(id), ReplyType::Log, RawData::Written(text.clone()));
            let framed = crate::frame::encode_reply(&sent).unwrap();
            let r = Reply::parse(&framed[4..], &[ReplyType::Log]).unwrap();
            // Checked by our reader (kept as written text), equal to serde's.
            assert!(matches!(r.raw_data, Some(RawData::Written(_))), "{r:?}");
            let by_serde: RawReply<'_> = serde_json::from_slice(&framed[4..]).unwrap();
            assert_eq!(r.id, by_serde.id);
            assert_eq!(r.kind, by_serde.kind);
            assert_eq!(
                r.raw_data.as_ref().unwrap().text(),
                by_serde.data.unwrap().get()
            );
        }
        // Other layouts go to serde, valid or not.
        let serde_only: [&[u8]; 3] = [
            br#"{"id":3,"type":"log","server":"x","data":{"chunk":"c"}}"#,
            br#"{"type":"log","id":3,"data":{"chunk":"c"}}"#,
            br#"{"id":3,"type":"log","data":{"chunk":"c","n":1}}"#,
        ];
        for f in serde_only {
            let r = Reply::parse(f, &[ReplyType::Log]).unwrap();
            assert!(matches!(r.raw_data, Some(RawData::Parsed(_))), "{r:?}");
        }
        // What serde refuses is refused.
        let refused: [&[u8]; 5] = [
            br#"{"id":01,"type":"log","data":{"chunk":"c"}}"#,
            br#"{"id":18446744073709551616,"type":"log","data":{"chunk":"c"}}"#,
            b"{\"id\":3,\"type\":\"log\",\"data\":{\"chunk\":\"\x01\"}}",
            b"{\"id\":3,\"type\":\"log\",\"data\":{\"chunk\":\"\xff\"}}",
            br#"{"id":3,"type":"log","data":{"chunk":"\q"}}"#,
        ];
        for f in refused {
            assert!(
                Reply::parse(f, &[ReplyType::Log]).is_err(),
                "{:?}",
                String::from_utf8_lossy(f)
            );
        }
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
