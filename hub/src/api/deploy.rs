//! Deploys through the hub: the hub picks the id, records who deployed what
//! where, relays progress, and stores the agent's outcome. The relay runs
//! detached from the client: a CLI that goes away does not stop the record,
//! and an agent that finishes while the hub is away reports on reconnect.

use crate::limits::{
    DEPLOY_RETRIES, MAX_CANARY_WAIT_S, MAX_IMAGE_LEN, MAX_PARALLEL_DEPLOYS, PROGRESS_QUEUE,
    RECONNECT_WAIT,
};
use std::sync::Arc;

use nextdeploy_shared::labels::Selector;
use nextdeploy_shared::protocol::containers::ContainerRef;
use nextdeploy_shared::protocol::deploy::DeployRequest;
use nextdeploy_shared::protocol::{ActionKind, Reply, ReplyType, Request};
use nextdeploy_shared::time::{now_unix, now_unix_ms};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::route::{resolve, Target};
use super::{ApiError, Caller, ReplySink};
use crate::agents::stream::ReplyStream;
use crate::agents::AgentConn;
use crate::store::deploys::DeployRecord;
use crate::store::{self};
use crate::Services;

fn validate(p: &DeployRequest) -> Result<(), ApiError> {
    let image = &p.image;
    if image.is_empty() || image.len() > MAX_IMAGE_LEN || image.chars().any(char::is_whitespace) {
        return Err(ApiError::BadRequest(
            "payload.image (e.g. myapp:2.1) is required".into(),
        ));
    }
    if p.rollback {
        return Err(ApiError::BadRequest(
            "payload.rollback is set by the hub: send the rollback action".into(),
        ));
    }
    if let Some(n) = p
        .max_parallel
        .filter(|n| !(1..=MAX_PARALLEL_DEPLOYS).contains(n))
    {
        return Err(ApiError::BadRequest(format!(
            "max_parallel must be 1 to {MAX_PARALLEL_DEPLOYS} (got {n}): it is how many servers are updated at once"
        )));
    }
    if p.canary_wait_s.is_some_and(|w| w > MAX_CANARY_WAIT_S) {
        return Err(ApiError::BadRequest(format!(
            "canary_wait_s is at most {MAX_CANARY_WAIT_S}"
        )));
    }
    if p.canary_wait_s.is_some() && p.canary.is_none() {
        return Err(ApiError::BadRequest(
            "canary_wait_s needs canary (a selector)".into(),
        ));
    }
    Ok(())
}

/// Start a deploy on one agent; progress goes to `progress`, the final
/// document (outcome or error) to the returned receiver.
pub async fn start(
    svc: &Arc<Services>,
    caller: &Caller,
    conn: Arc<AgentConn>,
    payload: &DeployRequest,
    progress: mpsc::Sender<Reply>,
) -> Result<oneshot::Receiver<Value>, ApiError> {
    let id = format!(
        "{}{}",
        nextdeploy_shared::token::new_id(),
        nextdeploy_shared::token::new_id()
    );
    let rec = DeployRecord {
        id: id.clone(),
        actor: caller.name.clone(),
        server: conn.name.clone(),
        container: payload.container.clone(),
        image: if payload.rollback {
            "(rollback)".into()
        } else {
            payload.image.clone()
        },
        status: "running".into(),
        created_at: now_unix(),
        finished_at: None,
        outcome: None,
    };
    let r = rec.clone();
    store::blocking(&svc.store, move |s| s.insert_deploy(&r)).await?;
    let mut body = payload.clone();
    body.deploy_id = Some(id.clone());
    let body = serde_json::to_value(body).unwrap_or_default();
    // First, before any change: the id, so a client can follow the deploy.
    let accepted = json!({ "deploy_id": id, "container": "", "step": "accepted", "status": "done", "at_ms": now_unix_ms(),
        "detail": format!("recorded; follow it with: nextdeploy deploys show {id} --follow") });
    svc.live_deploys.push(&id, &accepted);
    let _ = progress.try_send(
        Reply::new(Some(0), ReplyType::Progress, accepted).with_server(conn.name.clone()),
    );
    let (done_tx, done_rx) = oneshot::channel();
    let svc = svc.clone();
    tokio::spawn(async move {
        let server = conn.name.clone();
        let final_doc = relay(&svc, &conn, &id, body, &progress).await;
        let mut doc = final_doc;
        doc["deploy_id"] = json!(id);
        doc["server"] = json!(server);
        let _ = done_tx.send(doc);
    });
    Ok(done_rx)
}

