//! Requests for an agent another hub of the cluster holds, forwarded to
//! that hub over its own WebSocket API (the same protocol a client speaks,
//! so what the holder does with a request is what it does for a client:
//! its checks, exec recording, deploy records, audit, all in the shared
//! store). The forwarding hub signs each link with the cluster's key
//! ([`super::peer_auth`]) on behalf of its client's token and pins the
//! holder's certificate to its own (every hub of a cluster presents the
//! cluster's).
//!
//! Two kinds of link:
//! - one-shot requests (`ping`, `ps`, `stop`, ...) share one link per
//!   holder and token ([`Links`]), with ids of the link's own; their one
//!   terminal reply goes back to the client under its id;
//! - streams, exec, deploys and fan-out parts get a link of their own that
//!   carries that one request and closes with it, so TCP's flow control is
//!   the stream's: a client that reads slowly slows only its own stream,
//!   back to the agent (the holder stops crediting it).
//!
//! A forwarded request is never forwarded again: the holder answers it
//! from what it holds itself ([`Request::local_only`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use nextdeploy_shared::protocol::exec::{ExecInput, ExecResize};
use nextdeploy_shared::protocol::{Action, ActionKind, ErrorCode, Reply, ReplyType, Request};
use nextdeploy_shared::protocol::{Target, Transport};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::peer_auth::{PeerClaim, PEER_HEADER};
use super::{Cluster, Holder};
use crate::api::exec::ClientInput;
use crate::api::{Caller, ReplySink};
use crate::limits::{PEER_CONNECT_TIMEOUT, PEER_LINK_QUEUE};
use crate::Services;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The hub that holds the agent `req` names, when this hub should forward
/// `req` there: a client's (not a forwarded) request for one agent that is
/// not connected here and that another live hub holds.
fn holder_for(svc: &Services, caller: &Caller, req: &Request, action: &Action) -> Option<Holder> {
    if caller.forwarded_by.is_some() || !forwardable(action.kind()) {
        return None;
    }
    let name = req.server.as_deref()?;
    if svc.registry.get(name).is_some() {
        return None;
    }
    svc.config.cluster.as_ref()?.remote_holder(name)
}

/// Actions whose answer comes from the agent or from what its hub holds in
/// memory (not from the shared store, which every hub reads alike).
fn forwardable(kind: ActionKind) -> bool {
    match kind.target() {
        Target::Agents => true,
        Target::Server => kind != ActionKind::History,
        Target::Filter => matches!(kind, ActionKind::Status | ActionKind::Events),
        Target::Hub => false,
    }
}

/// A request to forward: where, and whether it is one-shot.
#[derive(Debug)]
pub struct Forwarded {
    /// The client's request.
    pub req: Request,
    /// The hub holding its agent.
    pub holder: Holder,
    /// One answer (the shared link carries it), else a link of its own.
    pub one_shot: bool,
}

/// `req` forwarded to the hub holding its agent, if it is to be.
pub fn forwarded(
    svc: &Services,
    caller: &Caller,
    req: &Request,
    action: &Action,
) -> Option<Forwarded> {
    let holder = holder_for(svc, caller, req, action)?;
    Some(Forwarded {
        req: req.clone(),
        holder,
        one_shot: action.transport() == Transport::OneShot && !matches!(action, Action::Exec(_)),
    })
}

/// Run a forwarded request and relay its replies to `out`; `input` is an
/// exec's input from the client.
pub async fn run(
    svc: Arc<Services>,
    caller: Arc<Caller>,
    f: Forwarded,
    out: ReplySink,
    cancel: CancellationToken,
    input: Option<mpsc::Receiver<ClientInput>>,
) {
    let (id, holder) = (f.req.id, f.holder);
    let answer = async {
        if f.one_shot {
            ask(&svc, &caller, f.req, &holder).await
        } else {
            stream(&svc, &caller, f.req, &holder, &out, input).await
        }
    };
    tokio::select! {
        r = answer => if let Some(r) = r { let _ = out.send(r).await; },
        _ = cancel.cancelled() => {
            let _ = out.send(Reply::error(Some(id), ErrorCode::Cancelled, "cancelled")).await;
        }
    }
}

/// The error a client sees when the holder cannot be reached or went away.
fn lost(id: u64, holder: &Holder, why: &str) -> Reply {
    Reply::error(
        Some(id),
        ErrorCode::AgentOffline,
        format!(
            "the hub holding this agent ({}, {}) {why}; the agent will show online \
             again through another hub if that hub is gone: retry",
            holder.hub_id, holder.api_url
        ),
    )
}

