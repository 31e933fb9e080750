//! The control channel of one agent, as the rest of the hub sees it: one
//! serialized writer (frames must not interleave: russh cuts a large write into
//! packets, and two concurrent writers would mix their pieces) and the one-shot
//! requests waiting for their answer.
//!
//! One-shot requests ([`Transport::OneShot`]) travel here instead of on a
//! channel of their own: opening a channel costs a round trip and a task on
//! both sides, which is most of a ping's time and most of a fan-out's CPU.
//! They need no credit: each waits for exactly one answer of at most
//! [`MAX_FRAME_LEN`](nextdeploy_shared::limits::MAX_FRAME_LEN) bytes, and the
//! number waiting is bounded by the agent's stream slots, so what the hub
//! holds for them is bounded too.
//!
//! A fan-out asks many agents the same question: its request is framed once
//! (request ids are unique across the hub, so one frame serves every agent)
//! and every answer lands on one queue that a single task drains
//! ([`Control::ask_part`]), instead of a task and a oneshot per agent.
//!
//! [`Transport::OneShot`]: nextdeploy_shared::protocol::Transport::OneShot

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use nextdeploy_shared::frame;
use nextdeploy_shared::protocol::{Downstream, Reply, ReplyType};
use russh::server::Msg;
use russh::ChannelWriteHalf;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::slots::Slot;
use super::stream::StreamError;

/// Request ids on control channels: unique across the hub (one counter in
/// the [`Registry`](super::Registry), shared by every [`Control`]), so that
/// one framed request can go to many agents.
#[derive(Debug, Default)]
pub struct RequestIds(AtomicU64);

