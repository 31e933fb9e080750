//! Deploys through the hub: the hub picks the id, records who deployed what
//! where, relays progress, and stores the agent's outcome. The relay runs
//! detached from the client: a CLI that goes away does not stop the record,
//! and an agent that finishes while the hub is away reports on reconnect.

use crate::limits::{
    DEPLOYS_LIST_DEFAULT, DEPLOYS_LIST_MAX, DEPLOY_RETRIES, MAX_IMAGE_LEN, MAX_PARALLEL_DEPLOYS,
    PROGRESS_QUEUE, RECONNECT_WAIT,
};
use std::sync::Arc;

use nextdeploy_shared::protocol::admin::ById;
use nextdeploy_shared::protocol::deploy::{DeployRequest, DeploysList};
use nextdeploy_shared::protocol::{ActionKind, Reply, ReplyType, Request};
use nextdeploy_shared::time::now_unix;
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
        image: payload.image.clone(),
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

/// `deploy`: one server, or a fleet over a selector in batches of
/// `payload.max_parallel` (default 1), stopping at the first failure.
pub async fn deploy(
    svc: &Arc<Services>,
    caller: &Caller,
    req: &Request,
    payload: DeployRequest,
    out: &ReplySink,
) {
    let id = Some(req.id);
    if let Err(e) = validate(&payload) {
        let _ = out.send(e.reply(req.id)).await;
        return;
    }
    let targets = match resolve(svc, req).await {
        Ok(t) => t,
        Err(e) => {
            let _ = out.send(e.reply(req.id)).await;
            return;
        }
    };
    let max_parallel = payload
        .max_parallel
        .unwrap_or(1)
        .clamp(1, MAX_PARALLEL_DEPLOYS) as usize;
    let (ptx, mut prx) = mpsc::channel::<Reply>(PROGRESS_QUEUE);
    let mut updated = Vec::new();
    let mut failed = Vec::new();
    let mut untouched = Vec::new();
    let mut docs = Vec::new();
    let mut stop = false;
    for batch in targets.chunks(max_parallel) {
        if stop {
            untouched.extend(batch.iter().map(name_of));
            continue;
        }
        let mut waits = Vec::new();
        for t in batch {
            match t {
                Target::Online(conn) => {
                    match start(svc, caller, conn.clone(), &payload, ptx.clone()).await {
                        Ok(rx) => waits.push((conn.name.clone(), rx)),
                        Err(e) => {
                            failed.push(conn.name.clone());
                            docs.push(json!({ "server": conn.name, "outcome": "failed", "error": e.to_string() }));
                        }
                    }
                }
                Target::Offline { name, message } => {
                    failed.push(name.clone());
                    docs.push(json!({ "server": name, "outcome": "failed", "error": message }));
                }
            }
        }
        for (name, mut rx) in waits {
            let doc = loop {
                tokio::select! {
                    d = &mut rx => break d.unwrap_or_else(|_| json!({ "outcome": "unknown", "error": "the deploy task ended" })),
                    Some(p) = prx.recv() => {
                        let mut p = p;
                        p.id = id;
                        let _ = out.send(p).await;
                    }
                }
            };
            if doc.get("outcome").and_then(Value::as_str) == Some("succeeded") {
                updated.push(name);
            } else {
                failed.push(name);
            }
            docs.push(doc);
        }
        while let Ok(mut p) = prx.try_recv() {
            p.id = id;
            let _ = out.send(p).await;
        }
        stop = !failed.is_empty();
    }
    let result = if req.selector.is_none() && docs.len() == 1 {
        docs.remove(0)
    } else {
        json!({ "updated": updated, "failed": failed, "untouched": untouched, "deploys": docs })
    };
    let _ = out.send(Reply::result(id, result)).await;
}

fn name_of(t: &Target) -> String {
    match t {
        Target::Online(c) => c.name.clone(),
        Target::Offline { name, .. } => name.clone(),
    }
}

/// `deploys_show`.
pub async fn show(svc: &Services, p: ById) -> Result<Value, ApiError> {
    let id = p.id;
    let i = id.clone();
    match store::blocking(&svc.store, move |s| s.deploy(&i)).await? {
        Some(d) => Ok(serde_json::to_value(d).unwrap_or_default()),
        None => Err(ApiError::NotFound(format!("no deploy with id {id}"))),
    }
}

/// `deploys_list`.
pub async fn list(svc: &Services, req: &Request, p: DeploysList) -> Result<Value, ApiError> {
    let server = req.server.clone();
    let limit = p
        .limit
        .unwrap_or(DEPLOYS_LIST_DEFAULT)
        .clamp(1, DEPLOYS_LIST_MAX) as u32;
    let list = store::blocking(&svc.store, move |s| {
        s.list_deploys(server.as_deref(), limit)
    })
    .await?;
    // The list stays light: no step details.
    Ok(Value::Array(
        list.into_iter()
            .map(|mut d| {
                let summary = d.outcome.as_ref().map(|o| json!({ "outcome": o.get("outcome"), "error": o.get("error"), "containers": o.get("containers").map(|c| c.as_array().map(|a| a.iter().map(|x| json!({"container": x.get("container"), "outcome": x.get("outcome"), "from_image": x.get("from_image"), "failed_step": x.get("failed_step")})).collect::<Vec<_>>())) }));
                d.outcome = summary;
                serde_json::to_value(d).unwrap_or_default()
            })
            .collect(),
    ))
}