async fn relay(
    svc: &Arc<Services>,
    conn: &AgentConn,
    id: &str,
    body: Value,
    progress: &mpsc::Sender<Reply>,
) -> Value {
    let name = conn.name.clone();
    let mut current = svc.registry.get(&name);
    let mut conn_id = conn.conn_id;
    for attempt in 0..=DEPLOY_RETRIES {
        let Some(agent) = current.take() else { break };
        let mut stream = match ReplyStream::open(&agent, 0, ActionKind::Deploy.name(), body.clone())
            .await
        {
            Ok(s) => s,
            Err(e) if attempt == 0 => {
                let doc = json!({ "outcome": "failed", "error": e.to_string(), "code": e.code() });
                finish(svc, id, "failed", &doc).await;
                return doc;
            }
            Err(_) => {
                current = wait_back(svc, &name, conn_id).await;
                continue;
            }
        };
        loop {
            match stream.next().await {
                Some(Ok(r)) if r.kind == ReplyType::Progress => {
                    svc.live_deploys.push(id, &r.data);
                    let _ = progress.try_send(r.with_server(name.clone()));
                }
                Some(Ok(r)) if r.kind == ReplyType::Result => {
                    let status = r
                        .data
                        .get("outcome")
                        .and_then(Value::as_str)
                        .unwrap_or("failed")
                        .to_string();
                    finish(svc, id, &status, &r.data).await;
                    return r.data;
                }
                Some(Ok(r)) if r.kind == ReplyType::Error => {
                    let msg = r
                        .data
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("the agent refused the deploy");
                    let doc =
                        json!({ "outcome": "failed", "error": msg, "code": r.data.get("code") });
                    finish(svc, id, "failed", &doc).await;
                    return doc;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
        // The link dropped mid-deploy. The agent carries on by itself; when it
        // is back, ask again with the same id: it attaches to the running deploy
        // or answers the recorded outcome, and never deploys twice.
        conn_id = agent.conn_id;
        let i = id.to_string();
        let _ = store::blocking(&svc.store, move |s| s.set_deploy_status(&i, "unknown")).await;
        tracing::info!(deploy = id, agent = %name, "lost the agent during a deploy; waiting for it to reconnect");
        current = wait_back(svc, &name, conn_id).await;
    }
    json!({ "outcome": "unknown", "error": format!("lost agent {name} during the deploy; the agent finishes it on its own and reports the outcome when it reconnects (nextdeploy deploys show {id})") })
}

/// The agent's next connection (not `old_conn`), if it comes back in time.
async fn wait_back(svc: &Services, name: &str, old_conn: u64) -> Option<Arc<AgentConn>> {
    let deadline = tokio::time::Instant::now() + RECONNECT_WAIT;
    loop {
        if let Some(c) = svc.registry.get(name).filter(|c| c.conn_id != old_conn) {
            return Some(c);
        }
        if tokio::time::Instant::now() >= deadline || svc.cancel.is_cancelled() {
            return None;
        }
        tokio::time::sleep(crate::limits::RECONNECT_POLL).await;
    }
}

async fn finish(svc: &Services, id: &str, status: &str, doc: &Value) {
    svc.live_deploys.remove(id);
    let (i, st, d) = (id.to_string(), status.to_string(), doc.clone());
    if let Err(e) = store::blocking(&svc.store, move |s| {
        s.finish_deploy(&i, &st, &d, now_unix())
    })
    .await
    {
        tracing::warn!(error = %e, deploy = id, "cannot record the deploy outcome");
    }
}

/// Record an outcome an agent pushed on its control channel.
pub async fn record_pushed(svc: &Services, outcome: &Value) -> Option<String> {
    let id = outcome
        .get("deploy_id")
        .and_then(Value::as_str)?
        .to_string();
    let status = outcome
        .get("outcome")
        .and_then(Value::as_str)
        .unwrap_or("failed")
        .to_string();
    finish(svc, &id, &status, outcome).await;
    Some(id)
}

/// Who a deploy goes to, in order: phases (the canaries, then the rest; or
/// one phase), each deployed in batches of `max_parallel`.
struct Plan {
    phases: Vec<Vec<Arc<AgentConn>>>,
    canaries: Vec<String>,
    skipped: Vec<String>,
}

/// Check the request and its targets before any change: every target online
/// (unless `skip_offline`), the canary selector matching some of them.
async fn plan(svc: &Services, req: &Request, payload: &DeployRequest) -> Result<Plan, ApiError> {
    validate(payload)?;
    let targets = resolve(svc, req).await?;
    let mut online = Vec::new();
    let mut offline = Vec::new();
    for t in targets {
        match t {
            Target::Online(c) => online.push(c),
            Target::Offline { name, message } => offline.push((name, message)),
        }
    }
    if !offline.is_empty() && !payload.skip_offline {
        let list: Vec<String> = offline.iter().map(|(_, m)| m.clone()).collect();
        return Err(ApiError::AgentOffline(format!(
            "refusing the deploy before any change: {} of {} targets offline: {}; deploy to the online ones with --skip-offline",
            offline.len(),
            offline.len() + online.len(),
            list.join("; ")
        )));
    }
    if online.is_empty() {
        return Err(ApiError::AgentOffline(
            "every target is offline; nothing to deploy".into(),
        ));
    }
    online.sort_by(|a, b| a.name.cmp(&b.name));
    let skipped = offline.into_iter().map(|(n, _)| n).collect();
    let Some(sel) = &payload.canary else {
        return Ok(Plan {
            phases: vec![online],
            canaries: Vec::new(),
            skipped,
        });
    };
    if req.selector.is_none() {
        return Err(ApiError::BadRequest(
            "canary is for fleet deploys (with a selector)".into(),
        ));
    }
    let selector =
        Selector::parse(sel).map_err(|m| ApiError::BadRequest(format!("bad canary: {m}")))?;
    let (canaries, rest): (Vec<_>, Vec<_>) = online
        .into_iter()
        .partition(|c| selector.matches(&c.labels));
    if canaries.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "canary {sel:?} matches none of the online targets"
        )));
    }
    Ok(Plan {
        canaries: canaries.iter().map(|c| c.name.clone()).collect(),
        phases: vec![canaries, rest],
        skipped,
    })
}

