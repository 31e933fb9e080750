//! A one-shot request to many agents at once over their control channels:
//! one frame for all, one queue for the answers, one task to relay them.
//!
//! Per agent this costs a map entry and a write: no task, no oneshot, no
//! serialization of its own. A write that has to wait (that agent's queue is
//! full) waits beside the others, never in front of them. The answers are
//! relayed as they come, each tagged with its agent's `server`; the parts
//! still open at the deadline end with a `timeout` error each (and are
//! cancelled at the agent); an agent whose connection ends fails only its
//! own part.

use crate::limits::{FANOUT_BATCH, FANOUT_YIELD_EVERY};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};

use nextdeploy_shared::frame;
use nextdeploy_shared::protocol::{Downstream, ErrorCode, Reply, Request};
use tokio::sync::mpsc;

use super::route::{finish, How};
use super::ReplySink;
use crate::agents::control::{Asked, PartSender};
use crate::agents::stream::StreamError;
use crate::agents::AgentConn;
use crate::store::Role;

/// Where one agent's part stands.
enum Part {
    /// Its request is being written (a full queue to that agent: waiting
    /// for it must not hold up the others).
    Sending,
    /// Written; waiting for the answer.
    Open(Asked),
    /// Answered or failed, and relayed.
    Done,
}

type Write<'a> = Pin<Box<dyn Future<Output = (usize, Result<Asked, StreamError>)> + Send + 'a>>;

/// The client went away: nothing more to relay.
struct Gone;

/// Ask every agent of `conns` (all taking control requests) the one-shot
/// `req`, framed once with `wire_id`, relaying each answer to `out` within
/// `how.limit`. Returns early when the client has gone (what is still open
/// is cancelled).
pub async fn ask_all(
    conns: &[Arc<AgentConn>],
    req: &Request,
    wire_id: u64,
    out: &ReplySink,
    how: How,
) {
    let mut fan = FanOut {
        conns,
        id: req.id,
        out,
        limit: how.limit,
        ping: how.ping,
        role: how.role,
        parts: Vec::with_capacity(conns.len()),
        started: Vec::with_capacity(conns.len()),
        waiting: 0,
    };
    let Ok(framed) = fan.frame_once(req, wire_id).await else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let Ok(mut sending) = fan.send_all(framed, wire_id, tx).await else {
        return;
    };
    if fan.collect(&mut rx, &mut sending).await.is_err() {
        return;
    }
    // Writes still waiting are dropped (their guards cancel them at the agent).
    drop(sending);
    let _ = fan.time_out_rest().await;
}

/// One fan-out in progress.
struct FanOut<'a> {
    conns: &'a [Arc<AgentConn>],
    /// The client's request id.
    id: u64,
    out: &'a ReplySink,
    limit: Duration,
    ping: bool,
    /// The caller's role: which budget of each agent's slots the parts use.
    role: Role,
    /// Where each agent's part stands, by index in `conns`.
    parts: Vec<Part>,
    /// When each part's request went out.
    started: Vec<Instant>,
    /// Parts not yet answered or failed.
    waiting: usize,
}

impl<'a> FanOut<'a> {
    /// Relay one reply; `Gone` when the client has.
    async fn relay(&self, reply: Reply) -> Result<(), Gone> {
        self.out.send(reply).await.map_err(|_| Gone)
    }

    /// Relay part `idx`'s failure.
    async fn fail(&self, idx: usize, e: StreamError) -> Result<(), Gone> {
        let name = self.conns[idx].name.clone();
        self.relay(Reply::error(Some(self.id), e.code(), e.to_string()).with_server(name))
            .await
    }

    /// The request framed once for every agent, or (relayed to each part)
    /// why it cannot be.
    async fn frame_once(&self, req: &Request, wire_id: u64) -> Result<Bytes, Gone> {
        let framed = frame::encode(&Downstream::Request {
            id: wire_id,
            action: req.action.clone(),
            payload: req.payload.clone(),
        });
        match framed {
            Ok(f) => Ok(Bytes::from(f)),
            Err(e) => {
                for c in self.conns {
                    let r = Reply::error(Some(self.id), ErrorCode::BadRequest, e.to_string());
                    self.relay(r.with_server(c.name.clone())).await?;
                }
                Err(Gone)
            }
        }
    }

