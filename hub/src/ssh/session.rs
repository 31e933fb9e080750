//! One task per authenticated connection. The hub opens the channels: first
//! the control channel (hello, then heartbeats both ways), registering the
//! agent in the [`Registry`](crate::agents::Registry); or, for a new key with a
//! join token, the enrolment exchange.

use crate::limits::HELLO_TIMEOUT;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use nextdeploy_shared::frame;
use nextdeploy_shared::protocol::{
    channel_kind, feature, ControlOpen, Downstream, HeartbeatData, Hello, Reply, ReplyType,
};
use nextdeploy_shared::time::now_unix;
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelWriteHalf, Disconnect};
use serde_json::Value;
use tracing::{debug, info, warn};

use super::handler::Identity;
use super::seqs::Seqs;
use super::tap::{self, Inbox, Reader, Tap, TapSlot};
use crate::agents::conflict::Refusal;
use crate::agents::control::{Control, SendError};
use crate::agents::{AgentConn, NewConn};
use crate::store::{self, AgentRecord};
use crate::Services;

/// Why an agent's connection could not start or ended early.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The peer did not answer a channel open in time.
    #[error("the peer did not answer the channel open")]
    OpenTimeout,
    /// The peer refused a channel: not an agent, or an agent out of step.
    #[error("the peer refused the {action} channel (not a NextDeploy agent?): {source}")]
    OpenRefused {
        /// The channel's kind.
        action: String,
        /// What russh said.
        source: russh::Error,
    },
    /// A frame could not be written to the agent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The agent sent a frame that could not be read.
    #[error("bad frame from agent: {0}")]
    BadFrame(#[from] frame::FrameError),
    /// The agent said nothing within the wait.
    #[error("silent for {}s", .0.as_secs())]
    Silent(Duration),
    /// The agent closed the channel before the exchange ended.
    #[error("the agent closed the channel")]
    Closed,
    /// The agent's frame was of a kind the exchange does not expect here.
    #[error("expected {expected}, got {got:?}")]
    Unexpected {
        /// What the exchange waited for.
        expected: &'static str,
        /// What came.
        got: ReplyType,
    },
    /// Another live connection holds this agent's key and the two kept replacing
    /// each other: this one is refused (the message starts `KEY_CONFLICT_PREFIX`).
    #[error("{0}")]
    KeyConflict(String),
    /// This hub cannot take the agent's lease in its cluster.
    #[error(transparent)]
    Claim(#[from] crate::cluster::presence::ClaimError),
    /// Too many authenticated connections are waiting to register.
    #[error(transparent)]
    Busy(#[from] crate::agents::pending::Full),
    /// The agent was revoked (or its key rotated) after it authenticated.
    #[error("the agent's key is no longer enrolled")]
    Revoked,
    /// The key could not be checked again (a store error): try again.
    #[error("this hub cannot read its store; try again or another hub: {0}")]
    Store(store::StoreError),
    /// The hub is shutting down.
    #[error("hub shutting down")]
    ShuttingDown,
    /// The agent's hello or enrolment answer did not parse.
    #[error("malformed {what}: {source}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// Why it did not parse.
        source: serde_json::Error,
    },
}

/// Run the conversation of one authenticated connection.
pub async fn run(
    svc: Arc<Services>,
    handle: Handle,
    identity: Identity,
    peer: SocketAddr,
    slot: TapSlot,
) {
    let outcome = match identity {
        Identity::Agent(rec) => serve_agent(&svc, &handle, rec, peer, slot).await,
        // Boxed: an enrolment is rare and short, and inline its state would
        // sit in every connected agent's task.
        Identity::Enroll { token_id, key } => {
            match svc.registry.pending.enter(None, svc.cancel.child_token()) {
                Ok(_waiting) => {
                    Box::pin(super::enrol::serve_enrolment(
                        &svc, &handle, &token_id, &key,
                    ))
                    .await
                }
                Err(full) => Err(full.into()),
            }
        }
        // Never started for a withdrawal (see handler::auth_succeeded).
        Identity::Withdrawn { .. } => Ok("enrolment withdrawn".into()),
    };
    let reason = match outcome {
        Ok(reason) => {
            debug!(reason, "closing connection");
            reason
        }
        Err(e) => {
            info!(error = %e, "closing connection");
            e.to_string()
        }
    };
    let _ = handle
        .disconnect(Disconnect::ByApplication, reason, "en".into())
        .await;
}

/// Whether a bad frame on the control channel ends the connection (with the
/// reason): a length over the limit leaves no way to find the next frame, so
/// the bytes after it cannot be read; a frame whose JSON is bad was taken
/// whole and is skipped.
fn ends_connection(e: &frame::FrameError) -> Option<String> {
    match e {
        frame::FrameError::TooLarge(n) => Some(format!(
            "protocol error: a control frame of {n} bytes, over the limit"
        )),
        frame::FrameError::Malformed(_) => None,
    }
}

pub(super) async fn open_session(
    handle: &Handle,
    action: &str,
) -> Result<Channel<Msg>, SessionError> {
    tokio::time::timeout(HELLO_TIMEOUT, handle.channel_open_session())
        .await
        .map_err(|_| SessionError::OpenTimeout)?
        .map_err(|source| SessionError::OpenRefused {
            action: action.to_string(),
            source,
        })
}

/// A typed opening payload as JSON.
pub(super) fn to_payload<T: serde::Serialize>(payload: T) -> Value {
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

pub(super) fn first_request(action: &str, payload: Value) -> Downstream {
    Downstream::Request {
        id: 0,
        action: action.into(),
        payload,
    }
}

/// Open the control channel, read from here on by the connection's handler
/// ([`super::tap`]): its read half is dropped before the agent can say a word.
async fn open_control(
    handle: &Handle,
    slot: TapSlot,
    registered: Arc<OnceLock<Weak<AgentConn>>>,
    payload: Value,
) -> Result<(Reader, ChannelWriteHalf<Msg>), SessionError> {
    let channel = open_session(handle, channel_kind::CONTROL).await?;
    let (inbox, reader) = Inbox::new();
    let tap = Tap::new(channel.id(), inbox, registered);
    let (read, write) = channel.split();
    drop(read);
    *crate::sync::lock_or_recover(&slot) = Some(tap);
    send(&write, &first_request(channel_kind::CONTROL, payload)).await?;
    Ok((reader, write))
}

pub(super) async fn send(write: &ChannelWriteHalf<Msg>, msg: &Downstream) -> Result<(), SendError> {
    let bytes = frame::encode(msg)?;
    Ok(write.data_bytes(bytes).await?)
}

/// The next event of the control channel that is a reply (the hello; a
/// snapshot is refused as any other frame is), or why there is none.
async fn next_event(inbox: &Reader, within: Duration) -> Result<Reply, SessionError> {
    match tokio::time::timeout(within, inbox.next()).await {
        Err(_) => Err(SessionError::Silent(within)),
        Ok(Some(tap::Event::Reply(r))) => Ok(*r),
        Ok(Some(tap::Event::Health(_))) => Ok(Reply::new(None, ReplyType::Health, Value::Null)),
        Ok(Some(tap::Event::Bad(e))) => Err(SessionError::BadFrame(*e)),
        Ok(Some(tap::Event::Closed) | None) => Err(SessionError::Closed),
    }
}

/// Serve one agent's connection: bring it online, answer its control
/// channel until the connection ends, then take it offline. Returns why it
/// ended.
async fn serve_agent(
    svc: &Arc<Services>,
    handle: &Handle,
    rec: AgentRecord,
    peer: SocketAddr,
    slot: TapSlot,
) -> Result<String, SessionError> {
    // The one-time and the occasional awaits are boxed so that the task of
    // an idle agent holds only what waiting needs.
    let (conn, inbox, mut seqs) = Box::pin(bring_online(svc, handle, rec, peer, slot)).await?;
    // A cut (revocation, a hub cut off from its store) does not wait for
    // whatever the loop awaits (a store that may hang): what was not stored
    // and acknowledged is sent again on the next connection, counted once.
    let reason = tokio::select! {
        r = watch_control(svc, &conn, &inbox, &mut seqs) => r,
        _ = conn.cancel.cancelled() => super::recheck::cancel_reason(svc, &conn).to_string(),
    };
    // A hub cut off from its cluster's store would wait on it in vain.
    let cut_off = svc.config.cluster.as_ref().is_some_and(|c| c.is_cut_off());
    if let Some(s) = seqs
        .as_mut()
        .filter(|s| !cut_off && s.until_due().is_some())
    {
        Box::pin(s.flush(svc, &conn.name, None)).await;
    }
    Box::pin(take_offline(svc, &conn, &reason)).await;
    Ok(reason)
}

/// Open the control channel, wait for the hello, check the key again and
/// register the agent. Until registered the connection is counted in
/// [`crate::agents::pending`], where a revocation finds it, and the whole
/// greeting is bounded by [`HELLO_TIMEOUT`].
async fn bring_online(
    svc: &Arc<Services>,
    handle: &Handle,
    rec: AgentRecord,
    peer: SocketAddr,
    slot: TapSlot,
) -> Result<(Arc<AgentConn>, Reader, Option<Box<Seqs>>), SessionError> {
    // The connection's own token from the start: a revocation between the
    // key check below and the registration cancels the registered connection.
    let cancel = svc.cancel.child_token();
    let _waiting = svc
        .registry
        .pending
        .enter(Some(&rec.name), cancel.clone())?;
    let registered = Arc::new(OnceLock::new());
    let greeting = greet(svc, handle, slot, registered.clone());
    let (inbox, write, hello) = tokio::select! {
        g = tokio::time::timeout(HELLO_TIMEOUT, greeting) => {
            g.map_err(|_| SessionError::Silent(HELLO_TIMEOUT))??
        }
        _ = cancel.cancelled() => return Err(super::recheck::cut_reason(svc)),
    };
    super::recheck::still_enrolled(svc, &rec).await?;
    // In a cluster the lease comes first: the heartbeat may then trust
    // that every registered agent's lease is written.
    crate::cluster::presence::claim(svc, &rec.name).await?;
    let now = now_unix();
    let control = Control::new(
        write,
        hello.supports(feature::CONTROL_REQUESTS),
        svc.registry.request_ids.clone(),
    );
    let conn = svc.registry.new_conn(NewConn {
        name: rec.name.clone(),
        labels: rec.labels.clone(),
        handle: handle.clone(),
        control,
        hello: hello.clone(),
        address: peer,
        now,
        cancel,
    });
    // From here answers go to their waiters from the handler.
    let _ = registered.set(Arc::downgrade(&conn));
    if let Err(Refusal { reason, first }) = svc.registry.register(conn.clone()) {
        conn.control.close();
        if svc.registry.get(&rec.name).is_none() {
            crate::cluster::presence::release(svc, &rec.name).await;
        }
        if first {
            warn!(%reason, "two agents share one key; refusing the newcomer from now on");
            svc.recent
                .agent_event(&svc.telemetry, &rec.name, &rec.labels, "conflict");
        }
        return Err(SessionError::KeyConflict(reason));
    }
    let (name, addr, version, host) = (
        rec.name.clone(),
        peer.to_string(),
        hello.version.clone(),
        hello.hostname.clone(),
    );
    if let Err(e) = store::blocking(&svc.store, move |s| {
        s.touch_agent(&name, now, Some(&addr), Some(&version), Some(&host))
    })
    .await
    {
        warn!(error = %e, "could not record the connection");
    }
    info!(version = %hello.version, hostname = %hello.hostname, "agent online");
    svc.recent
        .agent_event(&svc.telemetry, &rec.name, &rec.labels, "online");
    svc.alerts.offer_agent(&rec.name, &rec.labels, "online");
    // Before any heartbeat answer: the agent learns the hub takes its buffer.
    let seqs = Seqs::load(svc, &rec.name, &hello).await;
    if let Some(s) = &seqs {
        conn.control.send(&s.ack()).await?;
    }
    Ok((conn, inbox, seqs))
}

/// Open the control channel and read the hello on it.
async fn greet(
    svc: &Services,
    handle: &Handle,
    slot: TapSlot,
    registered: Arc<OnceLock<Weak<AgentConn>>>,
) -> Result<(Reader, ChannelWriteHalf<Msg>, Hello), SessionError> {
    // Tell the agent how often to heartbeat: three beats per timeout, so one
    // lost beat never marks a healthy agent offline.
    let beat = (svc.config.heartbeat_timeout.as_secs() / 3).max(1);
    let payload = to_payload(ControlOpen {
        heartbeat_interval_s: Some(beat),
    });
    let (inbox, write) = open_control(handle, slot, registered, payload).await?;
    let hello = read_hello(&inbox).await?;
    Ok((inbox, write, hello))
}

/// The agent's first word on the control channel, which must be its hello.
async fn read_hello(inbox: &Reader) -> Result<Hello, SessionError> {
    let first = next_event(inbox, HELLO_TIMEOUT).await?;
    if first.kind != ReplyType::Hello {
        return Err(SessionError::Unexpected {
            expected: "hello",
            got: first.kind,
        });
    }
    serde_json::from_value(first.data).map_err(|source| SessionError::Malformed {
        what: "hello",
        source,
    })
}

/// Answer heartbeats and take pushes until the connection is cut, goes
/// silent or breaks the protocol. Returns why it ended.
async fn watch_control(
    svc: &Services,
    conn: &Arc<AgentConn>,
    inbox: &Reader,
    seqs: &mut Option<Box<Seqs>>,
) -> String {
    let timeout = svc.config.heartbeat_timeout;
    let mut wait = timeout;
    loop {
        let due = seqs.as_ref().and_then(|s| s.until_due());
        if let (Some(s), Some(Duration::ZERO)) = (seqs.as_mut(), due) {
            Box::pin(s.flush(svc, &conn.name, Some(conn))).await;
        }
        let step = due.filter(|d| !d.is_zero()).map_or(wait, |d| d.min(wait));
        let event = tokio::select! {
            _ = conn.cancel.cancelled() => return super::recheck::cancel_reason(svc, conn).to_string(),
            e = tokio::time::timeout(step, inbox.next()) => e,
        };
        if event.is_err() && step < wait {
            // Woken for the acknowledgement: the heartbeat's wait goes on.
            wait -= step;
            continue;
        }
        wait = timeout;
        match event {
            Err(_) => {
                // Answers bypass this task: they count as signs of life too.
                let quiet = now_unix() - conn.last_seen.load(Ordering::Relaxed);
                let quiet = Duration::from_secs(quiet.max(0) as u64);
                if quiet < timeout {
                    wait = (timeout - quiet).max(crate::limits::HEARTBEAT_RECHECK_MIN);
                    continue;
                }
                warn!(secs = timeout.as_secs(), "no heartbeat; marking offline");
                return format!("no heartbeat for {}s", timeout.as_secs());
            }
            Ok(Some(tap::Event::Reply(reply))) => {
                Box::pin(answer_reply(svc, conn, *reply, seqs.as_deref_mut())).await
            }
            Ok(Some(tap::Event::Health(snap))) => {
                if seqs.as_mut().is_none_or(|s| s.take(snap.seq, snap.late)) {
                    super::push::record_health(svc, conn, *snap)
                }
            }
            Ok(Some(tap::Event::Bad(e))) => match ends_connection(&e) {
                Some(why) => {
                    warn!(error = %e, "control channel out of step; disconnecting");
                    return why;
                }
                None => warn!(error = %e, "bad control frame skipped"),
            },
            Ok(Some(tap::Event::Closed) | None) => return "control channel closed".to_string(),
        }
    }
}

/// Answer a heartbeat, or hand a push (or an answer that arrived before
/// registration) to [`super::push::record_push`] and acknowledge a deploy outcome.
async fn answer_reply(svc: &Services, conn: &AgentConn, reply: Reply, seqs: Option<&mut Seqs>) {
    if reply.kind == ReplyType::Heartbeat {
        let seq = serde_json::from_value::<HeartbeatData>(reply.data)
            .map(|h| h.seq)
            .unwrap_or(0);
        if let Err(e) = conn.control.send(&Downstream::Heartbeat { seq }).await {
            debug!(error = %e, "heartbeat answer failed");
        }
        return;
    }
    let Some(reply) = conn.control.deliver(reply) else {
        return;
    };
    if let Some(deploy_id) = super::push::record_push(svc, conn, reply, seqs).await {
        let _ = conn.control.send(&Downstream::Ack { deploy_id }).await;
    }
}

/// Fail the agent's waiting requests, unregister it (unless a newer
/// connection replaced it) and record when it was last seen.
async fn take_offline(svc: &Services, conn: &AgentConn, reason: &str) {
    conn.control.close();
    let removed = svc.registry.unregister(&conn.name, conn.conn_id);
    // A hub cut off from its cluster's store writes nothing more: each
    // write would hold the store's connection (and the reads behind it)
    // for a busy timeout; the lease expires by itself.
    let cut_off = svc.config.cluster.as_ref().is_some_and(|c| c.is_cut_off());
    if !cut_off {
        let last = conn.last_seen.load(Ordering::Relaxed);
        let name = conn.name.clone();
        let _ = store::blocking(&svc.store, move |s| {
            s.touch_agent(&name, last, None, None, None)
        })
        .await;
    }
    if removed {
        crate::cluster::presence::release(svc, &conn.name).await;
        info!(reason = %reason, "agent offline");
        svc.recent
            .agent_event(&svc.telemetry, &conn.name, &conn.labels, "offline");
        svc.alerts.offer_agent(&conn.name, &conn.labels, "offline");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nextdeploy_shared::frame::Decoder;
    use nextdeploy_shared::limits::MAX_FRAME_LEN;

    #[test]
    fn an_oversized_control_frame_ends_the_connection_a_bad_one_is_skipped() {
        let mut d = Decoder::new();
        // A bad frame, then a good heartbeat: the first is skipped, the
        // second still read.
        d.feed(&[0, 0, 0, 3]);
        d.feed(b"{x}");
        d.feed(
            &frame::encode(&serde_json::json!({"id": 0, "type": "heartbeat", "data": {"seq": 1}}))
                .unwrap(),
        );
        let e = d.next_message::<Reply>().unwrap_err();
        assert_eq!(ends_connection(&e), None);
        let (r, _) = d.next_message::<Reply>().unwrap().unwrap();
        assert_eq!(r.kind, ReplyType::Heartbeat);
        // A length over the limit: the decoder cannot go past it.
        d.feed(&((MAX_FRAME_LEN + 1) as u32).to_be_bytes());
        d.feed(b"{}");
        let e = d.next_message::<Reply>().unwrap_err();
        assert!(ends_connection(&e).is_some_and(|w| w.contains("over the limit")));
        assert!(
            d.next_message::<Reply>().is_err(),
            "still stuck on that header"
        );
    }
}
