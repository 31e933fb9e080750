//! The channels the hub opens on us. The first frame names the action:
//! `control` (hello, then heartbeats both ways for the connection's life),
//! `enroll` (the join-token secret, once), or a request, served by
//! [`dispatch`](crate::dispatch) and streamed back within the hub's credit.
//! One-shot requests (ping, info, ps, ...) may also arrive on the control
//! channel itself, tagged with the hub's id ([`crate::one_shots`]); their one
//! answer goes back there.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use nextdeploy_shared::frame::{self, Decoder};
use nextdeploy_shared::limits::{HEARTBEAT_TIMEOUT, STREAM_WINDOW};
use nextdeploy_shared::protocol::{
    channel_kind, feature, ActionKind, ControlOpen, Downstream, EnrollAnswer, EnrollOutcome,
    ErrorBody, ErrorCode, HeartbeatData, Hello, Reply, ReplyType,
};
use nextdeploy_shared::secret::Secret;
use russh::client::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::buffer::replay::Replay;
use crate::docker::exec::ExecIn;
use crate::limits::{
    ENROLL_ANSWER_TIMEOUT, EXEC_INPUT_QUEUE, FIRST_FRAME_TIMEOUT, HANDLER_QUEUE, REPLAY_TICK,
};
use crate::one_shots::OneShots;
use crate::state::AgentState;
use crate::util::lock;

/// The enrolment in progress, when this connection is an enrolment.
pub struct EnrollSlot {
    /// The join token's secret, sent only on the pinned connection.
    pub secret: Secret<String>,
    /// Where the outcome goes.
    pub done: Mutex<Option<oneshot::Sender<Result<EnrollOutcome, EnrollError>>>>,
}

/// Why a reply could not be written to a channel.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The reply does not fit in a frame (or does not serialize).
    #[error("{0}")]
    Encode(#[from] frame::FrameError),
    /// The SSH channel refused the bytes (closed, or the connection is gone).
    #[error("{0}")]
    Write(#[from] russh::Error),
}

/// Why an enrolment did not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Our answer (the join token's secret) could not be sent.
    #[error("could not send the enrolment: {0}")]
    Send(SendError),
    /// The hub said yes but its outcome does not parse.
    #[error("malformed enrolment outcome: {0}")]
    Malformed(serde_json::Error),
    /// The hub refused, with its reason.
    #[error("{0}")]
    Refused(String),
    /// The hub closed the channel without an outcome.
    #[error("the hub closed the enrolment without an answer")]
    Closed,
    /// The hub sent no outcome in time.
    #[error("the hub did not answer the enrolment within {}s", ENROLL_ANSWER_TIMEOUT.as_secs())]
    TimedOut,
}

/// What channel tasks of one connection share.
pub struct Ctx {
    /// Process-wide state.
    pub state: Arc<AgentState>,
    /// Cancelled to drop this connection (heartbeat lost, shutdown).
    pub conn_cancel: CancellationToken,
    /// Set on enrolment connections only.
    pub enroll: Option<EnrollSlot>,
}

async fn send(write: &ChannelWriteHalf<Msg>, reply: &Reply) -> Result<usize, SendError> {
    let bytes = frame::encode_reply(reply)?;
    let n = bytes.len();
    write.data_bytes(bytes).await?;
    Ok(n)
}

/// Read the next hub frame. `None`: the channel is gone or broke the protocol.
async fn read_down(read: &mut ChannelReadHalf, dec: &mut Decoder) -> Option<Downstream> {
    loop {
        match dec.next_message::<Downstream>() {
            Ok(Some((d, _))) => return Some(d),
            Ok(None) => {}
            Err(e) => {
                warn!(error = %e, "bad frame from the hub");
                return None;
            }
        }
        match read.wait().await? {
            ChannelMsg::Data { data } => dec.feed(&data),
            ChannelMsg::Eof | ChannelMsg::Close => return None,
            _ => {}
        }
    }
}

