//! One WebSocket client: authenticated on the upgrade request, then a send task
//! (draining a bounded queue into the socket) and a receive loop (parsing
//! requests, each run in its own task, bounded per client). Either ending ends
//! the other and cancels the client's requests.

use crate::limits::SEND_BATCH_BYTES;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use crate::limits::{CLIENT_SEND_QUEUE, EXEC_CLIENT_QUEUE, MAX_REQUESTS_PER_CLIENT};
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::OptionFuture;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use nextdeploy_shared::protocol::admin::Cancelled;
use nextdeploy_shared::protocol::{Action, ErrorCode, Reply, Request};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use crate::api::auth::TokenEnd;
use crate::api::exec::input::Stalled;
use crate::api::{self, auth, exec, Caller};
use crate::serve::initial_token;
use crate::sync::lock_or_recover;
use crate::Services;

/// `GET /ws`: check Origin and token before upgrading.
pub async fn upgrade(
    State(svc): State<Arc<Services>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !super::origin_allowed(&headers, &svc.config.allowed_origins) {
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    // Subscribed before the token is checked: a revocation made between the
    // check and the end of the upgrade still reaches the connection.
    let revocations = svc.store.revocations();
    let (caller, session_end, once) = match super::peer::caller(&svc, &headers).await {
        Some(Ok((caller, once))) => (caller, None, once),
        Some(Err(refused)) => return refused,
        None => match super::ws_auth::authenticate(&svc, &headers).await {
            Ok((caller, end)) => (caller, end, false),
            Err(refused) => return refused,
        },
    };
    // A hub's link stands for a connection its client holds there (and
    // counts against the token's cap there).
    let place = match caller.forwarded_by {
        Some(_) => None,
        None => match svc.ws_connections.try_open(&caller.token_id) {
            Some(p) => Some(p),
            None => return super::ws_auth::too_many(&svc, &caller),
        },
    };
    initial_token::retire_on_first_use(&svc.config.data_dir, &caller.token_id, &caller.name);
    let max = svc.config.max_message_bytes;
    let span = tracing::info_span!("ws", token = %caller.name, role = caller.role.as_str());
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            // The place is given back when the connection ends, however it
            // ends (or with this closure, if the upgrade never completes).
            async move {
                let metrics = svc.metrics.clone();
                metrics.ws_clients.fetch_add(1, Ordering::Relaxed);
                let caller = Arc::new(caller);
                serve_client(svc, caller, revocations, session_end, once, socket).await;
                metrics.ws_clients.fetch_sub(1, Ordering::Relaxed);
                drop(place);
            }
            .instrument(span)
        })
}

/// In-flight requests of one client, by id, so they can be cancelled.
type InFlight = Arc<Mutex<HashMap<u64, CancellationToken>>>;

/// Serve one upgraded client until it hangs up, its writer fails, its token
/// is revoked or expires, its dashboard session ends, or the hub shuts down.
async fn serve_client(
    svc: Arc<Services>,
    caller: Arc<Caller>,
    mut revocations: broadcast::Receiver<String>,
    session_end: Option<CancellationToken>,
    once: bool,
    socket: WebSocket,
) {
    debug!("client connected");
    let expiry = caller.time_left().map(tokio::time::sleep);
    let (sink, mut source) = socket.split();
    let (tx, rx) = mpsc::channel::<Reply>(CLIENT_SEND_QUEUE);
    let cancel = svc.cancel.child_token();
    let close = Arc::new(OnceLock::new());
    let mut send_task = tokio::spawn(write_replies(sink, rx, cancel.clone(), close.clone()));
    let client = Client {
        svc,
        caller,
        slots: Arc::new(Semaphore::new(MAX_REQUESTS_PER_CLIENT)),
        inflight: Arc::default(),
        execs: Arc::default(),
        cancel,
        tx,
        once: once.then(CancellationToken::new),
    };
    // Exec input waiting for room in its exec's queue: no new message is
    // read until it is queued (the command sets the pace).
    let mut stalled: Option<Stalled> = None;
    tokio::pin!(expiry);
    let (mut send_done, mut announced) = (false, true);
    let ended = loop {
        // Biased: the token's end is seen before any message read after it,
        // so no request on a revoked or expired token is served.
        let msg = tokio::select! {
            biased;
            _ = client.cancel.cancelled() => break None,
            // A hub's one-request link: its replies go out, then it closes.
            Some(()) = OptionFuture::from(client.once.as_ref().map(|d| d.cancelled())) => break None,
            Some(()) = OptionFuture::from(session_end.as_ref().map(|e| e.cancelled())) => {
                break Some(TokenEnd::SignedOut)
            }
            r = revocations.recv(), if announced => match r {
                Ok(id) if id == client.caller.token_id => break Some(TokenEnd::Revoked),
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => {
                    match auth::revoked_in_store(&client.svc, &client.caller).await {
                        true => break Some(TokenEnd::Revoked),
                        false => continue,
                    }
                }
                Err(RecvError::Closed) => { announced = false; continue }
            },
            Some(()) = OptionFuture::from(expiry.as_mut().as_pin_mut()) => {
                match still_valid(&client.caller, expiry.as_mut().as_pin_mut()) {
                    true => continue,
                    false => break Some(TokenEnd::Expired),
                }
            }
            _ = &mut send_task => { send_done = true; break None }
            room = OptionFuture::from(stalled.as_ref().map(|s| s.tx.clone().reserve_owned())), if stalled.is_some() => {
                stalled = stalled.take().and_then(|s| s.room(room.and_then(Result::ok)));
                continue;
            }
            m = source.next(), if stalled.is_none() => m,
        };
        let answer = match read_message(&client.caller, msg) {
            Incoming::Stop => break None,
            Incoming::Skip => continue,
            Incoming::Answer(reply) => reply,
            Incoming::Run(req, action) => match client.run(req, *action, &mut stalled) {
                Some(reply) => reply,
                None => continue,
            },
        };
        let _ = client.tx.send(answer).await;
    };
    if client.once.as_ref().is_some_and(|d| d.is_cancelled()) {
        drop(client);
        let _ = send_task.await;
        return;
    }
    if let Some(end) = ended {
        info!(
            reason = end.reason(),
            "closing the connection: its token is no longer valid"
        );
        let _ = close.set(CloseFrame {
            code: close_code::POLICY,
            reason: end.reason().into(),
        });
    }
    client.cancel.cancel();
    drop(client);
    if !send_done {
        let _ = send_task.await;
    }
    debug!("client disconnected");
}

