//! Deploys through the hub: the hub picks the id, records who deployed what
//! where, relays progress, and stores the agent's outcome. The relay runs
//! detached from the client: a CLI that goes away does not stop the record,
//! and an agent that finishes while the hub is away reports on reconnect.

//!
//! Layout: this file (`start`, `relay`, `deploy`, `run_plan`, `rollback`),
//! `plan.rs` (the checks before any change), `remote.rs` (a fleet deploy's
//! servers held by another hub of the cluster).

use crate::limits::{DEPLOY_RETRIES, PROGRESS_QUEUE, RECONNECT_WAIT};
use std::sync::Arc;

use nextdeploy_shared::protocol::containers::ContainerRef;
use nextdeploy_shared::protocol::deploy::{
    DeployOutcome, DeployProgress, DeployRequest, FleetOutcome, Outcome,
};
use nextdeploy_shared::protocol::{ActionKind, ErrorBody, ErrorCode, Reply, ReplyType, Request};
use nextdeploy_shared::time::{now_unix, now_unix_ms};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

mod plan;
pub mod remote;

use plan::{plan, Member, Plan};

use super::route::{resolve, Target};
use super::{ApiError, Caller, ReplySink};
use crate::agents::stream::ReplyStream;
use crate::agents::AgentConn;
use crate::store::deploys::DeployRecord;
use crate::store::{self, Role};
use crate::Services;

/// A typed answer as JSON (these types always serialize).
fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// Start a deploy on one agent; progress goes to `progress`, the outcome to
/// the returned receiver. Once the record is inserted, the rest runs in a
/// task of its own: a client that goes away (or cancels, or is dropped
/// mid-call) leaves no record half-done: either none, or one that the relay
/// finishes. With `announce_end` (fleet deploys), a `finished` step goes to
/// `progress` as soon as this deploy ends, so a client knows which servers
/// are still running theirs.
pub async fn start(
    svc: &Arc<Services>,
    caller: &Caller,
    conn: Arc<AgentConn>,
    payload: &DeployRequest,
    (progress, announce_end): (mpsc::Sender<Reply>, bool),
) -> Result<oneshot::Receiver<DeployOutcome>, ApiError> {
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
    let mut body = payload.clone();
    body.deploy_id = Some(id.clone());
    let body = to_value(&body);
    let (done_tx, done_rx) = oneshot::channel();
    let (recorded_tx, recorded_rx) = oneshot::channel();
    let svc = svc.clone();
    tokio::spawn(async move {
        if let Err(e) = store::blocking(&svc.store, move |s| s.insert_deploy(&rec)).await {
            let _ = recorded_tx.send(Err(ApiError::from(e)));
            return;
        }
        // First, before any change: the id, so a client can follow the deploy.
        let accepted = DeployProgress {
            deploy_id: id.clone(),
            step: "accepted".into(),
            status: "done".into(),
            at_ms: now_unix_ms(),
            ..DeployProgress::detail(format!(
                "recorded; follow it with: nextdeploy deploys show {id} --follow"
            ))
        };
        svc.live_deploys.push(&id, &accepted);
        let server = conn.name.clone();
        let reply = Reply::new(Some(0), ReplyType::Progress, to_value(&accepted));
        let _ = progress.try_send(reply.with_server(server.clone()));
        let _ = recorded_tx.send(Ok(()));
        let mut doc = relay(&svc, &conn, &id, body, &progress).await;
        doc.deploy_id = id;
        doc.server = Some(server);
        if announce_end {
            // Waits for room (the consumer drains while it waits for us);
            // fails at once if the request is gone.
            let _ = progress.send(finished_step(&doc)).await;
        }
        let _ = done_tx.send(doc);
    });
    match recorded_rx.await {
        Ok(Ok(())) => Ok(done_rx),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::Conflict("the deploy task ended".into())),
    }
}

/// An agent's `error` reply as a failed outcome.
fn refused(data: Value) -> DeployOutcome {
    match serde_json::from_value::<ErrorBody>(data) {
        Ok(e) => DeployOutcome::failed(e.message, Some(e.code)),
        Err(_) => DeployOutcome::failed("the agent refused the deploy", None),
    }
}