/// Serve one channel opened by the hub.
pub async fn serve(channel: Channel<Msg>, ctx: Arc<Ctx>) {
    let (mut read, write) = channel.split();
    let mut dec = Decoder::new();
    let first = tokio::time::timeout(FIRST_FRAME_TIMEOUT, read_down(&mut read, &mut dec)).await;
    let Ok(Some(Downstream::Request {
        id,
        action,
        payload,
    })) = first
    else {
        debug!("channel without a request; closing");
        let _ = write.close().await;
        return;
    };
    match (action.as_str(), ctx.enroll.is_some()) {
        (channel_kind::ENROLL, true) => serve_enrolment(read, dec, &write, &ctx).await,
        (channel_kind::CONTROL, false) => {
            // The hub may ask for a faster heartbeat than configured (its timeout is shorter).
            let asked = serde_json::from_value::<ControlOpen>(payload)
                .ok()
                .and_then(|o| o.heartbeat_interval_s)
                .filter(|s| *s >= 1);
            let interval = match asked {
                Some(s) => ctx.state.heartbeat_interval.min(Duration::from_secs(s)),
                None => ctx.state.heartbeat_interval,
            };
            serve_control(read, dec, &write, &ctx, interval).await
        }
        (_, false) => serve_request(id, action, payload, read, dec, &write, &ctx).await,
        (_, true) => {
            let _ = send(
                &write,
                &Reply::error(
                    Some(id),
                    ErrorCode::BadRequest,
                    "this connection only enrols",
                ),
            )
            .await;
        }
    }
    let _ = write.close().await;
}

async fn serve_control(
    mut read: ChannelReadHalf,
    mut dec: Decoder,
    write: &ChannelWriteHalf<Msg>,
    ctx: &Ctx,
    interval: Duration,
) {
    let Ok((mut pushed, mut replay)) = send_greeting(write, ctx).await else {
        ctx.conn_cancel.cancel();
        return;
    };
    let rec = &ctx.state.recorder;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut replay_tick = tokio::time::interval(REPLAY_TICK);
    replay_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    let mut last_ack = Instant::now();
    // One-shot requests the hub sent on this channel; dropped (and so aborted)
    // with the connection.
    let mut one_shots = OneShots::new(ctx.state.clone());
    loop {
        let ok = tokio::select! {
            _ = ctx.conn_cancel.cancelled() => return,
            Some(reply) = one_shots.answers.recv() => {
                one_shots.answered(&reply);
                match crate::one_shots::encode_answer(&reply) {
                    Ok(b) => write.data_bytes(b).await.is_ok(),
                    Err(_) => false,
                }
            }
            _ = tick.tick() => {
                if last_ack.elapsed() > HEARTBEAT_TIMEOUT {
                    warn!(secs = HEARTBEAT_TIMEOUT.as_secs(), "no heartbeat answer from the hub");
                    false
                } else {
                    seq += 1;
                    let hb = Reply::new(Some(0), ReplyType::Heartbeat, serde_json::to_value(HeartbeatData { seq }).unwrap_or_default());
                    send(write, &hb).await.is_ok()
                }
            }
            _ = replay_tick.tick(), if replay.pending(rec) => {
                let frames = replay.next_frames(rec);
                frames.is_empty() || write.data_bytes(frames).await.is_ok()
            }
            p = pushed.recv() => match p {
                Ok(reply) => send(write, &reply).await.is_ok(),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    warn!(dropped = n, "the hub link is slower than our snapshots and events; the buffer replays them");
                    replay.lagged(rec);
                    true
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => true,
            },
            d = read_down(&mut read, &mut dec) => match d {
                Some(Downstream::Heartbeat { .. }) => {
                    last_ack = Instant::now();
                    replay.heartbeat(rec);
                    true
                }
                Some(Downstream::BufferAck { id, ranges }) => {
                    replay.ack(rec, &id, &ranges);
                    true
                }
                Some(d) => on_downstream(d, write, ctx, &mut one_shots).await,
                None => {
                    warn!("the hub closed the control channel");
                    false
                }
            }
        };
        if !ok {
            ctx.conn_cancel.cancel();
            return;
        }
    }
}

/// A frame of the hub on the control channel other than heartbeats and
/// buffer acknowledgements; `false` when the channel broke.
async fn on_downstream(
    d: Downstream,
    write: &ChannelWriteHalf<Msg>,
    ctx: &Ctx,
    one_shots: &mut OneShots,
) -> bool {
    match d {
        Downstream::Ack { deploy_id } => {
            if let Err(e) = ctx.state.deployer.acknowledged(&deploy_id) {
                warn!(error = %e, "refused the hub's acknowledgement");
            }
        }
        Downstream::Request {
            id,
            action,
            payload,
        } => {
            if let Some(refusal) = one_shots.start(id, action, payload) {
                return send(write, &refusal).await.is_ok();
            }
        }
        Downstream::Cancel { id } => one_shots.cancel(id),
        _ => {}
    }
    true
}