impl RequestIds {
    /// A fresh one-shot request id (never 0: 0 is the first request of a
    /// channel).
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Why a frame could not be written on a channel to an agent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message could not be framed (not serializable or over the limit).
    #[error("could not frame the message: {0}")]
    Encode(#[from] frame::FrameError),
    /// The SSH channel refused the write (the connection is going away).
    #[error("write failed: {0}")]
    Write(#[from] russh::Error),
}

/// Answers of a fan-out: the part's index and its answer, `None` when the
/// agent's connection went away first.
pub type PartSender = mpsc::UnboundedSender<(usize, Option<Reply>)>;

/// Where an answer goes.
enum Waiter {
    /// A single request's own receiver.
    One(oneshot::Sender<Reply>),
    /// One part of a fan-out.
    Part(PartSender, usize),
}

type Waiters = HashMap<u64, Waiter>;

/// The control channel's writer and the requests waiting on it.
pub struct Control {
    write: tokio::sync::Mutex<ChannelWriteHalf<Msg>>,
    /// Whether the agent takes one-shot requests here (its hello said so).
    requests: bool,
    /// The hub's request id counter.
    ids: Arc<RequestIds>,
    pending: Mutex<Option<Waiters>>,
}

impl Control {
    /// Wrap the control channel's write half; `requests`: the agent listed
    /// [`feature::CONTROL_REQUESTS`](nextdeploy_shared::protocol::feature::CONTROL_REQUESTS).
    /// `ids`: the hub's request id counter.
    pub fn new(write: ChannelWriteHalf<Msg>, requests: bool, ids: Arc<RequestIds>) -> Arc<Self> {
        Arc::new(Control {
            write: tokio::sync::Mutex::new(write),
            requests,
            ids,
            pending: Mutex::new(Some(HashMap::new())),
        })
    }

    /// Whether one-shot requests may be sent here.
    pub fn takes_requests(&self) -> bool {
        self.requests
    }

    /// Write one frame.
    pub async fn send(&self, msg: &Downstream) -> Result<(), SendError> {
        let bytes = frame::encode(msg)?;
        self.send_frame(bytes.into()).await
    }

    async fn send_frame(&self, bytes: Bytes) -> Result<(), SendError> {
        Ok(self.write.lock().await.data_bytes(bytes).await?)
    }

    /// Hand an agent's reply to the request waiting for it. Returns the reply
    /// back when no request has its id (a push: snapshot, event, outcome).
    pub fn deliver(&self, reply: Reply) -> Option<Reply> {
        let id = match (reply.id, reply.kind) {
            (Some(id), ReplyType::Result | ReplyType::Error) if id != 0 => id,
            _ => return Some(reply),
        };
        let waiter = self.map().as_mut().and_then(|m| m.remove(&id));
        match waiter {
            // A waiter that gave up in the meantime simply drops the answer.
            Some(Waiter::One(tx)) => {
                let _ = tx.send(reply);
                None
            }
            Some(Waiter::Part(tx, idx)) => {
                let _ = tx.send((idx, Some(reply)));
                None
            }
            None => Some(reply),
        }
    }

    /// The connection is gone: every waiting request fails at once, and no
    /// new one is accepted.
    pub fn close(&self) {
        let Some(waiters) = self.map().take() else {
            return;
        };
        for (_, w) in waiters {
            // A single request sees its sender dropped.
            if let Waiter::Part(tx, idx) = w {
                let _ = tx.send((idx, None));
            }
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, Option<Waiters>> {
        crate::sync::lock_or_recover(&self.pending)
    }

    /// Register `waiter` under `id` and write `frame`; the guard cancels the
    /// request when dropped unanswered.
    async fn ask(
        self: &Arc<Self>,
        agent: &str,
        id: u64,
        frame: Bytes,
        waiter: Waiter,
        slot: Slot,
    ) -> Result<Asked, StreamError> {
        match self.map().as_mut() {
            Some(m) => m.insert(id, waiter),
            None => return Err(StreamError::Closed(agent.to_string())),
        };
        let asked = Asked {
            control: self.clone(),
            id,
            answered: false,
            slot: Some(slot),
        };
        self.send_frame(frame)
            .await
            .map_err(|e| StreamError::Open(agent.to_string(), e.to_string()))?;
        Ok(asked)
    }

    /// Send a one-shot request; the answer arrives on the returned [`Pending`].
    /// `slot` is the agent's stream slot, held until the answer or the end.
    pub async fn send_request(
        self: &Arc<Self>,
        agent: &str,
        action: &str,
        payload: Value,
        slot: Slot,
    ) -> Result<Pending, StreamError> {
        let id = self.ids.next();
        let frame = frame::encode(&Downstream::Request {
            id,
            action: action.to_string(),
            payload,
        })
        .map_err(|e| StreamError::Open(agent.to_string(), e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        let asked = self
            .ask(agent, id, frame.into(), Waiter::One(tx), slot)
            .await?;
        Ok(Pending { asked, rx })
    }

    /// One part of a fan-out: write `frame` (a request framed with `id`, the
    /// same for every part) and deliver the answer to `to` as `(idx, answer)`.
    pub async fn ask_part(
        self: &Arc<Self>,
        agent: &str,
        id: u64,
        frame: Bytes,
        to: PartSender,
        idx: usize,
        slot: Slot,
    ) -> Result<Asked, StreamError> {
        self.ask(agent, id, frame, Waiter::Part(to, idx), slot)
            .await
    }
}

/// A request in flight on a control channel. Dropped before its answer
/// arrived (timeout, client gone), it tells the agent to drop the work.
pub struct Asked {
    control: Arc<Control>,
    id: u64,
    answered: bool,
    /// The agent's stream slot; `None` only once handed to the cancel.
    slot: Option<Slot>,
}

impl Asked {
    /// Its answer arrived: nothing to cancel, the stream slot is free.
    pub fn done(mut self) {
        self.answered = true;
    }
}

impl Drop for Asked {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let waiting = self
            .control
            .map()
            .as_mut()
            .and_then(|m| m.remove(&self.id))
            .is_some();
        if !waiting {
            return;
        }
        // The slot is held until the cancel is written: the writer is one
        // queue, so the request that takes the slot next reaches the agent
        // after the cancel, and the agent (which caps its one-shots at
        // MAX_STREAMS_PER_AGENT too) never counts more than the hub allows.
        let (control, id, slot) = (self.control.clone(), self.id, self.slot.take());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = control.send(&Downstream::Cancel { id }).await;
                drop(slot);
            });
        }
    }
}

/// A single one-shot request in flight, with its own answer.
pub struct Pending {
    asked: Asked,
    rx: oneshot::Receiver<Reply>,
}

impl Pending {
    /// The answer; `None` when the connection went away first.
    pub async fn answer(&mut self) -> Option<Reply> {
        let r = (&mut self.rx).await.ok();
        self.asked.answered = true;
        r
    }
}
