//! Routing a request to agents: by name (`server`) or label selector
//! (`selector`), with distinct errors for an unknown agent, an offline one
//! (with its last-seen time) and ambiguous input.

use crate::limits::{DEFAULT_STOP_GRACE_S, MAX_STOP_GRACE_S};
use std::sync::Arc;
use std::time::Instant;

use nextdeploy_shared::labels::Selector;
use nextdeploy_shared::limits::REQUEST_TIMEOUT;
use nextdeploy_shared::protocol::streams::{DiagSink, DiagSummary};
use nextdeploy_shared::protocol::{Action, ErrorCode, Reply, ReplyType, Request, Transport};
use nextdeploy_shared::time::{human_age, now_unix, rfc3339};
use serde_json::Value;
use tracing::debug;

use super::{ApiError, Caller, ReplySink};
use crate::agents::stream::{ReplyStream, StreamError};
use crate::agents::AgentConn;
use crate::store::{self, AgentRecord, Role};
use crate::Services;

/// One resolved target: online (with its connection) or not (with the reason).
pub enum Target {
    /// Connected.
    Online(Arc<AgentConn>),
    /// Held by another hub of the cluster (fan-outs forward it there).
    Remote {
        /// Its name.
        name: String,
        /// Its labels, from the store.
        labels: nextdeploy_shared::labels::Labels,
        /// The hub that holds it.
        holder: crate::cluster::Holder,
    },
    /// Enrolled but not reachable now.
    Offline {
        /// Its name.
        name: String,
        /// The message for the client.
        message: String,
    },
}

fn offline_message(svc: &Services, rec: &AgentRecord) -> String {
    let holder = svc.config.cluster.as_ref();
    if let Some(h) = holder.and_then(|c| c.remote_holder(&rec.name)) {
        // Reached for what is not forwarded (a request another hub already
        // forwarded here, an agent that moved meanwhile): say where it is.
        return format!(
            "agent {} is connected to another hub of the cluster ({}, {})",
            rec.name, h.hub_id, h.api_url
        );
    }
    match rec.last_seen {
        Some(t) => format!(
            "agent {} is offline (last seen {}, {} ago)",
            rec.name,
            rfc3339(t),
            human_age(now_unix() - t)
        ),
        None => format!(
            "agent {} is offline (never connected since enrolment)",
            rec.name
        ),
    }
}

/// An enrolled agent not connected here: held by another hub, or offline.
fn not_here(svc: &Services, r: AgentRecord, name: String) -> Target {
    let cluster = svc.config.cluster.as_ref();
    match cluster.and_then(|c| c.remote_holder(&name)) {
        Some(holder) => Target::Remote {
            name,
            labels: r.labels,
            holder,
        },
        None => Target::Offline {
            message: offline_message(svc, &r),
            name,
        },
    }
}

