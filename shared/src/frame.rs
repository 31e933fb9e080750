//! Length-prefixed frames on an SSH channel: a 4-byte big-endian length, then
//! that many bytes of JSON. The length is checked against
//! [`MAX_FRAME_LEN`](crate::limits::MAX_FRAME_LEN) before anything is allocated.

use serde::{de::DeserializeOwned, Serialize};

use crate::limits::MAX_FRAME_LEN;
use crate::protocol::{RawData, Reply};

/// What can go wrong with a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a frame larger than the limit.
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLarge(usize),
    /// The frame's JSON did not parse as the expected message.
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Encode one message as a frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; 4];
    serde_json::to_writer(&mut out, msg)?;
    let len = out.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Encode a reply as a frame. A reply whose `data` is
/// [`RawData::Written`] (an agent's log chunk) is framed around that text
/// directly, byte for byte as [`encode`] would frame it, without serde
/// reading the text again; any other goes through [`encode`].
pub fn encode_reply(reply: &Reply) -> Result<Vec<u8>, FrameError> {
    let Some(RawData::Written(text)) = &reply.raw_data else {
        return encode(reply);
    };
    let head = reply_head(reply)?;
    let mut out = Vec::with_capacity(4 + head.len() + text.len() + 1);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&head);
    out.extend_from_slice(text.as_bytes());
    out.push(b'}');
    let len = out.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// A reply as JSON text (what the hub sends a WebSocket client): byte for
/// byte what serde_json writes for it, a [`RawData::Written`] `data` copied
/// in as it is (already text: not validated again).
pub fn reply_text(reply: &Reply) -> Result<String, serde_json::Error> {
    let Some(RawData::Written(text)) = &reply.raw_data else {
        return serde_json::to_string(reply);
    };
    // The head is short; only it is checked as UTF-8 (it always is).
    let Ok(mut out) = String::from_utf8(reply_head(reply)?) else {
        return serde_json::to_string(reply);
    };
    out.reserve_exact(text.len() + 1);
    out.push_str(text);
    out.push('}');
    Ok(out)
}

/// `{"id":..,"type":..,"server":..,"data":`: the start of a [`Reply`] as
/// serde_json writes it, up to its `data`.
fn reply_head(reply: &Reply) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\"id\":");
    match reply.id {
        Some(id) => out.extend_from_slice(id.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"type\":");
    serde_json::to_writer(&mut out, &reply.kind)?;
    if let Some(server) = &reply.server {
        out.extend_from_slice(b",\"server\":");
        crate::json::write_str(&mut out, server);
    }
    out.extend_from_slice(b",\"data\":");
    Ok(out)
}

/// The whole frame at the start of `held`, if it holds one: its payload and
/// the bytes it takes with its length. A length over the limit is an error
/// as soon as its 4 bytes are there.
fn whole_frame(held: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(&[a, b, c, d]) = held.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    Ok(held.get(4..4 + len).map(|payload| (payload, 4 + len)))
}

/// A frame's payload read in place, and the bytes after it.
pub type InPlace<'a> = (&'a [u8], &'a [u8]);

/// Incremental decoder: feed it the bytes of SSH data messages as they come,
/// take whole frames out. It never holds more than one partial frame plus the
/// bytes of one feed.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the bytes not yet taken start: frames are handed out as slices
    /// of `buf`, which is compacted on the next feed.
    start: usize,
}

