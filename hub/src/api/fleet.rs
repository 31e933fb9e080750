//! Fleet views the hub answers without asking agents: `status` (latest
//! snapshots), `history` (the store) and `events` (the kept events and the live bus).

use crate::limits::HISTORY_DEFAULT_SINCE_S;
use std::sync::Arc;

use nextdeploy_shared::docker::Event;
use nextdeploy_shared::labels::{Labels, Selector};
use nextdeploy_shared::protocol::streams::{
    ContainerTotals, EventsRequest, HistoryAnswer, HistoryRequest, Since, StatusRequest, StatusRow,
};
use nextdeploy_shared::protocol::{ErrorCode, Reply, ReplyType, Request};
use nextdeploy_shared::time::{now_unix, parse_duration, rfc3339};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, ReplySink};
use crate::store;
use crate::telemetry::HubEvent;
use crate::Services;

fn selector(req: &Request) -> Result<Option<Selector>, ApiError> {
    match &req.selector {
        Some(s) => Selector::parse(s)
            .map(Some)
            .map_err(|e| ApiError::BadRequest(format!("bad selector: {e}"))),
        None => Ok(None),
    }
}

/// `status`: every (matching) agent with its latest snapshot.
pub async fn status(
    svc: &Services,
    caller: &super::Caller,
    req: &Request,
    p: StatusRequest,
) -> Result<Value, ApiError> {
    let sel = selector(req)?;
    let agents = super::admin::list_agents(svc).await?;
    let mut out = Vec::new();
    for a in agents {
        if req.server.as_ref().is_some_and(|s| *s != a.name)
            || sel.as_ref().is_some_and(|s| !s.matches(&a.labels))
        {
            continue;
        }
        let snap = svc.registry.get(&a.name).and_then(|c| c.latest_health());
        out.push(StatusRow {
            server: a.name,
            labels: a.labels,
            online: a.online,
            last_seen: a.last_seen,
            docker_available: snap.as_ref().map(|s| s.docker_available),
            docker_error: snap.as_ref().and_then(|s| s.docker_error.clone()),
            snapshot_at: snap.as_ref().map(|s| rfc3339(s.at)),
            sweep_ms: snap.as_ref().map(|s| s.sweep_ms),
            host: snap.as_ref().and_then(|s| s.host.clone()),
            totals: p
                .summary
                .then(|| ContainerTotals::of(snap.as_ref().map_or(&[], |s| &s.containers))),
            hub: a.hub.map(|h| h.id),
            containers: match (&snap, p.summary) {
                (Some(s), false) => s.containers.clone(),
                _ => Vec::new(),
            },
        });
    }
    if let Some(name) = &req.server {
        if out.is_empty() {
            return Err(ApiError::UnknownAgent(format!(
                "no agent named {name:?} is enrolled"
            )));
        }
    }
    crate::cluster::fleet::status_elsewhere(svc, caller, req, &mut out).await;
    Ok(serde_json::to_value(out).unwrap_or_default())
}

/// `history`: `{container, since?, resolution?}` for `server`.
pub async fn history(svc: &Services, req: &Request, p: HistoryRequest) -> Result<Value, ApiError> {
    let agent = req
        .server
        .clone()
        .ok_or_else(|| ApiError::BadRequest("history needs server".into()))?;
    let since_s = since_seconds(p.since, p.since_s.unwrap_or(HISTORY_DEFAULT_SINCE_S))?;
    let res = match p.resolution.as_deref() {
        Some("5s") => 5,
        Some("1m") => 60,
        Some("15m") => 900,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "resolution {other:?}: use 5s, 1m or 15m"
            )))
        }
        None if since_s <= 3600 => 5,
        None if since_s <= 86_400 => 60,
        None => 900,
    };
    let since = now_unix() - since_s;
    let a = agent.clone();
    let known = store::blocking(&svc.store, move |s| s.health_containers(&a)).await?;
    if known.is_empty() {
        let a = agent.clone();
        if store::blocking(&svc.store, move |s| s.agent_by_name(&a))
            .await?
            .is_none()
        {
            return Err(ApiError::UnknownAgent(format!(
                "no agent named {agent:?} is enrolled"
            )));
        }
    }
    let container = history_name(svc, &agent, &p.container, &known)?;
    let (a, c) = (agent.clone(), container.clone());
    let points = store::blocking(&svc.store, move |s| s.health_history(&a, &c, res, since)).await?;
    let answer = HistoryAnswer {
        server: agent,
        container,
        resolution_s: res,
        points,
    };
    Ok(serde_json::to_value(answer).unwrap_or_default())
}