/// Resolve `server` / `selector` of a request.
pub async fn resolve(svc: &Services, req: &Request) -> Result<Vec<Target>, ApiError> {
    match (&req.server, &req.selector) {
        (Some(_), Some(_)) => Err(ApiError::Ambiguous(
            "give either server or selector, not both".into(),
        )),
        (None, None) => Err(ApiError::Ambiguous(format!(
            "{} needs a target: server (a name) or selector (k=v)",
            req.action
        ))),
        (Some(name), None) => {
            if let Some(c) = svc.registry.get(name) {
                return Ok(vec![Target::Online(c)]);
            }
            let n = name.clone();
            let rec = store::blocking(&svc.store, move |s| s.agent_by_name(&n)).await?;
            match rec {
                None => Err(ApiError::UnknownAgent(format!(
                    "no agent named {name:?} is enrolled"
                ))),
                Some(r) if r.revoked_at.is_some() => Err(ApiError::UnknownAgent(format!(
                    "agent {name:?} has been revoked"
                ))),
                Some(r) => Err(ApiError::AgentOffline(offline_message(svc, &r))),
            }
        }
        (None, Some(sel)) => {
            let selector = Selector::parse(sel)
                .map_err(|m| ApiError::BadRequest(format!("bad selector: {m}")))?;
            let index = store::blocking(&svc.store, |s| s.agent_labels()).await?;
            // In name order, offline ones in their place (a fleet deploy
            // goes in batches of this order and stops at the first failure).
            let mut slots: Vec<Result<Arc<AgentConn>, String>> = Vec::new();
            for (name, _) in index.iter().filter(|(_, l)| selector.matches(l)) {
                slots.push(svc.registry.get(name).ok_or_else(|| name.clone()));
            }
            let offline: Vec<String> = match req.local_only {
                true => Vec::new(),
                false => slots
                    .iter()
                    .filter_map(|s| s.as_ref().err().cloned())
                    .collect(),
            };
            let mut records = std::collections::HashMap::new();
            if !offline.is_empty() {
                // Offline ones are told apart by their last-seen time.
                let found = store::blocking(&svc.store, move |s| {
                    if offline.len() <= 32 {
                        let mut v = Vec::new();
                        for n in &offline {
                            v.extend(s.agent_by_name(n)?);
                        }
                        Ok(v)
                    } else {
                        let wanted: std::collections::HashSet<String> =
                            offline.into_iter().collect();
                        let all = s.list_agents()?;
                        Ok(all
                            .into_iter()
                            .filter(|r| wanted.contains(&r.name))
                            .collect())
                    }
                })
                .await?;
                records.extend(found.into_iter().map(|r| (r.name.clone(), r)));
            }
            // One revoked or removed between the two reads is no target.
            let targets: Vec<Target> = slots
                .into_iter()
                .filter_map(|slot| match slot {
                    Ok(c) => Some(Target::Online(c)),
                    Err(_) if req.local_only => None,
                    Err(name) => records
                        .remove(&name)
                        .filter(|r| r.revoked_at.is_none())
                        .map(|r| not_here(svc, r, name)),
                })
                .collect();
            if targets.is_empty() && !req.local_only {
                return Err(ApiError::UnknownAgent(format!(
                    "no enrolled agent matches selector {sel:?}"
                )));
            }
            Ok(targets)
        }
    }
}

/// Route a request to its agents and relay their replies. A request naming
/// one `server` gets that agent's replies as they are; a `selector` fan-out
/// gets every agent's replies tagged with `server` (an `error` carrying a
/// `server` ends only that agent's part) and then one final `end`.
/// `role` is the caller's: which budget of each agent's stream slots the
/// request draws from ([`crate::agents::slots`]).
pub async fn routed(
    svc: &Arc<Services>,
    caller: &Caller,
    req: &Request,
    action: &Action,
    out: &ReplySink,
) {
    let id = req.id;
    let t0 = Instant::now();
    let targets = match resolve(svc, req).await {
        Ok(t) => t,
        Err(e) => {
            let _ = out.send(e.reply(id)).await;
            return;
        }
    };
    let targets = super::policy::screen(svc, req, action, targets, out).await;
    let how = How::of(action, caller.role);
    if req.selector.is_none() {
        for t in targets {
            relay(t, req, how, out, false).await;
        }
        return;
    }
    let resolved = t0.elapsed();
    let n = targets.len();
    // One-shot requests to agents that take them on their control channel
    // go out together; the rest (streams, older agents, offline ones) get a
    // task each.
    let together = how.control;
    let mut asked = Vec::new();
    let mut remote = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    // One copy of the request shared by every target's task.
    let shared = Arc::new(req.clone());
    for t in targets {
        match t {
            Target::Online(c) if together && c.control.takes_requests() => asked.push(c),
            Target::Remote { name, holder, .. } => remote.push((name, holder)),
            t => {
                let (req, out) = (shared.clone(), out.clone());
                tasks.spawn(async move { relay(t, &req, how, &out, true).await });
            }
        }
    }
    let spawned = t0.elapsed();
    let elsewhere = crate::cluster::forward::fan_out(svc, caller, req, remote, out);
    let here = async {
        if !asked.is_empty() {
            let wire_id = svc.registry.request_ids.next();
            super::fanout::ask_all(&asked, req, wire_id, out, how).await;
        }
    };
    tokio::join!(here, elsewhere);
    while tasks.join_next().await.is_some() {}
    let _ = out.send(Reply::end(Some(id))).await;
    debug!(
        agents = n,
        together = asked.len(),
        resolve_ms = resolved.as_secs_f64() * 1e3,
        spawn_ms = spawned.as_secs_f64() * 1e3,
        total_ms = t0.elapsed().as_secs_f64() * 1e3,
        "fan-out done"
    );
}

