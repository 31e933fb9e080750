//! One request to an agent = one SSH channel opened by the hub.
//!
//! Flow control (docs/channel.md): russh re-opens a channel's window as soon as
//! data arrives, whether or not anyone consumed it, and a channel whose queue
//! is not read freezes the whole connection. So the hub reads every channel at
//! once, in a pump task that never waits for the consumer, and the agent may
//! only send [`STREAM_WINDOW`] bytes ahead of what the consumer took: the hub
//! returns credit as the consumer takes frames. The pump's queue is therefore
//! bounded by the window, and a slow consumer slows only its own stream.
//! Dropping a [`ReplyStream`] closes the channel, which cancels the work on
//! the agent.

use crate::limits::{STREAM_OPEN_TIMEOUT, VIEWER_STREAMS_PER_AGENT};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use nextdeploy_shared::frame::{self, Decoder};
use nextdeploy_shared::limits::{
    CREDIT_BATCH, MAX_FRAME_LEN, MAX_STREAMS_PER_AGENT, STREAM_WINDOW,
};
use nextdeploy_shared::protocol::{Downstream, ErrorCode, Reply, ReplyType};
use russh::server::Msg;
use russh::{ChannelMsg, ChannelWriteHalf};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::slots::{Full, Slot};
use super::AgentConn;
use crate::store::Role;

/// Why a stream could not be opened or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// All stream slots of the agent are taken.
    #[error("agent {0} has too many open requests; try again later")]
    Busy(String),
    /// The share of the agent's stream slots viewers may hold is taken.
    #[error(
        "agent {0}: the viewer share of its stream slots ({VIEWER_STREAMS_PER_AGENT} of \
         {MAX_STREAMS_PER_AGENT}) is full; close a stream or try again later \
         (operator and admin requests still run)"
    )]
    ViewerShare(String),
    /// The SSH channel could not be opened.
    #[error("agent {0} did not accept a channel: {1}")]
    Open(String, String),
    /// The agent closed the channel without a final `end` or `error`.
    #[error("agent {0} closed the stream early (disconnected?)")]
    Closed(String),
    /// The agent broke the protocol (oversized or malformed frame, credit overrun).
    #[error("agent {0} broke the protocol: {1}")]
    Protocol(String, String),
}

impl StreamError {
    /// A slot on `agent` for a request made with a token of `role`, or the
    /// `busy` error naming the budget that is full.
    pub fn take_slot(agent: &AgentConn, role: Role) -> Result<Slot, StreamError> {
        agent.slots.take(role).map_err(|full| match full {
            Full::Agent => StreamError::Busy(agent.name.clone()),
            Full::ViewerShare => StreamError::ViewerShare(agent.name.clone()),
        })
    }

    /// The error code clients see.
    pub fn code(&self) -> ErrorCode {
        match self {
            StreamError::Busy(_) | StreamError::ViewerShare(_) => ErrorCode::Busy,
            StreamError::Protocol(..) => ErrorCode::AgentError,
            StreamError::Open(..) | StreamError::Closed(_) => ErrorCode::AgentOffline,
        }
    }
}

type Item = Result<(Reply, usize), StreamError>;

/// The replies of one request, in order, ending with `end` or `error`.
pub struct ReplyStream {
    rx: mpsc::UnboundedReceiver<Item>,
    write: Arc<ChannelWriteHalf<Msg>>,
    outstanding: Arc<AtomicUsize>,
    to_credit: usize,
    pump: JoinHandle<()>,
    finished: bool,
    _slot: Slot,
}