impl Decoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append received bytes (first dropping the frames already taken).
    pub fn feed(&mut self, data: &[u8]) {
        if self.start == self.buf.len() {
            self.buf.clear();
        } else if self.start > 0 {
            self.buf.drain(..self.start);
        }
        self.start = 0;
        self.buf.extend_from_slice(data);
    }

    /// Free the buffer if it holds no partial frame: a connection that is
    /// idle between frames then holds no buffer at all.
    pub fn release(&mut self) {
        if self.start == self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Bytes held that are not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole frame's payload, if one is complete, as a slice of the
    /// decoder's buffer (valid until the next call). A length over the limit
    /// is an error as soon as its 4 bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let Some((payload, used)) = whole_frame(&self.buf[self.start..])? else {
            return Ok(None);
        };
        self.start += used;
        Ok(Some(payload))
    }

    /// The next whole frame of `data` read in place, when nothing is held
    /// (a frame that came in one SSH message needs no copy into the
    /// buffer): the payload and `data` past it. `None` when something is
    /// held or `data` does not start with a whole frame; feed what is left.
    pub fn frame_in<'a>(&self, data: &'a [u8]) -> Result<Option<InPlace<'a>>, FrameError> {
        if self.buffered() > 0 {
            return Ok(None);
        }
        Ok(whole_frame(data)?.map(|(payload, used)| (payload, &data[used..])))
    }

    /// The next whole frame parsed as `T`.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<(T, usize)>, FrameError> {
        match self.next_frame()? {
            Some(payload) => Ok(Some((serde_json::from_slice(payload)?, payload.len()))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A reply with written `data` frames to the very bytes serde frames
    /// the same reply to, with and without `server` and `id`.
    #[test]
    fn a_written_reply_frames_as_serde_frames_it() {
        use crate::protocol::{RawData, Reply, ReplyType};
        let text = crate::json::text_object(&[("stream", "stdout"), ("text", "a\"b\n\u{1}ü")]);
        let parsed =
            || RawData::Parsed(serde_json::value::RawValue::from_string(text.clone()).unwrap());
        let mut w = Reply::raw(Some(9), ReplyType::Log, RawData::Written(text.clone()));
        let mut p = Reply::raw(Some(9), ReplyType::Log, parsed());
        assert_eq!(encode_reply(&w).unwrap(), encode(&p).unwrap());
        (w.id, p.id) = (None, None);
        w.server = Some("pröd \"x\"".into());
        p.server = w.server.clone();
        assert_eq!(encode_reply(&w).unwrap(), encode(&p).unwrap());
        // Serialized by serde itself, a written reply is the same JSON too.
        assert_eq!(
            serde_json::to_vec(&w).unwrap(),
            encode_reply(&w).unwrap()[4..]
        );
        // Anything else goes through serde.
        let e = Reply::error(Some(1), crate::protocol::ErrorCode::Busy, "m");
        assert_eq!(encode_reply(&e).unwrap(), encode(&e).unwrap());
    }

    /// A reply's text for a WebSocket client is serde's text of the same
    /// reply, written `data` or not.
    #[test]
    fn reply_text_is_what_serde_writes() {
        use crate::protocol::{RawData, Reply, ReplyType};
        let text = crate::json::text_object(&[("chunk", "x\"\\\u{7f}\u{2}é")]);
        let raw = RawData::Parsed(serde_json::value::RawValue::from_string(text.clone()).unwrap());
        for (id, server) in [
            (Some(5), None),
            (None, Some("prod \"ü\"")),
            (Some(0), Some("s")),
        ] {
            let mut w = Reply::raw(id, ReplyType::Log, RawData::Written(text.clone()));
            let mut p = Reply::raw(id, ReplyType::Log, raw.clone());
            w.server = server.map(str::to_string);
            p.server = w.server.clone();
            let expected = serde_json::to_string(&p).unwrap();
            assert_eq!(reply_text(&w).unwrap(), expected);
            assert_eq!(reply_text(&p).unwrap(), expected);
        }
        let e = Reply::error(Some(1), crate::protocol::ErrorCode::Busy, "m");
        assert_eq!(reply_text(&e).unwrap(), serde_json::to_string(&e).unwrap());
    }

    /// Frames taken out are dropped on the next feed; a partial frame stays.
    #[test]
    fn taken_frames_are_dropped_and_a_partial_one_kept() {
        let mut d = Decoder::new();
        let a = encode(&json!({"n": 1})).unwrap();
        let b = encode(&json!({"n": 2})).unwrap();
        let mut both = a.clone();
        both.extend_from_slice(&b[..5]);
        d.feed(&both);
        let (v, _) = d.next_message::<Value>().unwrap().unwrap();
        assert_eq!(v["n"], 1);
        assert!(d.next_frame().unwrap().is_none());
        assert_eq!(d.buffered(), 5);
        d.feed(&b[5..]);
        assert_eq!(d.buf.len(), b.len(), "the taken frame was dropped");
        let (v, _) = d.next_message::<Value>().unwrap().unwrap();
        assert_eq!(v["n"], 2);
        assert_eq!(d.buffered(), 0);
        // Released with nothing partial held, the buffer is gone; with a
        // partial frame it stays.
        d.release();
        assert_eq!(d.buf.capacity(), 0);
        d.feed(&a[..3]);
        d.release();
        assert_eq!(d.buffered(), 3);
        d.feed(&a[3..]);
        assert_eq!(d.next_message::<Value>().unwrap().unwrap().0["n"], 1);
    }

    #[test]
    fn roundtrip_in_pieces() {
        let a = encode(&json!({"a": 1})).unwrap();
        let b = encode(&json!({"b": "two"})).unwrap();
        let mut all = a.clone();
        all.extend_from_slice(&b);
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for chunk in all.chunks(3) {
            d.feed(chunk);
            while let Some((v, _)) = d.next_message::<Value>().unwrap() {
                got.push(v);
            }
        }
        assert_eq!(got, vec![json!({"a": 1}), json!({"b": "two"})]);
        assert_eq!(d.buffered(), 0);
    }

    /// Whole frames at the start of a message are read in place; a partial
    /// one, or anything while a partial frame is held, goes to the buffer.
    #[test]
    fn whole_frames_are_read_in_place_only_when_nothing_is_held() {
        let a = encode(&json!({"n": 1})).unwrap();
        let b = encode(&json!({"n": 2})).unwrap();
        let mut msg = a.clone();
        msg.extend_from_slice(&b[..5]);
        let mut d = Decoder::new();
        let (f, rest) = d.frame_in(&msg).unwrap().unwrap();
        assert_eq!(f, &a[4..]);
        assert_eq!(rest, &b[..5]);
        assert!(d.frame_in(rest).unwrap().is_none(), "a partial frame");
        d.feed(rest);
        assert!(
            d.frame_in(&b[5..]).unwrap().is_none(),
            "a partial one is held"
        );
        d.feed(&b[5..]);
        assert_eq!(d.next_frame().unwrap().unwrap(), &b[4..]);
        assert!(d.frame_in(&[]).unwrap().is_none());
        let big = ((MAX_FRAME_LEN as u32) + 1).to_be_bytes();
        assert!(matches!(d.frame_in(&big), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn oversized_length_refused_before_payload() {
        let mut d = Decoder::new();
        d.feed(&((MAX_FRAME_LEN as u32) + 1).to_be_bytes());
        assert!(matches!(d.next_frame(), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn oversized_message_not_encoded() {
        let big = "x".repeat(MAX_FRAME_LEN + 1);
        assert!(matches!(encode(&big), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn malformed_json_is_an_error() {
        let mut d = Decoder::new();
        d.feed(&3u32.to_be_bytes());
        d.feed(b"{{{");
        assert!(matches!(
            d.next_message::<Value>(),
            Err(FrameError::Malformed(_))
        ));
    }
}