    /// Write the request to every agent. Returns the writes that have to wait.
    async fn send_all(
        &mut self,
        framed: Bytes,
        wire_id: u64,
        tx: PartSender,
    ) -> Result<FuturesUnordered<Write<'a>>, Gone> {
        let sending: FuturesUnordered<Write<'a>> = FuturesUnordered::new();
        let conns = self.conns;
        for (idx, conn) in conns.iter().enumerate() {
            self.started.push(Instant::now());
            let slot = match StreamError::take_slot(conn, self.role) {
                Ok(s) => s,
                Err(e) => {
                    self.parts.push(Part::Done);
                    self.fail(idx, e).await?;
                    continue;
                }
            };
            self.parts.push(Part::Sending);
            self.waiting += 1;
            let (frame, tx) = (framed.clone(), tx.clone());
            // Outside tokio's cooperative budget: this task writes to thousands
            // of queues in a row, and a write must wait only when its queue is
            // full (the loop yields on its own, below).
            let mut send: Write<'a> = Box::pin(tokio::task::unconstrained(async move {
                let r = conn
                    .control
                    .ask_part(&conn.name, wire_id, frame, tx, idx, slot);
                (idx, r.await)
            }));
            // Nearly always written at once; one that waits goes on in the
            // background with the others that wait.
            match std::future::poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await {
                Poll::Ready((idx, r)) => self.note_sent(idx, r).await?,
                Poll::Pending => sending.push(send),
            }
            if idx % FANOUT_YIELD_EVERY == FANOUT_YIELD_EVERY - 1 {
                // Let the sessions on this thread write what is queued.
                tokio::task::yield_now().await;
            }
        }
        Ok(sending)
    }

    /// A part's write finished: relay its failure, if any.
    async fn note_sent(
        &mut self,
        idx: usize,
        written: Result<Asked, StreamError>,
    ) -> Result<(), Gone> {
        if let Some(e) = sent(&mut self.parts[idx], written) {
            self.waiting -= 1;
            self.fail(idx, e).await?;
        }
        Ok(())
    }

    /// Relay answers as they come, until every part is done, the answers
    /// stop, or the deadline passes.
    async fn collect(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<(usize, Option<Reply>)>,
        sending: &mut FuturesUnordered<Write<'a>>,
    ) -> Result<(), Gone> {
        let deadline = tokio::time::sleep(self.limit);
        tokio::pin!(deadline);
        let mut batch = Vec::with_capacity(FANOUT_BATCH);
        let mut answers_open = true;
        while self.waiting > 0 && (answers_open || !sending.is_empty()) {
            tokio::select! {
                n = rx.recv_many(&mut batch, FANOUT_BATCH), if answers_open => answers_open = n > 0,
                Some((idx, r)) = sending.next(), if !sending.is_empty() => {
                    self.note_sent(idx, r).await?;
                }
                _ = &mut deadline => break,
            }
            for (idx, answer) in batch.drain(..) {
                self.take_answer(idx, answer).await?;
            }
        }
        Ok(())
    }

    /// Relay part `idx`'s answer (`None`: its connection went away).
    async fn take_answer(&mut self, idx: usize, answer: Option<Reply>) -> Result<(), Gone> {
        let Some(part) = self.parts.get_mut(idx) else {
            return Ok(());
        };
        match std::mem::replace(part, Part::Done) {
            Part::Done => return Ok(()),
            Part::Open(asked) => asked.done(),
            Part::Sending => {}
        }
        self.waiting -= 1;
        let name = &self.conns[idx].name;
        match answer {
            Some(r) => {
                let reply = finish(r, self.id, name, self.ping, self.started[idx]);
                self.relay(reply).await
            }
            None => self.fail(idx, StreamError::Closed(name.clone())).await,
        }
    }

    /// What is still open timed out: say so per agent; dropping its guard
    /// cancels it at the agent.
    async fn time_out_rest(&mut self) -> Result<(), Gone> {
        for idx in 0..self.parts.len() {
            if matches!(
                std::mem::replace(&mut self.parts[idx], Part::Done),
                Part::Done
            ) {
                continue;
            }
            let name = &self.conns[idx].name;
            let r = Reply::error(
                Some(self.id),
                ErrorCode::Timeout,
                format!(
                    "agent {name} did not answer within {}s",
                    self.limit.as_secs()
                ),
            );
            self.relay(r.with_server(name.clone())).await?;
        }
        Ok(())
    }
}

/// A part's request was written (or not): the error to relay if it failed.
/// An answer may have come first (the waiter was registered before the
/// write); the part is then done already.
fn sent(part: &mut Part, written: Result<Asked, StreamError>) -> Option<StreamError> {
    match (written, &*part) {
        (Ok(asked), Part::Done) => {
            asked.done();
            None
        }
        (Ok(asked), _) => {
            *part = Part::Open(asked);
            None
        }
        (Err(_), Part::Done) => None,
        (Err(e), _) => {
            *part = Part::Done;
            Some(e)
        }
    }
}