/// How a routed request is carried, read once from its action.
#[derive(Debug, Clone, Copy)]
pub struct How {
    /// One answer that may travel on the control channel.
    control: bool,
    /// One answer (not a stream).
    one_shot: bool,
    /// A `diag_stream` the hub reads itself.
    sink_at_hub: bool,
    /// A `ping`: the hub adds its round trip to the answer.
    pub ping: bool,
    /// How long an agent has to answer a one-shot request.
    pub limit: std::time::Duration,
    /// The caller's role, for the agents' slot budgets.
    pub role: Role,
}

impl How {
    fn of(action: &Action, role: Role) -> How {
        // A stop or restart may legitimately take its grace period.
        let grace = match action {
            Action::Stop(s) | Action::Restart(s) => s
                .timeout
                .map(|t| t.clamp(0, MAX_STOP_GRACE_S as i64) as u64)
                .unwrap_or(DEFAULT_STOP_GRACE_S),
            _ => DEFAULT_STOP_GRACE_S,
        };
        let transport = action.transport();
        How {
            control: transport == Transport::OneShot,
            one_shot: matches!(transport, Transport::OneShot | Transport::Channel),
            sink_at_hub: matches!(action, Action::DiagStream(d) if d.sink == Some(DiagSink::Hub)),
            ping: matches!(action, Action::Ping(_)),
            limit: REQUEST_TIMEOUT + std::time::Duration::from_secs(grace),
            role,
        }
    }
}

/// Relay one agent's replies to `out`.
async fn relay(target: Target, req: &Request, how: How, out: &ReplySink, fanout: bool) {
    let id = req.id;
    let conn = match target {
        Target::Online(c) => c,
        Target::Offline { name, message } => {
            let _ = out
                .send(Reply::error(Some(id), ErrorCode::AgentOffline, message).with_server(name))
                .await;
            return;
        }
        Target::Remote { name, holder, .. } => {
            let message = format!(
                "agent {name} moved to hub {} meanwhile: retry",
                holder.hub_id
            );
            let _ = out
                .send(Reply::error(Some(id), ErrorCode::AgentOffline, message).with_server(name))
                .await;
            return;
        }
    };
    let name = conn.name.clone();
    let started = Instant::now();
    let limit = how.limit;
    let timed_out = || {
        Reply::error(
            Some(id),
            ErrorCode::Timeout,
            format!("agent {name} did not answer within {}s", limit.as_secs()),
        )
    };
    if conn.control.takes_requests() && how.control {
        let reply = match one_shot_on_control(&conn, how.role, req, limit).await {
            Ok(r) => r,
            Err(None) => timed_out(),
            Err(Some(e)) => Reply::error(Some(id), e.code(), e.to_string()),
        };
        let _ = out.send(finish(reply, id, &name, how.ping, started)).await;
        return;
    }
    let mut stream =
        match ReplyStream::open(&conn, how.role, id, &req.action, req.payload.clone()).await {
            Ok(s) => s,
            Err(e) => {
                let _ = out
                    .send(Reply::error(Some(id), e.code(), e.to_string()).with_server(name))
                    .await;
                return;
            }
        };
    if how.sink_at_hub {
        let reply = sink_at_hub(&mut stream, id, &name, started).await;
        let _ = out.send(reply).await;
        return;
    }
    let one_shot = how.one_shot;
    loop {
        let next = if one_shot {
            match tokio::time::timeout(limit, stream.next()).await {
                Ok(n) => n,
                Err(_) => Some(Ok(timed_out())),
            }
        } else {
            stream.next().await
        };
        let reply = match next {
            None => break,
            Some(Ok(r)) => finish(r, id, &name, how.ping, started),
            Some(Err(e)) => {
                Reply::error(Some(id), e.code(), e.to_string()).with_server(name.clone())
            }
        };
        // One-shot answers and fan-out parts are complete with their result;
        // the agent's own `end` is not relayed for them.
        if reply.kind == ReplyType::End && (fanout || one_shot) {
            break;
        }
        let done = reply.kind.is_terminal() || (one_shot && reply.kind == ReplyType::Result);
        if out.send(reply).await.is_err() || done {
            break;
        }
    }
}

