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

use futures_util::stream::{FuturesUnordered, StreamExt};

use nextdeploy_shared::frame;
use nextdeploy_shared::protocol::{Downstream, ErrorCode, Reply, Request};
use tokio::sync::mpsc;

use super::route::finish;
use super::ReplySink;
use crate::agents::control::{self, Asked};
use crate::agents::stream::StreamError;
use crate::agents::AgentConn;

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

/// Ask every agent of `conns` (all taking control requests) the one-shot
/// `req`, relaying each answer to `out` within `limit`. Returns early when
/// the client has gone (what is still open is cancelled).
pub async fn ask_all(
    conns: &[Arc<AgentConn>],
    req: &Request,
    out: &ReplySink,
    limit: Duration,
    ping: bool,
) {
    let id = req.id;
    let fail = |idx: usize, e: StreamError| {
        Reply::error(Some(id), e.code(), e.to_string()).with_server(conns[idx].name.clone())
    };
    let wire_id = control::next_request_id();
    let framed = frame::encode(&Downstream::Request {
        id: wire_id,
        action: req.action.clone(),
        payload: req.payload.clone(),
    });
    let framed = match framed {
        Ok(f) => bytes::Bytes::from(f),
        Err(e) => {
            for c in conns {
                let r = Reply::error(Some(id), ErrorCode::BadRequest, e.to_string());
                if out.send(r.with_server(c.name.clone())).await.is_err() {
                    return;
                }
            }
            return;
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut parts: Vec<Part> = Vec::with_capacity(conns.len());
    let mut started: Vec<Instant> = Vec::with_capacity(conns.len());
    let mut sending: FuturesUnordered<Write<'_>> = FuturesUnordered::new();
    let mut waiting = 0usize;
    for (idx, conn) in conns.iter().enumerate() {
        started.push(Instant::now());
        let Ok(permit) = conn.streams.clone().try_acquire_owned() else {
            parts.push(Part::Done);
            if out
                .send(fail(idx, StreamError::Busy(conn.name.clone())))
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        parts.push(Part::Sending);
        waiting += 1;
        let (frame, tx) = (framed.clone(), tx.clone());
        // Outside tokio's cooperative budget: this task writes to thousands
        // of queues in a row, and a write must wait only when its queue is
        // full (the loop yields on its own, below).
        let mut send: Write<'_> = Box::pin(tokio::task::unconstrained(async move {
            let r = conn
                .control
                .ask_part(&conn.name, wire_id, frame, tx, idx, permit);
            (idx, r.await)
        }));
        // Nearly always written at once; one that waits goes on in the
        // background with the others that wait.
        match std::future::poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await {
            Poll::Ready((idx, r)) => {
                if let Some(e) = sent(&mut parts[idx], r) {
                    waiting -= 1;
                    if out.send(fail(idx, e)).await.is_err() {
                        return;
                    }
                }
            }
            Poll::Pending => sending.push(send),
        }
        if idx % FANOUT_YIELD_EVERY == FANOUT_YIELD_EVERY - 1 {
            // Let the sessions on this thread write what is queued.
            tokio::task::yield_now().await;
        }
    }
    drop(tx);
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut batch = Vec::with_capacity(FANOUT_BATCH);
    let mut answers_open = true;
    while waiting > 0 && (answers_open || !sending.is_empty()) {
        tokio::select! {
            n = rx.recv_many(&mut batch, FANOUT_BATCH), if answers_open => answers_open = n > 0,
            Some((idx, r)) = sending.next(), if !sending.is_empty() => {
                if let Some(e) = sent(&mut parts[idx], r) {
                    waiting -= 1;
                    if out.send(fail(idx, e)).await.is_err() {
                        return;
                    }
                }
            }
            _ = &mut deadline => break,
        }
        for (idx, answer) in batch.drain(..) {
            let Some(part) = parts.get_mut(idx) else {
                continue;
            };
            match std::mem::replace(part, Part::Done) {
                Part::Done => continue,
                Part::Open(asked) => asked.done(),
                Part::Sending => {}
            }
            waiting -= 1;
            let name = &conns[idx].name;
            let reply = match answer {
                Some(r) => finish(r, id, name, ping, started[idx]),
                None => fail(idx, StreamError::Closed(name.clone())),
            };
            if out.send(reply).await.is_err() {
                return;
            }
        }
    }
    // Writes still waiting are dropped (their guards cancel them at the agent).
    drop(sending);
    // What is still open timed out; dropping its guard cancels it.
    for (idx, part) in parts.iter_mut().enumerate() {
        if matches!(std::mem::replace(part, Part::Done), Part::Done) {
            continue;
        }
        let name = &conns[idx].name;
        let r = Reply::error(
            Some(id),
            ErrorCode::Timeout,
            format!("agent {name} did not answer within {}s", limit.as_secs()),
        );
        if out.send(r.with_server(name.clone())).await.is_err() {
            return;
        }
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