/// `deploy`: one server, or a fleet over a selector in batches of
/// `payload.max_parallel` (default 1), canaries first, stopping at the first
/// failure. Refused before any change when a target is offline.
pub async fn deploy(
    svc: &Arc<Services>,
    caller: &Caller,
    req: &Request,
    payload: DeployRequest,
    out: &ReplySink,
) {
    let plan = match plan(svc, req, &payload).await {
        Ok(p) => p,
        Err(e) => {
            let _ = out.send(e.reply(req.id)).await;
            return;
        }
    };
    let mut docs = run_plan(svc, caller, req.id, &payload, &plan, out).await;
    let result = if req.selector.is_none() && docs.len() == 1 {
        docs.remove(0).1
    } else {
        let (mut updated, mut failed, mut untouched, mut deploys) =
            (vec![], vec![], vec![], vec![]);
        for (name, doc) in docs {
            match doc.get("outcome").and_then(Value::as_str) {
                Some("succeeded") => updated.push(name),
                Some("untouched") => {
                    untouched.push(name);
                    continue;
                }
                _ => failed.push(name),
            }
            deploys.push(doc);
        }
        json!({ "updated": updated, "failed": failed, "untouched": untouched, "skipped": plan.skipped,
                "canaries": plan.canaries, "deploys": deploys })
    };
    let _ = out.send(Reply::result(Some(req.id), result)).await;
}