/// Open the control channel: our hello, then (subscribed to pushed replies
/// from then on) the deploy outcomes the hub has not acknowledged (it may
/// have been away). Returns the subscription and the buffer's replay.
async fn send_greeting(
    write: &ChannelWriteHalf<Msg>,
    ctx: &Ctx,
) -> Result<(broadcast::Receiver<Reply>, Replay), SendError> {
    let buffer = ctx.state.recorder.hello();
    let mut features = vec![
        feature::CONTROL_REQUESTS.to_string(),
        feature::EXEC.to_string(),
    ];
    if buffer.is_some() {
        features.push(feature::BUFFER.to_string());
    }
    let hello = Hello {
        hostname: crate::sysinfo::hostname(),
        version: nextdeploy_shared::VERSION.to_string(),
        os: crate::sysinfo::os_name(),
        docker: ctx.state.engine.status().await,
        features,
        policy: Some(ctx.state.policy.rules().clone()),
        buffer,
    };
    let reply = Reply::new(
        Some(0),
        ReplyType::Hello,
        serde_json::to_value(&hello).unwrap_or(Value::Null),
    );
    send(write, &reply).await?;
    let (pushed, live_from) = ctx.state.recorder.subscribe();
    for r in ctx.state.deployer.undelivered() {
        send(write, &r).await?;
    }
    Ok((pushed, Replay::new(live_from)))
}

async fn serve_enrolment(
    mut read: ChannelReadHalf,
    mut dec: Decoder,
    write: &ChannelWriteHalf<Msg>,
    ctx: &Ctx,
) {
    let Some(slot) = &ctx.enroll else { return };
    let finish = |r: Result<EnrollOutcome, EnrollError>| {
        if let Some(tx) = lock(&slot.done).take() {
            let _ = tx.send(r);
        }
    };
    let answer = EnrollAnswer {
        secret: slot.secret.expose().clone(),
        hostname: crate::sysinfo::hostname(),
    };
    let reply = Reply::result(
        Some(0),
        serde_json::to_value(&answer).unwrap_or(Value::Null),
    );
    if let Err(e) = send(write, &reply).await {
        finish(Err(EnrollError::Send(e)));
        return;
    }
    let outcome = tokio::time::timeout(ENROLL_ANSWER_TIMEOUT, read_down(&mut read, &mut dec)).await;
    match outcome {
        Ok(Some(Downstream::Outcome { ok: true, data })) => {
            finish(serde_json::from_value(data).map_err(EnrollError::Malformed))
        }
        Ok(Some(Downstream::Outcome { ok: false, data })) => finish(Err(EnrollError::Refused(
            serde_json::from_value::<ErrorBody>(data)
                .map(|b| b.message)
                .unwrap_or_else(|_| "the hub refused the enrolment".into()),
        ))),
        Ok(_) => finish(Err(EnrollError::Closed)),
        Err(_) => finish(Err(EnrollError::TimedOut)),
    }
}

/// Serve a request: run its handler and write its replies, each only when the
/// hub has credit for it. The hub closing the channel cancels the handler.
async fn serve_request(
    id: u64,
    action: String,
    payload: Value,
    mut read: ChannelReadHalf,
    mut dec: Decoder,
    write: &ChannelWriteHalf<Msg>,
    ctx: &Ctx,
) {
    let (tx, rx) = mpsc::channel::<Reply>(HANDLER_QUEUE);
    let (input, input_rx) = match action == ActionKind::Exec.name() {
        true => {
            let (t, r) = mpsc::channel(EXEC_INPUT_QUEUE);
            (Some(t), Some(r))
        }
        false => (None, None),
    };
    let handler = tokio::spawn(crate::dispatch::handle(
        id,
        action,
        payload,
        ctx.state.clone(),
        tx,
        input_rx,
    ));
    let ends = Ends {
        input: input.as_ref(),
        cancel: &ctx.conn_cancel,
    };
    write_with_credit(id, rx, &mut read, &mut dec, write, ends).await;
    handler.abort();
}

