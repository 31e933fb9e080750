//! The bodies of the fuzz targets in `fuzz/fuzz_targets/` (run by
//! `scripts/fuzz.sh`, see docs/fuzzing.md). They live here, not in the fuzz
//! crate, so that `cargo test` replays every committed corpus input
//! (`fuzz/corpus/<target>/`) through the very same code: a crash once found
//! stays a failing test until it is fixed, without cargo-fuzz or a nightly
//! toolchain in CI. Each takes untrusted bytes the way the product does and
//! panics when an invariant breaks. Not an API: hidden from the docs.

use serde_json::{Map, Value};

use crate::frame::{self, Decoder};
use crate::limits::MAX_FRAME_LEN;
use crate::protocol::{Action, ActionKind, Hello, RawData, Reply, ReplyType, Request};

/// A target's body: untrusted bytes in, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/` call it.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame", frame),
    ("flat_object", flat_object),
    ("request", request),
    ("token", token),
    ("hello", hello),
];

/// What a decoder handed out for a byte stream: each frame's payload, and
/// whether it stopped on an error.
type Frames = (Vec<Vec<u8>>, bool);

/// Agent -> hub frames. `data` is the byte stream of a channel, cut into SSH
/// messages of a size its first byte picks. Decoded by the control channel's
/// path (feed, then [`Decoder::next_frame`], as `hub/src/ssh/tap.rs`) and by
/// a stream's path ([`Decoder::frame_in`] in place, as
/// `hub/src/agents/stream.rs`), in pieces and whole: all four must give the
/// same frames, none over the limit, and the decoder must hold no more than
/// a partial frame plus one message. Each frame is then read as the hub
/// reads it ([`check_reply`]).
pub fn frame(data: &[u8]) {
    let step = data.first().map_or(1, |b| usize::from(b % 32) + 1);
    let whole = [data];
    let pieces: Vec<&[u8]> = data.chunks(step).collect();
    let expected = fed_frames(&whole);
    assert_eq!(fed_frames(&pieces), expected, "cut into {step}-byte pieces");
    assert_eq!(in_place_frames(&whole), expected, "read in place");
    assert_eq!(in_place_frames(&pieces), expected, "in place, in pieces");
    for payload in &expected.0 {
        assert!(payload.len() <= MAX_FRAME_LEN);
        check_reply(payload);
    }
}

/// The control channel's path: feed each message, take every whole frame.
fn fed_frames(messages: &[&[u8]]) -> Frames {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for msg in messages {
        d.feed(msg);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => out.push(f.to_vec()),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
        assert!(d.buffered() < 4 + MAX_FRAME_LEN + msg.len().max(4));
        d.release();
    }
    (out, false)
}