/// The series `history` reads for `wanted`, resolved as the agent resolves a
/// container for its own actions: a name (here, one with history), else a
/// full id or unique id prefix of a container in the agent's latest snapshot.
fn history_name(
    svc: &Services,
    agent: &str,
    wanted: &str,
    known: &[String],
) -> Result<String, ApiError> {
    let wanted = wanted.trim_start_matches('/');
    if known.iter().any(|k| k == wanted) {
        return Ok(wanted.to_string());
    }
    let snap = svc.registry.get(agent).and_then(|c| c.latest_health());
    let mut by_id: Vec<&str> = snap
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter(|c| !wanted.is_empty() && c.id.starts_with(wanted))
        .map(|c| c.name.as_str())
        .collect();
    by_id.dedup();
    match by_id.as_slice() {
        [one] if known.iter().any(|k| k == one) => Ok(one.to_string()),
        [_, _, ..] => Err(ApiError::AmbiguousContainer(format!(
            "id prefix {wanted} matches {} containers ({}); give more characters or the name",
            by_id.len(),
            by_id.join(", ")
        ))),
        _ => Err(ApiError::NoSuchContainer(format!(
            "no history for container {wanted:?} on {agent} (containers with history: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))),
    }
}

/// A look-back in seconds: `since` (text or seconds), else `default`.
pub(super) fn since_seconds(since: Option<Since>, default: i64) -> Result<i64, ApiError> {
    match since {
        Some(Since::Text(s)) => {
            Ok(parse_duration(&s).map_err(ApiError::BadRequest)?.as_secs() as i64)
        }
        Some(Since::Seconds(n)) => Ok(n),
        None => Ok(default),
    }
}

/// Whether an event of `agent` (with `labels`) is one `events` asked for:
/// its `server`, `selector` and container (name or id prefix).
fn wanted(
    req: &Request,
    sel: Option<&Selector>,
    container: Option<&str>,
    agent: &str,
    labels: &Labels,
    ev: &Event,
) -> bool {
    if req.server.as_ref().is_some_and(|s| s != agent) || sel.is_some_and(|s| !s.matches(labels)) {
        return false;
    }
    container.is_none_or(|c| {
        ev.container.as_deref() == Some(c)
            || ev.container_id.as_deref().is_some_and(|i| i.starts_with(c))
    })
}

/// `events`: the kept events since `since` (if asked), then every matching
/// event live until cancelled. Filters: `server`, `selector`,
/// `payload.container` (name or id prefix).
pub async fn events(svc: &Arc<Services>, req: &Request, p: EventsRequest, out: &ReplySink) {
    let id = Some(req.id);
    let checked = match (selector(req), since_seconds(p.since.clone(), 0)) {
        (Ok(s), Ok(back)) => (s, back),
        (Err(e), _) | (_, Err(e)) => {
            let _ = out.send(e.reply(req.id)).await;
            return;
        }
    };
    let (sel, back) = checked;
    if let Some(name) = &req.server {
        let n = name.clone();
        match store::blocking(&svc.store, move |s| s.agent_by_name(&n)).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                let _ = out
                    .send(Reply::error(
                        id,
                        ErrorCode::UnknownAgent,
                        format!("no agent named {name:?} is enrolled"),
                    ))
                    .await;
                return;
            }
            Err(e) => {
                let _ = out
                    .send(Reply::error(id, ErrorCode::Internal, e.to_string()))
                    .await;
                return;
            }
        }
    }
    let container = p.container.as_deref();
    let keep = |agent: &str, labels: &Labels, ev: &Event| {
        wanted(req, sel.as_ref(), container, agent, labels, ev)
    };
    let (kept, mut rx) = if p.since.is_some() {
        let since_ms = nextdeploy_shared::time::now_unix_ms() - back.saturating_mul(1000);
        svc.recent.replay(&svc.telemetry, since_ms, keep)
    } else {
        (Vec::new(), svc.telemetry.events.subscribe())
    };
    for ev in kept {
        if send_event(out, id, ev).await.is_err() {
            return;
        }
    }
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                let data = json!({ "kind": "hub", "action": "lagged", "dropped": n, "time_ms": nextdeploy_shared::time::now_unix_ms() });
                if out
                    .send(Reply::new(id, ReplyType::Event, data))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if !keep(&ev.agent, &ev.labels, &ev.event) {
            continue;
        }
        if send_event(out, id, ev).await.is_err() {
            return;
        }
    }
}

/// One `event` reply, with the agent as its `server`.
async fn send_event(out: &ReplySink, id: Option<u64>, ev: HubEvent) -> Result<(), ()> {
    let reply = Reply::new(
        id,
        ReplyType::Event,
        serde_json::to_value(&ev.event).unwrap_or_default(),
    )
    .with_server(ev.agent);
    out.send(reply).await.map_err(|_| ())
}