impl ReplyStream {
    /// Open a channel on `agent` and send it the request, made with a token
    /// of `role` (whose budget of the agent's slots it draws from).
    pub async fn open(
        agent: &AgentConn,
        role: Role,
        id: u64,
        action: &str,
        payload: Value,
    ) -> Result<ReplyStream, StreamError> {
        let name = agent.name.clone();
        let slot = StreamError::take_slot(agent, role)?;
        let channel =
            tokio::time::timeout(STREAM_OPEN_TIMEOUT, agent.handle.channel_open_session())
                .await
                .map_err(|_| StreamError::Open(name.clone(), "timed out".into()))?
                .map_err(|e| StreamError::Open(name.clone(), e.to_string()))?;
        let (read, write) = channel.split();
        let request = Downstream::Request {
            id,
            action: action.to_string(),
            payload,
        };
        let bytes = frame::encode(&request)
            .map_err(|e| StreamError::Protocol(name.clone(), e.to_string()))?;
        write
            .data_bytes(bytes)
            .await
            .map_err(|e| StreamError::Open(name.clone(), e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let outstanding = Arc::new(AtomicUsize::new(0));
        let pump = tokio::spawn(pump(read, tx, outstanding.clone(), name));
        Ok(ReplyStream {
            rx,
            write: Arc::new(write),
            outstanding,
            to_credit: 0,
            pump,
            finished: false,
            _slot: slot,
        })
    }

    /// The next reply; `None` after the terminal one.
    pub async fn next(&mut self) -> Option<Result<Reply, StreamError>> {
        if self.finished {
            return None;
        }
        let item = self.rx.recv().await;
        match item {
            Some(Ok((reply, size))) => {
                if reply.kind.is_terminal() {
                    self.finished = true;
                } else {
                    self.grant(size).await;
                }
                Some(Ok(reply))
            }
            Some(Err(e)) => {
                self.finished = true;
                Some(Err(e))
            }
            None => {
                self.finished = true;
                None
            }
        }
    }

    /// Write a frame to the agent on this request's channel (an exec's input).
    pub async fn send_down(&self, d: &Downstream) -> Result<(), StreamError> {
        let bytes =
            frame::encode(d).map_err(|e| StreamError::Protocol(String::new(), e.to_string()))?;
        self.write
            .data_bytes(bytes)
            .await
            .map_err(|e| StreamError::Open(String::new(), e.to_string()))
    }

    async fn grant(&mut self, size: usize) {
        self.to_credit += size;
        if self.to_credit >= CREDIT_BATCH as usize {
            let bytes = self.to_credit;
            self.to_credit = 0;
            self.outstanding.fetch_sub(bytes, Ordering::AcqRel);
            if let Ok(f) = frame::encode(&Downstream::Credit {
                bytes: bytes as u32,
            }) {
                // A failed write means the channel is gone; the pump reports it.
                let _ = self.write.data_bytes(f).await;
            }
        }
    }
}

impl Drop for ReplyStream {
    fn drop(&mut self) {
        self.pump.abort();
        let write = self.write.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = write.close().await;
            });
        }
    }
}

/// Read the channel as fast as it delivers; never wait on the consumer.
async fn pump(
    mut read: russh::ChannelReadHalf,
    tx: mpsc::UnboundedSender<Item>,
    outstanding: Arc<AtomicUsize>,
    name: String,
) {
    let mut decoder = Decoder::new();
    // The window plus one frame of slack for the frame in flight when credit arrived.
    let limit = STREAM_WINDOW as usize + MAX_FRAME_LEN + 4;
    loop {
        let msg = read.wait().await;
        match msg {
            Some(ChannelMsg::Data { data }) => {
                let now = outstanding.fetch_add(data.len(), Ordering::AcqRel) + data.len();
                if now > limit {
                    let _ = tx.send(Err(StreamError::Protocol(
                        name,
                        format!("sent {now} bytes without credit (window {STREAM_WINDOW})"),
                    )));
                    return;
                }
                // Frames that came whole in this message are read in place;
                // the rest goes through the decoder's buffer.
                let mut rest: &[u8] = &data;
                loop {
                    let next = match decoder.frame_in(rest) {
                        Ok(Some((f, after))) => {
                            rest = after;
                            Ok(Some(f))
                        }
                        Ok(None) if !rest.is_empty() => {
                            decoder.feed(rest);
                            rest = &[];
                            decoder.next_frame()
                        }
                        Ok(None) => decoder.next_frame(),
                        Err(e) => Err(e),
                    };
                    // Log chunks (the bulk of a stream) are relayed as the
                    // agent encoded them: no parse into a Value, no re-escape.
                    let next = next.and_then(|f| match f {
                        Some(f) => Reply::parse(f, &[ReplyType::Log])
                            .map(|r| Some((r, f.len())))
                            .map_err(Into::into),
                        None => Ok(None),
                    });
                    match next {
                        Ok(Some((reply, len))) => {
                            let terminal = reply.kind.is_terminal();
                            // The receiver only goes away with the ReplyStream,
                            // which aborts this task anyway.
                            if tx.send(Ok((reply, len + 4))).is_err() || terminal {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(StreamError::Protocol(name, e.to_string())));
                            return;
                        }
                    }
                }
            }
            Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) | None => {
                let _ = tx.send(Err(StreamError::Closed(name)));
                return;
            }
            Some(_) => {}
        }
    }
}