/// A stream's path: frames read in place while nothing is held, the rest fed.
fn in_place_frames(messages: &[&[u8]]) -> Frames {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for msg in messages {
        let mut rest: &[u8] = msg;
        loop {
            let next = match d.frame_in(rest) {
                Ok(Some((f, after))) => {
                    rest = after;
                    Ok(Some(f.to_vec()))
                }
                Ok(None) if !rest.is_empty() => {
                    d.feed(rest);
                    rest = &[];
                    d.next_frame().map(|f| f.map(<[u8]>::to_vec))
                }
                Ok(None) => d.next_frame().map(|f| f.map(<[u8]>::to_vec)),
                Err(e) => Err(e),
            };
            match next {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

/// One frame's payload as the hub reads it: [`Reply::parse`] keeping log
/// chunks raw (streams), and serde's `Reply` (the control channel). Both
/// accept the same frames and read the same reply (raw `data` as text that
/// serde reads to the same value); a log chunk taken by the fast path
/// ([`crate::json::flat_object`]) frames back to the very same bytes.
fn check_reply(payload: &[u8]) {
    let by_serde = serde_json::from_slice::<Reply>(payload);
    let fast = Reply::parse(payload, &[ReplyType::Log]);
    let (fast, slow) = match (fast, by_serde) {
        (Ok(fast), Ok(slow)) => (fast, slow),
        (Err(_), Err(_)) => return,
        (fast, slow) => panic!("Reply::parse {fast:?} but serde {slow:?}"),
    };
    assert_eq!(
        (fast.id, fast.kind, &fast.server),
        (slow.id, slow.kind, &slow.server)
    );
    let Some(raw) = &fast.raw_data else {
        assert_eq!(fast.data, slow.data);
        return;
    };
    match serde_json::from_str::<Value>(raw.text()) {
        Ok(data) => assert_eq!(data, slow.data),
        Err(e) => panic!("raw data is not JSON: {e}"),
    }
    if let RawData::Written(_) = raw {
        let Ok(again) = frame::encode_reply(&fast) else {
            panic!("a decoded log chunk does not encode");
        };
        assert_eq!(&again[4..], payload, "a log chunk re-encodes to its bytes");
    }
}

/// The hub's check of a log chunk's `data` ([`crate::json::flat_object`]):
/// what it accepts serde reads as an object of strings, and what an agent
/// writes ([`crate::json::text_object`]) it accepts.
pub fn flat_object(data: &[u8]) {
    if let Some(text) = crate::json::flat_object(data) {
        assert_eq!(text.as_bytes(), data);
        match serde_json::from_slice::<Value>(data) {
            Ok(Value::Object(m)) => assert!(m.values().all(Value::is_string)),
            other => panic!("flat_object accepted what serde reads as {other:?}"),
        }
    }
    if let Ok(m) = serde_json::from_slice::<Map<String, Value>>(data) {
        let fields: Vec<(&str, &str)> = m
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .collect();
        let written = crate::json::text_object(&fields);
        assert!(
            crate::json::flat_object(written.as_bytes()).is_some(),
            "flat_object refused what text_object wrote: {written}"
        );
    }
}

/// A client's request as the hub's WebSocket reads it (`hub/src/http/ws.rs`,
/// `hub/src/api/mod.rs`): the envelope, then the action's payload. An action
/// that parses keeps its name, and the payload the hub forwards (its
/// [`Action::payload`]) parses to the same action again; a request rebuilt
/// from it reads back the same.
pub fn request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let req: Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(_) => {
            // The hub then looks for an id to answer the error with.
            let _ = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_u64));
            return;
        }
    };
    if let Ok(kind) = req.action.parse::<ActionKind>() {
        let _ = (kind.role(), kind.target(), kind.name());
    }
    let Ok(action) = Action::parse(&req.action, req.payload.clone()) else {
        return;
    };
    assert_eq!(action.kind().name(), req.action);
    let _ = (action.transport(), action.is_control_request());
    let forwarded = Action::parse(&req.action, action.payload());
    assert_eq!(forwarded.as_ref(), Ok(&action), "the forwarded payload");
    let rebuilt = Request::new(
        req.id,
        action.clone(),
        req.server.as_deref(),
        req.selector.as_deref(),
    );
    let Ok(json) = serde_json::to_string(&rebuilt) else {
        panic!("a parsed request does not serialize");
    };
    let Ok(back) = serde_json::from_str::<Request>(&json) else {
        panic!("a rebuilt request does not parse: {json}");
    };
    assert_eq!(back.action(), Ok(action));
}

/// A token as the hub (`Authorization: Bearer`, the initial token file) and
/// the agent (`--token`) read it: a parsed token, of either form, writes
/// back ([`crate::token::ParsedToken::text`]) to the text it came from
/// (less the whitespace `parse` trims), which parses to the same token.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = crate::token::parse(text) else {
        return;
    };
    assert_eq!(t.text().expose(), text.trim());
    assert_eq!(
        t.kind == crate::token::JOIN_PREFIX,
        t.hub_fingerprint.is_some()
    );
    assert_eq!(crate::token::parse(t.text().expose()).as_ref(), Ok(&t));
}

/// The agent's first frame as the hub reads it (`hub/src/ssh/tap.rs` then
/// `read_hello` in `hub/src/ssh/session.rs`): `data` is a frame's payload,
/// read as a [`Reply`] by the decoder, then its `data` as a [`Hello`]. A
/// hello that reads writes back to one that reads the same.
pub fn hello(data: &[u8]) {
    let Ok(len) = u32::try_from(data.len()) else {
        return;
    };
    let mut d = Decoder::new();
    d.feed(&len.to_be_bytes());
    d.feed(data);
    let Ok(Some((reply, _))) = d.next_message::<Reply>() else {
        return;
    };
    if reply.kind != ReplyType::Hello {
        return;
    }
    let Ok(hello) = serde_json::from_value::<Hello>(reply.data) else {
        return;
    };
    let _ = hello.supports(crate::protocol::feature::CONTROL_REQUESTS);
    let Ok(again) = serde_json::to_value(&hello) else {
        panic!("a hello does not serialize");
    };
    assert_eq!(serde_json::from_value::<Hello>(again).ok(), Some(hello));
}

#[cfg(test)]
mod replay;