/// Deploy the plan's phases in batches; (server, outcome) in order, with
/// `{"outcome": "untouched"}` for those not reached after a failure.
async fn run_plan(
    svc: &Arc<Services>,
    caller: &Caller,
    id: u64,
    payload: &DeployRequest,
    plan: &Plan,
    out: &ReplySink,
) -> Vec<(String, Value)> {
    let max_parallel = payload.max_parallel.unwrap_or(1) as usize;
    let (ptx, mut prx) = mpsc::channel::<Reply>(PROGRESS_QUEUE);
    let mut docs: Vec<(String, Value)> = Vec::new();
    let mut stop = false;
    for (phase, conns) in plan.phases.iter().enumerate() {
        // What the agent gets: no fleet fields; the health window for canaries.
        let mut body = payload.clone();
        body.skip_offline = false;
        body.canary = None;
        body.max_parallel = None;
        if phase > 0 || plan.canaries.is_empty() {
            body.canary_wait_s = None;
        }
        for batch in conns.chunks(max_parallel.max(1)) {
            if stop {
                docs.extend(
                    batch
                        .iter()
                        .map(|c| (c.name.clone(), json!({ "outcome": "untouched" }))),
                );
                continue;
            }
            let mut waits = Vec::new();
            for conn in batch {
                match start(svc, caller, conn.clone(), &body, ptx.clone()).await {
                    Ok(rx) => waits.push((conn.name.clone(), rx)),
                    Err(e) => docs.push((
                        conn.name.clone(),
                        json!({ "server": conn.name, "outcome": "failed", "error": e.to_string() }),
                    )),
                }
            }
            for (name, mut rx) in waits {
                let doc = loop {
                    tokio::select! {
                        d = &mut rx => break d.unwrap_or_else(|_| json!({ "outcome": "unknown", "error": "the deploy task ended" })),
                        Some(mut p) = prx.recv() => {
                            p.id = Some(id);
                            let _ = out.send(p).await;
                        }
                    }
                };
                docs.push((name, doc));
            }
            while let Ok(mut p) = prx.try_recv() {
                p.id = Some(id);
                let _ = out.send(p).await;
            }
            stop = docs.iter().any(|(_, d)| {
                !matches!(
                    d.get("outcome").and_then(Value::as_str),
                    Some("succeeded") | Some("untouched")
                )
            });
        }
    }
    docs
}

/// `rollback`: swap a container back to the one its last deploy kept, run
/// by the agent as a deploy (progress, health wait, a record in the history).
pub async fn rollback(
    svc: &Arc<Services>,
    caller: &Caller,
    req: &Request,
    p: ContainerRef,
    out: &ReplySink,
) {
    if req.selector.is_some() {
        let e = ApiError::BadRequest("rollback names one server, not a selector".into());
        let _ = out.send(e.reply(req.id)).await;
        return;
    }
    let mut payload = DeployRequest::new("");
    payload.container = Some(p.container);
    payload.rollback = true;
    let conn = match resolve(svc, req).await.map(|t| t.into_iter().next()) {
        Ok(Some(Target::Online(c))) => c,
        Ok(_) => {
            let e = ApiError::AgentOffline("the server is offline".into());
            let _ = out.send(e.reply(req.id)).await;
            return;
        }
        Err(e) => {
            let _ = out.send(e.reply(req.id)).await;
            return;
        }
    };
    let (ptx, mut prx) = mpsc::channel::<Reply>(PROGRESS_QUEUE);
    let mut rx = match start(svc, caller, conn, &payload, ptx).await {
        Ok(rx) => rx,
        Err(e) => {
            let _ = out.send(e.reply(req.id)).await;
            return;
        }
    };
    let mut doc = loop {
        tokio::select! {
            d = &mut rx => break d.unwrap_or_else(|_| json!({ "outcome": "unknown", "error": "the rollback task ended" })),
            Some(mut p) = prx.recv() => {
                p.id = Some(req.id);
                let _ = out.send(p).await;
            }
        }
    };
    while let Ok(mut p) = prx.try_recv() {
        p.id = Some(req.id);
        let _ = out.send(p).await;
    }
    // The fields `rollback` answered before it ran as a deploy.
    let c = doc["containers"][0].clone();
    for k in ["container", "now_running", "kept_as_previous"] {
        if let Some(v) = c.get(k) {
            doc[k] = v.clone();
        }
    }
    let _ = out.send(Reply::result(Some(req.id), doc)).await;
}