/// Open a link to `holder` for `token_id`'s requests.
pub(super) async fn connect(
    svc: &Services,
    c: &Cluster,
    holder: &Holder,
    token_id: &str,
    once: bool,
) -> Result<Ws, String> {
    let url = crate::cli::client::ws_url(&holder.api_url).map_err(|e| e.to_string())?;
    // Every hub of the cluster presents this hub's certificate: no other.
    let pin = svc.config.tls.as_ref().map(|t| t.pin());
    let (tls, _) = nextdeploy_shared::tls::client_config(pin.as_deref())?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let claim = PeerClaim {
        hub_id: c.me.id.clone(),
        token_id: token_id.to_string(),
        once,
    };
    let signed = c
        .peer_key
        .sign(&claim, nextdeploy_shared::time::now_unix_ms());
    let value = HeaderValue::from_str(&signed).map_err(|e| e.to_string())?;
    request.headers_mut().insert(PEER_HEADER, value);
    let connector = url
        .starts_with("wss://")
        .then(|| tokio_tungstenite::Connector::Rustls(tls));
    let connect = tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
    match tokio::time::timeout(PEER_CONNECT_TIMEOUT, connect).await {
        Err(_) => Err("did not accept the forwarded request in time".into()),
        Ok(Err(e)) => Err(format!("refused the forwarded request: {e}")),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

pub(super) fn text(req: &Request) -> Message {
    Message::Text(serde_json::to_string(req).unwrap_or_default().into())
}

/// A request on a link of its own: every reply relayed until the holder
/// closes the link (it does when the request ends); `Some` is a last reply
/// to send when the link failed before a terminal one.
pub(crate) async fn stream(
    svc: &Services,
    caller: &Caller,
    req: Request,
    holder: &Holder,
    out: &ReplySink,
    mut input: Option<mpsc::Receiver<ClientInput>>,
) -> Option<Reply> {
    let id = req.id;
    let c = svc.config.cluster.as_ref()?;
    let mut ws = match connect(svc, c, holder, &caller.token_id, true).await {
        Ok(ws) => ws,
        Err(e) => return Some(lost(id, holder, &e)),
    };
    if ws.send(text(&req)).await.is_err() {
        return Some(lost(id, holder, "closed the link"));
    }
    let mut done = false;
    // Input requests carry ids of their own, far from the client's.
    let mut input_id = u64::MAX / 2;
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let Ok(reply) = serde_json::from_str::<Reply>(t.as_str()) else { continue };
                    if reply.id != Some(id) {
                        continue;
                    }
                    done |= reply.kind.is_terminal() || reply.kind == ReplyType::Result;
                    if out.send(reply).await.is_err() {
                        return None;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            m = recv(&mut input) => match m {
                Some(m) => {
                    input_id += 1;
                    if ws.send(text(&input_request(input_id, id, m))).await.is_err() {
                        break;
                    }
                }
                None => input = None,
            },
        }
    }
    (!done).then(|| lost(id, holder, "went away mid-request"))
}

async fn recv(input: &mut Option<mpsc::Receiver<ClientInput>>) -> Option<ClientInput> {
    match input {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// An exec's input as the request a client would send for it.
fn input_request(id: u64, exec: u64, m: ClientInput) -> Request {
    use base64::Engine as _;
    let action = match m {
        ClientInput::Data(b) => Action::ExecInput(ExecInput {
            exec_id: exec,
            data: None,
            b64: Some(base64::engine::general_purpose::STANDARD.encode(b)),
            eof: false,
        }),
        ClientInput::Eof => Action::ExecInput(ExecInput {
            exec_id: exec,
            data: None,
            b64: None,
            eof: true,
        }),
        ClientInput::Resize(cols, rows) => Action::ExecResize(ExecResize {
            exec_id: exec,
            cols,
            rows,
        }),
    };
    Request::new(id, action, None, None)
}

/// Shared links to other hubs for one-shot requests, by (hub id, token id).
#[derive(Debug, Default)]
pub struct Links(Mutex<HashMap<(String, String), Arc<Link>>>);

/// One shared link: a task owns the socket; requests reach it by queue.
#[derive(Debug)]
pub struct Link {
    tx: mpsc::Sender<(Request, oneshot::Sender<Reply>)>,
    closed: CancellationToken,
}

impl Links {
    async fn get(
        &self,
        svc: &Services,
        holder: &Holder,
        token_id: &str,
    ) -> Result<Arc<Link>, String> {
        let key = (holder.hub_id.clone(), token_id.to_string());
        if let Some(l) = crate::sync::lock_or_recover(&self.0).get(&key) {
            if !l.closed.is_cancelled() {
                return Ok(l.clone());
            }
        }
        let c = svc.config.cluster.as_ref().ok_or("not in a cluster")?;
        let ws = connect(svc, c, holder, token_id, false).await?;
        let (tx, rx) = mpsc::channel(PEER_LINK_QUEUE);
        let link = Arc::new(Link {
            tx,
            closed: CancellationToken::new(),
        });
        tokio::spawn(shared_link(ws, rx, link.closed.clone()));
        let mut map = crate::sync::lock_or_recover(&self.0);
        map.retain(|_, l| !l.closed.is_cancelled());
        map.insert(key, link.clone());
        Ok(link)
    }
}

/// A one-shot request on the shared link to `holder`: its one answer.
pub(super) async fn ask(
    svc: &Services,
    caller: &Caller,
    req: Request,
    holder: &Holder,
) -> Option<Reply> {
    let id = req.id;
    let c = svc.config.cluster.as_ref()?;
    let link = match c.links.get(svc, holder, &caller.token_id).await {
        Ok(l) => l,
        Err(e) => return Some(lost(id, holder, &e)),
    };
    let (tx, rx) = oneshot::channel();
    if link.tx.send((req, tx)).await.is_err() {
        return Some(lost(id, holder, "closed the link"));
    }
    match rx.await {
        Ok(mut r) => {
            r.id = Some(id);
            Some(r)
        }
        Err(_) => Some(lost(id, holder, "went away mid-request")),
    }
}

/// Own one shared link: write queued requests under the link's ids, hand
/// each terminal answer to its waiter. Waiters of a link that fails get
/// nothing (their sender drops) and tell their clients so.
async fn shared_link(
    ws: Ws,
    mut rx: mpsc::Receiver<(Request, oneshot::Sender<Reply>)>,
    closed: CancellationToken,
) {
    let (mut sink, mut source) = ws.split();
    let mut waiting: HashMap<u64, oneshot::Sender<Reply>> = HashMap::new();
    let mut next = 1u64;
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some((mut req, tx)) => {
                    req.id = next;
                    waiting.insert(next, tx);
                    next += 1;
                    if sink.send(text(&req)).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            m = source.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let Ok(r) = serde_json::from_str::<Reply>(t.as_str()) else { continue };
                    let last = matches!(r.kind, ReplyType::Result | ReplyType::Error | ReplyType::End);
                    if let (true, Some(tx)) = (last, r.id.and_then(|i| waiting.remove(&i))) {
                        let _ = tx.send(r);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    closed.cancel();
}

/// A selector's agents held by other hubs: the request goes once to each
/// of those hubs (which answer for the agents they hold), and their parts
/// come back tagged with `server` as local ones do. An agent a hub did not
/// answer for (it moved meanwhile) gets an `agent_offline` error of its own.
pub async fn fan_out(
    svc: &Services,
    caller: &Caller,
    req: &Request,
    remote: Vec<(String, Holder)>,
    out: &ReplySink,
) {
    let mut by_hub: HashMap<String, (Holder, Vec<String>)> = HashMap::new();
    for (name, h) in remote {
        by_hub
            .entry(h.hub_id.clone())
            .or_insert_with(|| (h, Vec::new()))
            .1
            .push(name);
    }
    let parts = by_hub
        .into_values()
        .map(|(holder, names)| part(svc, caller, req, holder, names, out));
    futures_util::future::join_all(parts).await;
}

/// One hub's part of a fan-out.
async fn part(
    svc: &Services,
    caller: &Caller,
    req: &Request,
    holder: Holder,
    names: Vec<String>,
    out: &ReplySink,
) {
    let id = req.id;
    let mut expected: HashSet<String> = names.into_iter().collect();
    let failed = |why: &str, name: &str| lost(id, &holder, why).with_server(name.to_string());
    let Some(c) = svc.config.cluster.as_ref() else {
        return;
    };
    let mut ws = match connect(svc, c, &holder, &caller.token_id, true).await {
        Ok(ws) => ws,
        Err(e) => {
            for n in &expected {
                let _ = out.send(failed(&e, n)).await;
            }
            return;
        }
    };
    let _ = ws.send(text(req)).await;
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        let Ok(r) = serde_json::from_str::<Reply>(t.as_str()) else {
            continue;
        };
        match r.server.as_deref() {
            Some(s) if r.id == Some(id) && r.kind != ReplyType::End => {
                expected.remove(s);
                if out.send(r).await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
    for n in &expected {
        let _ = out
            .send(failed("did not answer for it (it may have moved)", n))
            .await;
    }
}
