//! Snapshots and events kept for the hub while it is out of reach.
//!
//! Every health snapshot and container event gets a sequence number and is
//! appended to a bounded on-disk buffer ([`disk::Buffer`]) before it is
//! pushed live; it stays there until the hub acknowledges it
//! ([`Downstream::BufferAck`](nextdeploy_shared::protocol::Downstream::BufferAck)).
//! After a reconnection, what the hub lacks is replayed in order, marked
//! `late`, at a bounded rate beside the live stream ([`replay`]). See
//! docs/channel.md ("While the link is down").
//!
//! Layout: `mod.rs` [`Recorder`] (the buffer shared by the monitor, the
//! events watcher and the control channel); [`segment`] the record format;
//! [`disk`] segment files, index, thinning; [`replay`] one connection's
//! replay.

pub mod disk;
pub mod replay;
pub mod segment;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use nextdeploy_shared::protocol::{BufferHello, BufferStats, Reply, ReplyType};
use serde_json::Value;
use tokio::sync::broadcast;
use tracing::warn;

use crate::util::lock;
pub use disk::{Buffer, Stored};

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A health snapshot.
    Health = 1,
    /// A container event.
    Event = 2,
}

impl Kind {
    /// The kind of byte `b` on disk.
    pub fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Health),
            2 => Some(Kind::Event),
            _ => None,
        }
    }

    /// The frame type that carries it.
    pub fn reply_type(self) -> ReplyType {
        match self {
            Kind::Health => ReplyType::Health,
            Kind::Event => ReplyType::Event,
        }
    }
}

/// The buffer (if it could be opened) and the live push queue.
pub struct Recorder {
    buffer: Mutex<Option<Buffer>>,
    push: broadcast::Sender<Reply>,
    /// Appends that failed (disk full, ...), for a warning now and then.
    failed: AtomicU64,
}

impl Recorder {
    /// Record into `buffer` (`None`: live only, as agents before the buffer)
    /// and push on `push`.
    pub fn new(push: broadcast::Sender<Reply>, buffer: Option<Buffer>) -> Recorder {
        Recorder {
            buffer: Mutex::new(buffer),
            push,
            failed: AtomicU64::new(0),
        }
    }

    /// Open the buffer in `dir`; without it (logged) the agent pushes live only.
    pub fn open(push: broadcast::Sender<Reply>, dir: &Path, max_bytes: u64) -> Recorder {
        let buffer = match Buffer::open(dir, max_bytes) {
            Ok(b) => {
                if !b.is_empty() {
                    tracing::info!(
                        records = b.len(),
                        bytes = b.bytes(),
                        "buffer holds records for the hub"
                    );
                }
                Some(b)
            }
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "cannot open the buffer; snapshots and events while the hub is away will be lost");
                None
            }
        };
        Recorder::new(push, buffer)
    }

    /// Number `data` (a snapshot or event as JSON), keep it, push it live.
    pub fn record(&self, kind: Kind, mut data: Value) {
        let mut buffer = lock(&self.buffer);
        if let Some(b) = buffer.as_mut() {
            let appended = b.append(kind, |seq| {
                if let Value::Object(m) = &mut data {
                    m.insert("seq".into(), seq.into());
                }
                serde_json::to_vec(&data).unwrap_or_default()
            });
            if let Err(e) = appended {
                let n = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    warn!(error = %e, failed = n, "cannot write to the buffer");
                }
            }
        }
        // Under the lock: a subscriber's `live_from` splits records exactly.
        let _ = self.push.send(Reply::new(Some(0), kind.reply_type(), data));
    }

    /// A subscription to pushed records, and the first sequence number it
    /// will see (those below are the backlog).
    pub fn subscribe(&self) -> (broadcast::Receiver<Reply>, u64) {
        let buffer = lock(&self.buffer);
        let rx = self.push.subscribe();
        (rx, buffer.as_ref().map_or(0, Buffer::next_seq))
    }

    /// The sequence number the next record gets (0 without a buffer).
    pub fn next_seq(&self) -> u64 {
        lock(&self.buffer).as_ref().map_or(0, Buffer::next_seq)
    }

    /// What the hello says of the buffer (`None` without one).
    pub fn hello(&self) -> Option<BufferHello> {
        lock(&self.buffer).as_ref().map(|b| BufferHello {
            id: b.id().to_string(),
            dropped_snapshots: b.dropped_snapshots,
            dropped_events: b.dropped_events,
        })
    }

    /// What `info` says of the buffer.
    pub fn stats(&self) -> Option<BufferStats> {
        lock(&self.buffer).as_ref().map(|b| BufferStats {
            bytes: b.bytes(),
            max_bytes: b.max_bytes(),
            records: b.len() as u64,
            dropped_snapshots: b.dropped_snapshots,
            dropped_events: b.dropped_events,
        })
    }

    /// The hub acknowledged `ranges` of buffer `id`; `false` if the id is
    /// not ours.
    pub fn ack(&self, id: &str, ranges: &[[u64; 2]]) -> bool {
        let mut buffer = lock(&self.buffer);
        let Some(b) = buffer.as_mut().filter(|b| b.id() == id) else {
            return false;
        };
        if let Err(e) = b.ack(ranges) {
            warn!(error = %e, "cannot trim the buffer");
        }
        true
    }

    /// Drop every record (a hub without the buffer feature took them live).
    pub fn ack_all(&self) {
        let mut buffer = lock(&self.buffer);
        if let Some(b) = buffer.as_mut() {
            let upto = b.next_seq().saturating_sub(1);
            if let Err(e) = b.ack(&[[0, upto]]) {
                warn!(error = %e, "cannot trim the buffer");
            }
        }
    }

    /// Records with `after < seq < below`, up to about `budget` bytes.
    pub fn read(&self, after: u64, below: u64, budget: usize) -> std::io::Result<Vec<Stored>> {
        lock(&self.buffer)
            .as_ref()
            .map_or(Ok(Vec::new()), |b| b.read(after, below, budget))
    }

    /// Whether a record with `after < seq < below` is held.
    pub fn has_between(&self, after: u64, below: u64) -> bool {
        lock(&self.buffer)
            .as_ref()
            .is_some_and(|b| b.has_between(after, below))
    }
}
