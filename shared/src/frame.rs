//! Length-prefixed frames on an SSH channel: a 4-byte big-endian length, then
//! that many bytes of JSON. The length is checked against
//! [`MAX_FRAME_LEN`](crate::limits::MAX_FRAME_LEN) before anything is allocated.

use serde::{de::DeserializeOwned, Serialize};

use crate::limits::MAX_FRAME_LEN;

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

/// Incremental decoder: feed it the bytes of SSH data messages as they come,
/// take whole frames out. It never holds more than one partial frame plus the
/// bytes of one feed.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that are not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame's payload, if one is complete. A length over the
    /// limit is an error as soon as its 4 bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let payload = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Ok(Some(payload))
    }

    /// The next whole frame parsed as `T`.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<(T, usize)>, FrameError> {
        match self.next_frame()? {
            Some(payload) => Ok(Some((serde_json::from_slice(&payload)?, payload.len()))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
