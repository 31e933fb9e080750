//! One connection's replay: after the hub's first
//! [`BufferAck`](nextdeploy_shared::protocol::Downstream::BufferAck) (which
//! says what it already holds, and so that it speaks the buffer feature), the
//! records from before this connection's subscription (the backlog) go out in
//! order, `late`, [`REPLAY_BYTES_PER_TICK`] per tick, between the live frames.
//! A hub that answers a heartbeat before any `BufferAck` predates the
//! feature: it gets live frames only, and the buffer is emptied as they go.

use std::time::Instant;

use nextdeploy_shared::limits::MAX_FRAME_LEN;
use tracing::{info, warn};

use super::{Kind, Recorder, Stored};
use crate::limits::REPLAY_BYTES_PER_TICK;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No word from the hub about the buffer yet.
    Waiting,
    /// The hub acknowledges: replay what it lacks.
    Acked,
    /// The hub predates the buffer.
    Legacy,
}

/// The replay state of one connection.
#[derive(Debug)]
pub struct Replay {
    /// Records from here on are pushed live on this connection.
    live_from: u64,
    /// The last record replayed.
    cursor: u64,
    mode: Mode,
    sent: u64,
    bytes: u64,
    started: Option<Instant>,
}

impl Replay {
    /// A replay of what was recorded before `live_from`.
    pub fn new(live_from: u64) -> Replay {
        Replay {
            live_from,
            cursor: 0,
            mode: Mode::Waiting,
            sent: 0,
            bytes: 0,
            started: None,
        }
    }

    /// The hub's `BufferAck`.
    pub fn ack(&mut self, rec: &Recorder, id: &str, ranges: &[[u64; 2]]) {
        if !rec.ack(id, ranges) {
            warn!(id, "the hub acknowledged another buffer; ignored");
            return;
        }
        self.mode = Mode::Acked;
    }

    /// The hub answered a heartbeat.
    pub fn heartbeat(&mut self, rec: &Recorder) {
        if self.mode == Mode::Waiting {
            info!("the hub does not take the buffer's replay; sending live only");
            self.mode = Mode::Legacy;
        }
        if self.mode == Mode::Legacy {
            rec.ack_all();
        }
    }

    /// Live frames were lost (a slow link): replay up to what exists now
    /// (the hub skips any it already has).
    pub fn lagged(&mut self, rec: &Recorder) {
        self.live_from = self.live_from.max(rec.next_seq());
    }

    /// Whether there is something to replay now.
    pub fn pending(&self, rec: &Recorder) -> bool {
        self.mode == Mode::Acked && rec.has_between(self.cursor, self.live_from)
    }

    /// The next batch's frames, back to back (empty when done).
    pub fn next_frames(&mut self, rec: &Recorder) -> Vec<u8> {
        let batch = match rec.read(self.cursor, self.live_from, REPLAY_BYTES_PER_TICK) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "cannot read the buffer; replay stopped");
                self.cursor = self.live_from;
                return Vec::new();
            }
        };
        let started = *self.started.get_or_insert_with(Instant::now);
        let mut out = Vec::new();
        for s in &batch {
            self.cursor = s.seq;
            match late_frame(s) {
                Some(f) => {
                    self.sent += 1;
                    self.bytes += f.len() as u64;
                    out.extend(f);
                }
                None => warn!(
                    seq = s.seq,
                    "a buffered record does not fit a frame; skipped"
                ),
            }
        }
        if !rec.has_between(self.cursor, self.live_from) {
            info!(
                records = self.sent,
                bytes = self.bytes,
                ms = started.elapsed().as_millis() as u64,
                "buffer replayed"
            );
        }
        out
    }
}

/// The control frame of a buffered record, marked `late`: its payload
/// spliced into a reply without parsing it (`{"late":true,` then the rest of
/// the payload's object).
pub fn late_frame(s: &Stored) -> Option<Vec<u8>> {
    let ty = match s.kind {
        Kind::Health => "health",
        Kind::Event => "event",
    };
    let rest = match s.payload.strip_prefix(b"{") {
        Some(r) if r.trim_ascii_start().starts_with(b"}") => &b"}"[..],
        Some(r) => r,
        None => return None,
    };
    let head = format!("{{\"id\":0,\"type\":\"{ty}\",\"data\":{{\"late\":true");
    let sep: &[u8] = if rest.starts_with(b"}") { b"" } else { b"," };
    let len = head.len() + sep.len() + rest.len() + 1;
    if len > MAX_FRAME_LEN {
        return None;
    }
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(sep);
    out.extend_from_slice(rest);
    out.push(b'}');
    Some(out)
}
