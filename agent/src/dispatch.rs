//! Requests from the hub, by action. Each handler sends its replies to `out`
//! and ends with `end` or `error`.

use std::sync::Arc;

use nextdeploy_shared::protocol::agents::{Pong, RotateKeyCommitted, RotateKeyProof};
use nextdeploy_shared::protocol::containers::ContainerRef;
use nextdeploy_shared::protocol::deploy::DeployRequest;
use nextdeploy_shared::protocol::streams::DiagStream;
use nextdeploy_shared::protocol::{Action, ErrorCode, RawData, Reply, ReplyType};
use nextdeploy_shared::time::now_unix_ms;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::docker::containers::{self, Lifecycle};
use crate::docker::exec::{self, ExecIn};
use crate::docker::{images, logs, stats, DockerError};
use crate::limits::{
    DIAG_DEFAULT_BYTES, DIAG_DEFAULT_CHUNK, DIAG_MAX_BYTES, DIAG_MAX_CHUNK, MIN_NONCE_LEN,
};
use crate::state::AgentState;

/// Serve one request: read its payload by its action's type, check it
/// against the agent's policy, then run it.
pub async fn handle(
    id: u64,
    name: String,
    payload: Value,
    state: Arc<AgentState>,
    out: mpsc::Sender<Reply>,
    input: Option<mpsc::Receiver<ExecIn>>,
) {
    let id = Some(id);
    match Action::parse(&name, payload) {
        Ok(action) => match state.policy.refusal(id, &action) {
            Some(refused) => {
                let _ = out.send(refused).await;
            }
            None => run(id, action, &state, out, input).await,
        },
        Err(e) => {
            let _ = out.send(Reply::error(id, e.code(), e.to_string())).await;
        }
    }
}

/// The agent's route table: every action, each to its handler. Hub-local
/// actions reaching an agent are refused.
async fn run(
    id: Option<u64>,
    action: Action,
    state: &AgentState,
    out: mpsc::Sender<Reply>,
    input: Option<mpsc::Receiver<ExecIn>>,
) {
    let engine = &state.engine;
    let done: Result<(), DockerError> = match action {
        Action::DiagStream(p) => return stream_diag(id, &p, out).await,
        Action::Ping(_) => {
            send_one_shot(&out, id, pong());
            Ok(())
        }
        Action::Info(_) => {
            let docker = engine.status().await;
            let mut info = crate::sysinfo::collect(state.started, docker, state.policy.rules());
            info.buffer = state.recorder.stats();
            send_one_shot(&out, id, info);
            Ok(())
        }
        Action::RotateKey(_) | Action::RotateKeyCommit(_) => {
            let r = rotate(id, &action, state);
            let terminal = r.kind.is_terminal();
            let _ = out.send(r).await;
            if !terminal {
                let _ = out.send(Reply::end(id)).await;
            }
            return;
        }
        Action::Ps(p) => containers::list_containers(engine, &p)
            .await
            .map(|rows| send_one_shot(&out, id, rows)),
        Action::Inspect(p) => containers::inspect(engine, &p.container)
            .await
            .map(|doc| send_one_shot(&out, id, doc)),
        Action::Start(p) => run_lifecycle(&out, id, state, &p.container, Lifecycle::Start).await,
        Action::Stop(p) => {
            run_lifecycle(&out, id, state, &p.container, Lifecycle::Stop(p.timeout)).await
        }
        Action::Restart(p) => {
            run_lifecycle(&out, id, state, &p.container, Lifecycle::Restart(p.timeout)).await
        }
        Action::Kill(p) => {
            run_lifecycle(&out, id, state, &p.container, Lifecycle::Kill(p.signal)).await
        }
        Action::Rm(p) => images::remove_container(engine, &p)
            .await
            .map(|done| send_one_shot(&out, id, done)),
        Action::Images(p) => images::list_images(engine, &p)
            .await
            .map(|rows| send_one_shot(&out, id, rows)),
        Action::Pull(p) => images::pull_image(engine, id, &p, &out).await,
        Action::Logs(p) => logs::stream_logs(engine, id, &p, &out).await,
        Action::Stats(p) => stats::serve_stats(engine, &state.sampler, id, &p, &out).await,
        Action::Deploy(p) => state.deployer.deploy(id, &p, &out).await,
        Action::Exec(p) => exec::run_exec(engine, id, &p, input, &out).await,
        Action::Rollback(p) => state.deployer.deploy(id, &rollback_deploy(p), &out).await,
        Action::ListAgents(_)
        | Action::Whoami(_)
        | Action::RevokeAgent(_)
        | Action::CreateToken(_)
        | Action::ListTokens(_)
        | Action::RevokeToken(_)
        | Action::CreateJoinToken(_)
        | Action::ListJoinTokens(_)
        | Action::DeleteJoinToken(_)
        | Action::AuditList(_)
        | Action::ClusterStatus(_)
        | Action::Cancel(_)
        | Action::Events(_)
        | Action::Status(_)
        | Action::History(_)
        | Action::DeploysList(_)
        | Action::DeploysShow(_)
        | Action::ExecInput(_)
        | Action::ExecResize(_)
        | Action::ExecSessionsList(_)
        | Action::ExecSessionsShow(_)
        | Action::ExecSessionsRecording(_)
        | Action::AlertChannelAdd(_)
        | Action::AlertChannelList(_)
        | Action::AlertChannelRemove(_)
        | Action::AlertChannelTest(_)
        | Action::AlertRuleAdd(_)
        | Action::AlertRuleList(_)
        | Action::AlertRuleRemove(_)
        | Action::AlertList(_)
        | Action::AlertHistory(_)
        | Action::AlertRulePreview(_)
        | Action::AlertApply(_)
        | Action::AlertSilenceAdd(_)
        | Action::AlertSilenceList(_)
        | Action::AlertSilenceRemove(_) => Err(hub_only(&action)),
    };
    if let Err(e) = done {
        let _ = out.send(Reply::error(id, e.code, e.message)).await;
    }
}