/// The token's expiry timer fired: true (and the timer reset) if the token
/// has time left. Checked against the wall clock the expiry is written in:
/// the timer runs on the monotonic clock, and tokio caps a far deadline (a
/// 10-year token) at about two years.
fn still_valid(caller: &Caller, sleep: Option<std::pin::Pin<&mut tokio::time::Sleep>>) -> bool {
    match (caller.time_left(), sleep) {
        (Some(left), Some(sleep)) if !left.is_zero() => {
            sleep.reset(tokio::time::Instant::now() + left);
            true
        }
        _ => false,
    }
}

/// Drain the client's queue into the socket until the queue closes, the
/// socket fails or `cancel` fires; then close the socket, with the frame in
/// `close` if one was set.
async fn write_replies(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Reply>,
    cancel: CancellationToken,
    close: Arc<OnceLock<CloseFrame>>,
) {
    'outer: loop {
        let first = tokio::select! {
            r = rx.recv() => match r { Some(r) => r, None => break },
            _ = cancel.cancelled() => break,
        };
        // Whatever else is already queued goes out in the same write: a
        // fan-out's thousands of answers, a fast log stream. One message
        // alone is flushed at once, as before.
        let mut next = Some(first);
        let mut batched = 0usize;
        while let Some(reply) = next.take() {
            if let Ok(text) = nextdeploy_shared::frame::reply_text(&reply) {
                batched += text.len();
                if sink.feed(Message::Text(text.into())).await.is_err() {
                    break 'outer;
                }
            }
            if batched < SEND_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    let _ = sink.send(Message::Close(close.get().cloned())).await;
}

/// What the reader does with one incoming message.
enum Incoming {
    /// The client hung up or the socket failed.
    Stop,
    /// Nothing to do (ping, pong).
    Skip,
    /// Answer at once (a refused message).
    Answer(Reply),
    /// Run this request (boxed: actions are large beside the other arms).
    Run(Request, Box<Action>),
}

/// Whether a socket error only says the client left without a close frame
/// (the TCP connection reset or closed under it).
fn went_away(e: &axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(ws) = s.downcast_ref::<WsError>() {
            return match ws {
                WsError::ConnectionClosed
                | WsError::AlreadyClosed
                | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => true,
                WsError::Io(io) => matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ),
                _ => false,
            };
        }
        source = s.source();
    }
    false
}

/// Parse one socket message into a request the caller may make, or what to
/// answer instead.
fn read_message(caller: &Caller, msg: Option<Result<Message, axum::Error>>) -> Incoming {
    let text = match msg {
        None | Some(Ok(Message::Close(_))) => return Incoming::Stop,
        Some(Err(e)) => {
            // A client that just goes away (no close frame) is routine;
            // oversized messages end up here too: axum refuses them and closes.
            if went_away(&e) {
                debug!(error = %e, "client went away without a close frame");
            } else {
                info!(error = %e, "client connection error");
            }
            return Incoming::Stop;
        }
        Some(Ok(Message::Text(t))) => t,
        Some(Ok(Message::Binary(_))) => {
            return Incoming::Answer(Reply::error(
                None,
                ErrorCode::BadRequest,
                "binary messages are not accepted; send JSON text",
            ))
        }
        Some(Ok(_)) => return Incoming::Skip,
    };
    let mut req: Request = match serde_json::from_str(text.as_str()) {
        Ok(r) => r,
        Err(e) => {
            let id = serde_json::from_str::<Value>(text.as_str())
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_u64));
            return Incoming::Answer(Reply::error(
                id,
                ErrorCode::BadRequest,
                format!("malformed request: {e}"),
            ));
        }
    };
    match api::read_action(caller, &mut req) {
        Ok(action) => Incoming::Run(req, Box::new(action)),
        Err(e) => Incoming::Answer(e.reply(req.id)),
    }
}