async fn relay(
    svc: &Arc<Services>,
    conn: &AgentConn,
    id: &str,
    body: Value,
    progress: &mpsc::Sender<Reply>,
) -> DeployOutcome {
    let name = conn.name.clone();
    let mut current = svc.registry.get(&name);
    let mut conn_id = conn.conn_id;
    for attempt in 0..=DEPLOY_RETRIES {
        let Some(agent) = current.take() else { break };
        // Only operators and admins deploy, and they share one budget.
        let opened = ReplyStream::open(
            &agent,
            Role::Operator,
            0,
            ActionKind::Deploy.name(),
            body.clone(),
        );
        let mut stream = match opened.await {
            Ok(s) => s,
            Err(e) if attempt == 0 => {
                let doc = DeployOutcome::failed(e.to_string(), Some(e.code()));
                finish(svc, id, &name, &doc).await;
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
                    if let Ok(step) = serde_json::from_value::<DeployProgress>(r.data.clone()) {
                        svc.live_deploys.push(id, &step);
                    }
                    let _ = progress.try_send(r.with_server(name.clone()));
                }
                Some(Ok(r)) if r.kind == ReplyType::Result => {
                    let doc = serde_json::from_value::<DeployOutcome>(r.data).unwrap_or_else(|e| {
                        DeployOutcome::failed(
                            format!("the agent's outcome is unreadable: {e}"),
                            Some(ErrorCode::AgentError),
                        )
                    });
                    finish(svc, id, &name, &doc).await;
                    return doc;
                }
                Some(Ok(r)) if r.kind == ReplyType::Error => {
                    let doc = refused(r.data);
                    finish(svc, id, &name, &doc).await;
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
    DeployOutcome {
        outcome: Outcome::Unknown,
        ..DeployOutcome::failed(
            format!("lost agent {name} during the deploy; the agent finishes it on its own and reports the outcome when it reconnects (nextdeploy deploys show {id})"),
            None,
        )
    }
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

/// Record the outcome of a deploy this hub relayed (`pushed_by`: none), or
/// one agent `pushed_by` pushed on its own, which only lands on that agent's
/// unfinished deploy. Returns whether the record changed.
async fn finish_as(
    svc: &Services,
    (id, server): (&str, &str),
    doc: &DeployOutcome,
    pushed_by: Option<&str>,
) -> bool {
    let (i, st, d) = (id.to_string(), doc.outcome.as_str(), doc.clone());
    let by = pushed_by.map(str::to_string);
    let changed = store::blocking(&svc.store, move |s| {
        s.finish_deploy(&i, st, &d, now_unix(), by.as_deref())
    })
    .await;
    match changed {
        Ok(true) => {
            svc.live_deploys.remove(id);
            crate::alerts::deploys::offer(svc, id, server, doc).await;
            true
        }
        Ok(false) => {
            if pushed_by.is_none() {
                svc.live_deploys.remove(id);
            }
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, deploy = id, "cannot record the deploy outcome");
            false
        }
    }
}

async fn finish(svc: &Services, id: &str, server: &str, doc: &DeployOutcome) {
    finish_as(svc, (id, server), doc, None).await;
}

/// Record an outcome agent `agent` pushed on its control channel (a deploy
/// that finished while the hub was away, or re-sent after a reconnect).
/// Another server's deploy, or one already finished, is left as it is.
/// Returns the id to acknowledge: the agent may stop re-sending it either way.
pub async fn record_pushed(svc: &Services, agent: &str, outcome: &DeployOutcome) -> Option<String> {
    if outcome.deploy_id.is_empty() {
        return None;
    }
    if !finish_as(svc, (&outcome.deploy_id, agent), outcome, Some(agent)).await {
        tracing::debug!(deploy = %outcome.deploy_id, agent, "pushed outcome left unrecorded: not this agent's unfinished deploy");
    }
    Some(outcome.deploy_id.clone())
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
    let fleet = req.selector.is_some();
    let mut docs = run_plan(svc, caller, (req.id, fleet), &payload, &plan, out).await;
    let result = if !fleet && docs.len() == 1 {
        to_value(&docs.remove(0).1)
    } else {
        let mut fleet = FleetOutcome {
            skipped: plan.skipped,
            canaries: plan.canaries,
            ..FleetOutcome::default()
        };
        for (name, doc) in docs {
            match doc.outcome {
                Outcome::Succeeded => fleet.updated.push(name),
                Outcome::Untouched => {
                    fleet.untouched.push(name);
                    continue;
                }
                _ => fleet.failed.push(name),
            }
            fleet.deploys.push(doc);
        }
        to_value(&fleet)
    };
    let _ = out.send(Reply::result(Some(req.id), result)).await;
}

/// A fleet deploy's step for one server whose deploy ended: its outcome, so
/// a client knows which servers are still running theirs.
fn finished_step(doc: &DeployOutcome) -> Reply {
    let step = DeployProgress {
        deploy_id: doc.deploy_id.clone(),
        step: "finished".into(),
        status: doc.outcome.as_str().into(),
        at_ms: now_unix_ms(),
        ..DeployProgress::default()
    };
    let server = doc.server.clone().unwrap_or_default();
    Reply::new(Some(0), ReplyType::Progress, to_value(&step)).with_server(server)
}

/// Deploy the plan's phases in batches; (server, outcome) in order, with
/// `{"outcome": "untouched"}` for those not reached after a failure.
async fn run_plan(
    svc: &Arc<Services>,
    caller: &Caller,
    (id, fleet): (u64, bool),
    payload: &DeployRequest,
    plan: &Plan,
    out: &ReplySink,
) -> Vec<(String, DeployOutcome)> {
    let max_parallel = payload.max_parallel.unwrap_or(1) as usize;
    let (ptx, mut prx) = mpsc::channel::<Reply>(PROGRESS_QUEUE);
    let mut docs: Vec<(String, DeployOutcome)> = Vec::new();
    let untouched = || DeployOutcome {
        outcome: Outcome::Untouched,
        ..DeployOutcome::default()
    };
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
                docs.extend(batch.iter().map(|c| (c.name().to_string(), untouched())));
                continue;
            }
            let mut waits = Vec::new();
            for member in batch {
                let feed = (ptx.clone(), fleet);
                let name = member.name().to_string();
                let conn = match member {
                    Member::Here(conn) => conn,
                    Member::Held(h) => {
                        waits.push((name, remote::start(svc, caller, h, &body, feed)));
                        continue;
                    }
                };
                match start(svc, caller, conn.clone(), &body, feed).await {
                    Ok(rx) => waits.push((name, rx)),
                    Err(e) => docs.push((
                        name.clone(),
                        DeployOutcome {
                            server: Some(name),
                            ..DeployOutcome::failed(e.to_string(), Some(e.code()))
                        },
                    )),
                }
            }
            for (name, mut rx) in waits {
                let doc = loop {
                    tokio::select! {
                        d = &mut rx => break d.unwrap_or_else(|_| task_ended("deploy")),
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
            stop = docs
                .iter()
                .any(|(_, d)| !matches!(d.outcome, Outcome::Succeeded | Outcome::Untouched));
        }
    }
    docs
}

/// `rollback`: undo the last deploy of a container (the kept container
/// swapped back, else the recorded previous version deployed again), run by
/// the agent as a deploy (progress, health wait, a record in the history).
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
    if let Some(m) = super::policy::deploy_refusal(svc, &conn, &payload) {
        let _ = out.send(ApiError::ForbiddenByPolicy(m).reply(req.id)).await;
        return;
    }
    let (ptx, mut prx) = mpsc::channel::<Reply>(PROGRESS_QUEUE);
    let mut rx = match start(svc, caller, conn, &payload, (ptx, false)).await {
        Ok(rx) => rx,
        Err(e) => {
            let _ = out.send(e.reply(req.id)).await;
            return;
        }
    };
    let mut doc = loop {
        tokio::select! {
            d = &mut rx => break d.unwrap_or_else(|_| task_ended("rollback")),
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
    if let Some(c) = doc.containers.first() {
        doc.container = Some(c.container.clone());
        doc.now_running = c.new_id.clone();
    }
    let _ = out.send(Reply::result(Some(req.id), to_value(&doc))).await;
}

/// The outcome when the task that relays a deploy ended without one (it
/// panicked: the record says `running` until the agent's pushed outcome).
fn task_ended(what: &str) -> DeployOutcome {
    DeployOutcome {
        outcome: Outcome::Unknown,
        ..DeployOutcome::failed(format!("the {what} task ended"), None)
    }
}
