//! The envelope of both conversations: a client's [`Request`], and the
//! [`Reply`] frames that go back (to clients, and from agents to the hub).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::action::{Action, ActionError};
use super::errors::{ErrorBody, ErrorCode};

/// A request from a WebSocket client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Chosen by the client; every reply to this request carries it.
    pub id: u64,
    /// What to do: an [`Action`]'s name.
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
    /// Never on the wire: set by a hub for a request another hub of its
    /// cluster forwarded, which it answers only for the agents it holds.
    #[serde(skip)]
    pub local_only: bool,
}

impl Request {
    /// A request for `action` on `server` or `selector`.
    pub fn new(id: u64, action: Action, server: Option<&str>, selector: Option<&str>) -> Request {
        let (name, payload) = action.into_parts();
        Request {
            id,
            action: name.to_string(),
            server: server.map(str::to_string),
            selector: selector.map(str::to_string),
            payload,
            local_only: false,
        }
    }

    /// The typed action: its payload read by the action's type.
    pub fn action(&self) -> Result<Action, ActionError> {
        Action::parse(&self.action, self.payload.clone())
    }
}

/// The kind of a reply.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
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
    /// Agent -> hub on an exec channel: input credit
    /// ([`InputCredit`](super::exec::InputCredit)).
    Credit,
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
                // Read as serde reads a reply, so that a client can read the
                // relayed text: a RawValue alone checks neither surrogate
                // escapes nor numbers' range. Log chunks in the agents' own
                // form take the fast path above instead.
                serde_json::from_str::<Value>(d.get())?;
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

    /// A log chunk is relayed raw only if serde reads it as a client does:
    /// a lone surrogate escape or an out-of-range number is refused on the
    /// fast path and the raw one alike (the fuzz target `flat_object`
    /// found the first accepted).
    #[test]
    fn a_raw_log_chunk_is_one_serde_reads() {
        for data in [
            r#"{"text":"\udddd"}"#,
            r#"{"text":"\ud800"}"#,
            r#"{"text": "\ud800"}"#,
            r#"{"n":1e400}"#,
        ] {
            let frame = format!(r#"{{"id":3,"type":"log","data":{data}}}"#);
            assert!(serde_json::from_str::<Reply>(&frame).is_err(), "{frame}");
            assert!(
                Reply::parse(frame.as_bytes(), &[ReplyType::Log]).is_err(),
                "{frame}"
            );
        }
        let ok = r#"{"id":3,"type":"log","data":{"text": "\ud83e\udd80"}}"#;
        let r = Reply::parse(ok.as_bytes(), &[ReplyType::Log]).unwrap();
        assert_eq!(r.raw_data.unwrap().text(), r#"{"text": "\ud83e\udd80"}"#);
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
}