/// One connected client: what its requests share.
struct Client {
    svc: Arc<Services>,
    caller: Arc<Caller>,
    /// Request slots; each running request holds one.
    slots: Arc<Semaphore>,
    inflight: InFlight,
    /// Running execs, for their input.
    execs: exec::ExecInputs,
    /// Cancelled when the client goes; parent of every request's token.
    cancel: CancellationToken,
    /// The client's send queue.
    tx: mpsc::Sender<Reply>,
    /// A hub's link for one request: cancelled when that request ends.
    once: Option<CancellationToken>,
}

impl Client {
    /// Start `req`, or answer it at once: `cancel`, exec input (queued, or
    /// left in `stalled` until its exec has room), a refusal.
    fn run(&self, req: Request, action: Action, stalled: &mut Option<Stalled>) -> Option<Reply> {
        let queued = match action {
            Action::Cancel(c) => return Some(cancel_request(&self.inflight, req.id, c.id)),
            Action::ExecInput(p) => exec::input::input(&self.execs, p),
            Action::ExecResize(p) => exec::input::resize(&self.execs, p),
            action => return self.start_request(req, action).err(),
        };
        match queued {
            Ok(s) => {
                *stalled = s.push();
                None
            }
            Err(e) => Some(e.reply(req.id)),
        }
    }

    /// Run `req` in a task of its own, or say why not (too many in flight, a
    /// duplicate id).
    fn start_request(&self, mut req: Request, action: Action) -> Result<(), Reply> {
        req.local_only = self.caller.forwarded_by.is_some();
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Err(Reply::error(
                Some(req.id),
                ErrorCode::Busy,
                format!(
                    "at most {MAX_REQUESTS_PER_CLIENT} requests may be in flight per connection"
                ),
            ));
        };
        let req_cancel = self.cancel.child_token();
        match lock_or_recover(&self.inflight).entry(req.id) {
            Entry::Occupied(_) => {
                return Err(Reply::error(
                    Some(req.id),
                    ErrorCode::Conflict,
                    "a request with this id is already in flight",
                ))
            }
            Entry::Vacant(v) => {
                v.insert(req_cancel.clone());
            }
        }
        let (svc, caller, tx, inflight) = (
            self.svc.clone(),
            self.caller.clone(),
            self.tx.clone(),
            self.inflight.clone(),
        );
        let execs = self.execs.clone();
        let input = match &action {
            Action::Exec(p) => {
                let (itx, irx) = mpsc::channel(EXEC_CLIENT_QUEUE);
                lock_or_recover(&execs).insert(req.id, (p.interactive || p.tty, itx));
                Some(irx)
            }
            _ => None,
        };
        let forward = crate::cluster::forward::forwarded(&self.svc, &self.caller, &req, &action);
        let once = self.once.clone();
        tokio::spawn(
            async move {
                let id = req.id;
                match (action, input, forward) {
                    (_, input, Some(f)) => {
                        crate::cluster::forward::run(svc, caller, f, tx, req_cancel, input).await;
                        lock_or_recover(&execs).remove(&id);
                    }
                    (Action::Exec(p), Some(input), None) => {
                        exec::exec(svc, caller, req, p, input, tx, req_cancel).await;
                        lock_or_recover(&execs).remove(&id);
                    }
                    (action, _, None) => {
                        api::dispatch(svc, caller, req, action, tx, req_cancel).await
                    }
                }
                lock_or_recover(&inflight).remove(&id);
                drop(permit);
                if let Some(done) = once {
                    done.cancel();
                }
            }
            .in_current_span(),
        );
        Ok(())
    }
}

/// `cancel`: end request `target` of this connection, if it is in flight.
fn cancel_request(inflight: &InFlight, id: u64, target: u64) -> Reply {
    let token = lock_or_recover(inflight).get(&target).cloned();
    match token {
        Some(t) => {
            t.cancel();
            let data = Cancelled {
                cancelled: Some(target),
            };
            Reply::result(Some(id), serde_json::to_value(data).unwrap_or_default())
        }
        None => Reply::error(
            Some(id),
            ErrorCode::NotFound,
            "no such request in flight (payload.id)",
        ),
    }
}