/// `diag_stream` with `sink: "hub"`: the hub reads the whole stream and
/// keeps none of it, then answers with what arrived (`replies`, and
/// `data_bytes`: the log replies' data as the agent encoded it) and how fast: the tunnel agent -> hub alone, without a
/// client's side.
async fn sink_at_hub(stream: &mut ReplyStream, id: u64, name: &str, started: Instant) -> Reply {
    let (mut bytes, mut replies, mut ended) = (0u64, 0u64, false);
    while let Some(next) = stream.next().await {
        match next {
            Ok(r) if r.kind == ReplyType::Log => {
                replies += 1;
                bytes += r.raw_data.as_ref().map_or(0, |d| d.text().len() as u64);
            }
            Ok(r) if r.kind == ReplyType::End => {
                ended = true;
                break;
            }
            Ok(mut r) if r.kind == ReplyType::Error => {
                r.id = Some(id);
                return r.with_server(name.to_string());
            }
            Ok(_) => {}
            Err(e) => {
                return Reply::error(Some(id), e.code(), e.to_string())
                    .with_server(name.to_string())
            }
        }
    }
    if !ended {
        let e = StreamError::Closed(name.to_string());
        return Reply::error(Some(id), e.code(), e.to_string()).with_server(name.to_string());
    }
    let secs = started.elapsed().as_secs_f64();
    let data = serde_json::to_value(DiagSummary {
        data_bytes: bytes,
        replies,
        seconds: secs,
        mb_s: bytes as f64 / 1e6 / secs.max(1e-9),
    })
    .unwrap_or_default();
    Reply::new(Some(id), ReplyType::Result, data).with_server(name.to_string())
}

/// A one-shot request on the agent's control channel: its one answer, `Err(None)`
/// on timeout, or why it could not be asked.
async fn one_shot_on_control(
    conn: &Arc<AgentConn>,
    role: Role,
    req: &Request,
    limit: std::time::Duration,
) -> Result<Reply, Option<StreamError>> {
    let slot = StreamError::take_slot(conn, role).map_err(Some)?;
    let mut pending = conn
        .control
        .send_request(&conn.name, &req.action, req.payload.clone(), slot)
        .await
        .map_err(Some)?;
    match tokio::time::timeout(limit, pending.answer()).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(Some(StreamError::Closed(conn.name.clone()))),
        Err(_) => Err(None),
    }
}

/// An agent's reply as the client sees it: the client's id, the agent's name,
/// and for `ping` the hub <-> agent round trip.
pub(super) fn finish(mut reply: Reply, id: u64, name: &str, ping: bool, started: Instant) -> Reply {
    reply.id = Some(id);
    reply.server = Some(name.to_string());
    if ping && reply.kind == ReplyType::Result {
        let rtt = started.elapsed().as_secs_f64() * 1000.0;
        if let Value::Object(m) = &mut reply.data {
            m.insert("hub_agent_rtt_ms".into(), Value::from(rtt));
        }
    }
    reply
}