/// The answer of `ping`: the agent's clock.
fn pong() -> Pong {
    Pong {
        agent_time_ms: now_unix_ms(),
        hub_agent_rtt_ms: None,
    }
}

/// A `rollback` from a hub that sends it as such: a rollback deploy with an
/// id of its own (hubs now send a `deploy` with `rollback`).
fn rollback_deploy(p: ContainerRef) -> DeployRequest {
    let mut req = DeployRequest::new("");
    req.container = Some(p.container);
    req.rollback = true;
    req.deploy_id = Some(format!("rb-{}", now_unix_ms()));
    req
}

/// The refusal of an action only the hub answers.
fn hub_only(action: &Action) -> DockerError {
    DockerError::new(
        ErrorCode::UnknownAction,
        format!(
            "{} is answered by the hub, not by an agent",
            action.kind().name()
        ),
    )
}

/// start / stop / restart / kill, answered once.
async fn run_lifecycle(
    out: &mpsc::Sender<Reply>,
    id: Option<u64>,
    state: &AgentState,
    container: &str,
    op: Lifecycle,
) -> Result<(), DockerError> {
    let done = containers::apply_lifecycle(&state.engine, container, op).await?;
    send_one_shot(out, id, done);
    Ok(())
}

/// `rotate_key {nonce}`: a new pending key and its signature of the nonce;
/// `rotate_key_commit {public_key}`: the hub holds it, make it current.
fn rotate(id: Option<u64>, action: &Action, state: &AgentState) -> Reply {
    let Some(keys) = &state.keys else {
        return Reply::error(id, ErrorCode::BadRequest, "this connection has no key file");
    };
    let result = match action {
        Action::RotateKey(p) => {
            let nonce = p.nonce.as_deref().unwrap_or("");
            if nonce.len() < MIN_NONCE_LEN {
                return Reply::error(
                    id,
                    ErrorCode::BadRequest,
                    format!("payload.nonce must be at least {MIN_NONCE_LEN} characters"),
                );
            }
            keys.prepare(nonce).map(|(public_key, signature)| {
                to_value(RotateKeyProof {
                    public_key,
                    signature,
                })
            })
        }
        Action::RotateKeyCommit(p) => keys
            .commit(&p.public_key)
            .map(|()| to_value(RotateKeyCommitted { committed: true })),
        _ => return Reply::error(id, ErrorCode::BadRequest, "not a key rotation"),
    };
    match result {
        Ok(v) => Reply::result(id, v),
        Err(e) => Reply::error(id, ErrorCode::AgentError, format!("{e:#}")),
    }
}

fn to_value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `diag_stream`: `bytes` bytes of `x` in `log` replies of `chunk` bytes each.
pub async fn stream_diag(id: Option<u64>, p: &DiagStream, out: mpsc::Sender<Reply>) {
    let bytes = p.bytes.unwrap_or(DIAG_DEFAULT_BYTES);
    let chunk = p.chunk.unwrap_or(DIAG_DEFAULT_CHUNK);
    if bytes > DIAG_MAX_BYTES || chunk == 0 || chunk > DIAG_MAX_CHUNK {
        let _ = out
            .send(Reply::error(
                id,
                ErrorCode::BadRequest,
                format!("bytes must be at most {DIAG_MAX_BYTES} and chunk between 1 and {DIAG_MAX_CHUNK}"),
            ))
            .await;
        return;
    }
    let data = "x".repeat(chunk as usize);
    let mut sent = 0u64;
    while sent < bytes {
        let n = chunk.min(bytes - sent) as usize;
        // As a log chunk goes (`docker/logs.rs`): written, not serialized.
        let text = nextdeploy_shared::json::text_object(&[("chunk", &data[..n])]);
        let reply = Reply::raw(id, ReplyType::Log, RawData::Written(text));
        if out.send(reply).await.is_err() {
            return;
        }
        sent += n as u64;
    }
    let _ = out.send(Reply::end(id)).await;
}

/// Queue a one-shot answer and its `end` (the queue has room: nothing else was sent).
fn send_one_shot<T: Serialize>(out: &mpsc::Sender<Reply>, id: Option<u64>, data: T) {
    let _ = out.try_send(Reply::result(id, to_value(data)));
    let _ = out.try_send(Reply::end(id));
}
