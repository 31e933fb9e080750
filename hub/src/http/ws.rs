//! One WebSocket client: authenticated on the upgrade request, then a send task
//! (draining a bounded queue into the socket) and a receive loop (parsing
//! requests, each run in its own task, bounded per client). Either ending ends
//! the other and cancels the client's requests.

use crate::limits::SEND_BATCH_BYTES;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::limits::{CLIENT_SEND_QUEUE, MAX_REQUESTS_PER_CLIENT};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use nextdeploy_shared::protocol::admin::Cancelled;
use nextdeploy_shared::protocol::{Action, ErrorCode, Reply, Request};
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use crate::api::{self, auth, Caller};
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
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = match auth::authenticate(&svc, bearer).await {
        Ok(c) => c,
        Err(auth::AuthError::Store(e)) => {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
        }
        Err(e) => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("{e}\n"),
            )
                .into_response()
        }
    };
    let max = svc.config.max_message_bytes;
    let span = tracing::info_span!("ws", token = %caller.name, role = caller.role.as_str());
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| client(svc, Arc::new(caller), socket).instrument(span))
}

/// In-flight requests of one client, by id, so they can be cancelled.
type InFlight = Arc<Mutex<HashMap<u64, CancellationToken>>>;

async fn client(svc: Arc<Services>, caller: Arc<Caller>, socket: WebSocket) {
    debug!("client connected");
    let (mut sink, mut source) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Reply>(CLIENT_SEND_QUEUE);
    let cancel = svc.cancel.child_token();
    let send_cancel = cancel.clone();
    let mut send_task = tokio::spawn(async move {
        'outer: loop {
            let first = tokio::select! {
                r = rx.recv() => match r { Some(r) => r, None => break },
                _ = send_cancel.cancelled() => break,
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
        let _ = sink.send(Message::Close(None)).await;
    });
    let slots = Arc::new(Semaphore::new(MAX_REQUESTS_PER_CLIENT));
    let inflight: InFlight = Arc::default();
    let mut send_done = false;
    loop {
        let msg = tokio::select! {
            m = source.next() => m,
            _ = &mut send_task => { send_done = true; break }
            _ = cancel.cancelled() => break,
        };
        let text = match msg {
            None | Some(Ok(Message::Close(_))) => break,
            Some(Err(e)) => {
                // Oversized messages end up here: axum refuses them and closes.
                info!(error = %e, "client connection error");
                break;
            }
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Binary(_))) => {
                let _ = tx
                    .send(Reply::error(
                        None,
                        ErrorCode::BadRequest,
                        "binary messages are not accepted; send JSON text",
                    ))
                    .await;
                continue;
            }
            Some(Ok(_)) => continue,
        };
        let mut req: Request = match serde_json::from_str(text.as_str()) {
            Ok(r) => r,
            Err(e) => {
                let id = serde_json::from_str::<Value>(text.as_str())
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_u64));
                let _ = tx
                    .send(Reply::error(
                        id,
                        ErrorCode::BadRequest,
                        format!("malformed request: {e}"),
                    ))
                    .await;
                continue;
            }
        };
        let action = match api::read_action(&caller, &mut req) {
            Ok(a) => a,
            Err(e) => {
                let _ = tx.send(e.reply(req.id)).await;
                continue;
            }
        };
        if let Action::Cancel(c) = &action {
            let _ = tx.send(cancel_request(&inflight, req.id, c.id)).await;
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let _ = tx
                .send(Reply::error(
                    Some(req.id),
                    ErrorCode::Busy,
                    format!("at most {MAX_REQUESTS_PER_CLIENT} requests may be in flight per connection"),
                ))
                .await;
            continue;
        };
        let req_cancel = cancel.child_token();
        let duplicate = {
            let mut map = lock(&inflight);
            match map.entry(req.id) {
                std::collections::hash_map::Entry::Occupied(_) => true,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(req_cancel.clone());
                    false
                }
            }
        };
        if duplicate {
            let _ = tx
                .send(Reply::error(
                    Some(req.id),
                    ErrorCode::Conflict,
                    "a request with this id is already in flight",
                ))
                .await;
            continue;
        }
        let (svc, caller, tx, inflight) =
            (svc.clone(), caller.clone(), tx.clone(), inflight.clone());
        tokio::spawn(
            async move {
                let id = req.id;
                api::dispatch(svc, caller, req, action, tx, req_cancel).await;
                lock(&inflight).remove(&id);
                drop(permit);
            }
            .in_current_span(),
        );
    }
    cancel.cancel();
    drop(tx);
    if !send_done {
        let _ = send_task.await;
    }
    debug!("client disconnected");
}

/// `cancel`: end request `target` of this connection, if it is in flight.
fn cancel_request(inflight: &InFlight, id: u64, target: u64) -> Reply {
    let token = lock(inflight).get(&target).cloned();
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

fn lock(m: &InFlight) -> std::sync::MutexGuard<'_, HashMap<u64, CancellationToken>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
