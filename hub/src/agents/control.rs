//! The control channel of one agent, as the rest of the hub sees it: one
//! serialized writer (frames must not interleave: russh cuts a large write into
//! packets, and two concurrent writers would mix their pieces) and the one-shot
//! requests waiting for their answer.
//!
//! One-shot requests ([`is_control_request`]) travel here instead of on a
//! channel of their own: opening a channel costs a round trip and a task on
//! both sides, which is most of a ping's time and most of a fan-out's CPU.
//! They need no credit: each waits for exactly one answer of at most
//! [`MAX_FRAME_LEN`](nextdeploy_shared::limits::MAX_FRAME_LEN) bytes, and the
//! number waiting is bounded by the agent's stream slots, so what the hub
//! holds for them is bounded too.
//!
//! [`is_control_request`]: nextdeploy_shared::protocol::is_control_request

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nextdeploy_shared::frame;
use nextdeploy_shared::protocol::{Downstream, Reply, ReplyType};
use russh::server::Msg;
use russh::ChannelWriteHalf;
use serde_json::Value;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::stream::StreamError;

/// The control channel's writer and the requests waiting on it.
pub struct Control {
    write: tokio::sync::Mutex<ChannelWriteHalf<Msg>>,
    /// Whether the agent takes one-shot requests here (its hello said so).
    requests: bool,
    pending: Mutex<Option<HashMap<u64, oneshot::Sender<Reply>>>>,
    next_id: AtomicU64,
}

impl Control {
    /// Wrap the control channel's write half; `requests`: the agent listed
    /// [`feature::CONTROL_REQUESTS`](nextdeploy_shared::protocol::feature::CONTROL_REQUESTS).
    pub fn new(write: ChannelWriteHalf<Msg>, requests: bool) -> Arc<Self> {
        Arc::new(Control {
            write: tokio::sync::Mutex::new(write),
            requests,
            pending: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(1),
        })
    }

    /// Whether one-shot requests may be sent here.
    pub fn takes_requests(&self) -> bool {
        self.requests
    }

    /// Write one frame.
    pub async fn send(&self, msg: &Downstream) -> Result<(), String> {
        let bytes = frame::encode(msg).map_err(|e| e.to_string())?;
        self.write
            .lock()
            .await
            .data_bytes(bytes)
            .await
            .map_err(|e| format!("write failed: {e}"))
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
            Some(tx) => {
                let _ = tx.send(reply);
                None
            }
            None => Some(reply),
        }
    }

    /// The connection is gone: every waiting request fails at once, and no
    /// new one is accepted.
    pub fn close(&self) {
        self.map().take();
    }

    fn map(&self) -> std::sync::MutexGuard<'_, Option<HashMap<u64, oneshot::Sender<Reply>>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Send a one-shot request; the answer arrives on the returned [`Pending`].
    /// `permit` is the agent's stream slot, held until the answer or the end.
    pub async fn request(
        self: &Arc<Self>,
        agent: &str,
        action: &str,
        payload: Value,
        permit: OwnedSemaphorePermit,
    ) -> Result<Pending, StreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match self.map().as_mut() {
            Some(m) => m.insert(id, tx),
            None => return Err(StreamError::Closed(agent.to_string())),
        };
        let pending = Pending {
            control: self.clone(),
            id,
            rx,
            answered: false,
            _permit: permit,
        };
        self.send(&Downstream::Request {
            id,
            action: action.to_string(),
            payload,
        })
        .await
        .map_err(|e| StreamError::Open(agent.to_string(), e))?;
        Ok(pending)
    }
}

/// A one-shot request in flight. Dropped before its answer arrived (timeout,
/// client gone), it tells the agent to drop the work.
pub struct Pending {
    control: Arc<Control>,
    id: u64,
    rx: oneshot::Receiver<Reply>,
    answered: bool,
    _permit: OwnedSemaphorePermit,
}

impl Pending {
    /// The answer; `None` when the connection went away first.
    pub async fn answer(&mut self) -> Option<Reply> {
        let r = (&mut self.rx).await.ok();
        self.answered = true;
        r
    }
}

impl Drop for Pending {
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
        let (control, id) = (self.control.clone(), self.id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = control.send(&Downstream::Cancel { id }).await;
            });
        }
    }
}