/// What else a request's channel serves besides its replies.
pub struct Ends<'a> {
    /// An exec's input, from [`Downstream::Input`] and [`Downstream::Resize`].
    pub input: Option<&'a mpsc::Sender<ExecIn>>,
    /// Cancelled with the connection.
    pub cancel: &'a CancellationToken,
}

/// Pass an exec's input frame on. `false`: the hub broke the protocol (input
/// on a channel that takes none, bad base64, more than its credit).
fn take_input(input: Option<&mpsc::Sender<ExecIn>>, d: Downstream) -> bool {
    let Some(input) = input else {
        warn!("input frame on a channel that takes none");
        return false;
    };
    let mut msgs = Vec::with_capacity(2);
    match d {
        Downstream::Input { b64, eof } => {
            if !b64.is_empty() {
                match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
                    Ok(bytes) => msgs.push(ExecIn::Data(bytes)),
                    Err(e) => {
                        warn!(error = %e, "bad base64 in an input frame");
                        return false;
                    }
                }
            }
            if eof {
                msgs.push(ExecIn::Eof);
            }
        }
        Downstream::Resize { cols, rows } => msgs.push(ExecIn::Resize(cols, rows)),
        _ => return true,
    }
    msgs.into_iter().all(|m| match input.try_send(m) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            warn!("the hub sent more input than its credit");
            false
        }
    })
}

/// Write a request's `replies` to its channel, each only when the hub has
/// credit for it, until the terminal reply, the hub closing the channel, or
/// `ends.cancel`; pass an exec's input frames to `ends.input`. The bench's
/// simulated agents stream through this too.
pub async fn write_with_credit(
    id: u64,
    mut replies: mpsc::Receiver<Reply>,
    read: &mut ChannelReadHalf,
    dec: &mut Decoder,
    write: &ChannelWriteHalf<Msg>,
    ends: Ends<'_>,
) {
    let cancel = ends.cancel;
    let mut credit: usize = STREAM_WINDOW as usize;
    let mut pending: Option<(Vec<u8>, bool)> = None;
    loop {
        if let Some((bytes, terminal)) = pending.take() {
            if bytes.len() <= credit {
                credit -= bytes.len();
                if write.data_bytes(bytes).await.is_err() || terminal {
                    break;
                }
            } else {
                pending = Some((bytes, terminal));
            }
        }
        tokio::select! {
            r = replies.recv(), if pending.is_none() => match r {
                Some(reply) => match frame::encode_reply(&reply) {
                    Ok(bytes) => pending = Some((bytes, reply.kind.is_terminal())),
                    Err(e) => {
                        let err = Reply::error(Some(id), ErrorCode::TooLarge, format!("reply too large: {e}"));
                        let _ = send(write, &err).await;
                        break;
                    }
                },
                None => {
                    let _ = send(write, &Reply::error(Some(id), ErrorCode::AgentError, "the handler ended without an answer")).await;
                    break;
                }
            },
            d = read_down(read, dec) => match d {
                Some(Downstream::Credit { bytes }) => credit = credit.saturating_add(bytes as usize),
                Some(d @ (Downstream::Input { .. } | Downstream::Resize { .. })) => {
                    if !take_input(ends.input, d) {
                        break;
                    }
                }
                Some(_) => {}
                None => break,
            },
            _ = cancel.cancelled() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::one_shots::encode_answer;
    use nextdeploy_shared::limits::MAX_FRAME_LEN;
    use serde_json::json;

    #[test]
    fn an_oversized_answer_becomes_a_too_large_error() {
        let big = Reply::result(Some(5), json!({ "x": "y".repeat(MAX_FRAME_LEN) }));
        let bytes = encode_answer(&big).unwrap();
        let mut d = Decoder::new();
        d.feed(&bytes);
        let (r, _) = d.next_message::<Reply>().unwrap().unwrap();
        assert_eq!((r.id, r.kind), (Some(5), ReplyType::Error));
        assert_eq!(r.data["code"], "too_large");
        let small = Reply::result(Some(6), json!({ "ok": true }));
        assert_eq!(
            encode_answer(&small).unwrap(),
            frame::encode(&small).unwrap()
        );
    }
}
