//! Requests from the hub, by action. Each handler sends its replies to `out`
//! and ends with `end` or `error`.

use std::sync::Arc;

use nextdeploy_shared::protocol::{action, ErrorCode, Reply};
use nextdeploy_shared::time::now_unix_ms;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::docker::{containers, logs, stats, DockerError};
use crate::state::AgentState;

/// Serve one request.
pub async fn handle(
    id: u64,
    name: String,
    payload: Value,
    state: Arc<AgentState>,
    out: mpsc::Sender<Reply>,
) {
    let id = Some(id);
    let engine = &state.engine;
    let docker: Option<Result<(), DockerError>> = match name.as_str() {
        action::DIAG_STREAM => {
            diag_stream(id, &payload, out).await;
            return;
        }
        action::PS => Some(
            containers::ps(engine, &payload)
                .await
                .map(|rows| one_shot(&out, id, json!(rows))),
        ),
        action::INSPECT => Some(
            containers::inspect(
                engine,
                payload
                    .get("container")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            )
            .await
            .map(|doc| one_shot(&out, id, doc)),
        ),
        action::START | action::STOP | action::RESTART | action::KILL => Some(
            containers::lifecycle(engine, &name, &payload)
                .await
                .map(|v| one_shot(&out, id, v)),
        ),
        action::LOGS => Some(logs::logs(engine, id, &payload, &out).await),
        action::STATS => Some(stats::stats(engine, &state.sampler, id, &payload, &out).await),
        action::DEPLOY => Some(state.deployer.deploy(id, &payload, &out).await),
        action::ROLLBACK => Some(
            state
                .deployer
                .rollback(&payload)
                .await
                .map(|v| one_shot(&out, id, v)),
        ),
        _ => None,
    };
    if let Some(r) = docker {
        if let Err(e) = r {
            let _ = out.send(Reply::error(id, e.code, e.message)).await;
        }
        return;
    }
    let replies = match name.as_str() {
        action::ROTATE_KEY | action::ROTATE_KEY_COMMIT => {
            let r = rotate(id, &name, &payload, &state);
            if r.kind.is_terminal() {
                vec![r]
            } else {
                vec![r, Reply::end(id)]
            }
        }
        action::PING => vec![
            Reply::result(id, json!({ "agent_time_ms": now_unix_ms() })),
            Reply::end(id),
        ],
        action::INFO => {
            let docker = engine.status().await;
            let info = crate::sysinfo::collect(state.started, docker);
            vec![
                Reply::result(id, serde_json::to_value(info).unwrap_or(Value::Null)),
                Reply::end(id),
            ]
        }
        other => vec![Reply::error(
            id,
            ErrorCode::UnknownAction,
            format!("this agent does not know the action {other:?}"),
        )],
    };
    for r in replies {
        if out.send(r).await.is_err() {
            return;
        }
    }
}

/// `rotate_key {nonce}`: a new pending key and its signature of the nonce;
/// `rotate_key_commit {public_key}`: the hub holds it, make it current.
fn rotate(id: Option<u64>, name: &str, payload: &Value, state: &AgentState) -> Reply {
    let Some(keys) = &state.keys else {
        return Reply::error(id, ErrorCode::BadRequest, "this connection has no key file");
    };
    let arg = |k: &str| payload.get(k).and_then(Value::as_str).unwrap_or("");
    let result = if name == action::ROTATE_KEY {
        let nonce = arg("nonce");
        if nonce.len() < 32 {
            return Reply::error(
                id,
                ErrorCode::BadRequest,
                "payload.nonce must be at least 32 characters",
            );
        }
        keys.prepare(nonce)
            .map(|(line, sig)| json!({ "public_key": line, "signature": sig }))
    } else {
        keys.commit(arg("public_key"))
            .map(|()| json!({ "committed": true }))
    };
    match result {
        Ok(v) => Reply::result(id, v),
        Err(e) => Reply::error(id, ErrorCode::AgentError, format!("{e:#}")),
    }
}

/// Largest total a diagnostic stream may ask for (10 GiB).
const DIAG_MAX_BYTES: u64 = 10 * 1024 * 1024 * 1024;
/// Largest chunk per reply (256 KiB, well under the frame limit).
const DIAG_MAX_CHUNK: u64 = 256 * 1024;

/// `diag_stream`: `bytes` bytes of `x` in `log` replies of `chunk` bytes each.
async fn diag_stream(id: Option<u64>, payload: &Value, out: mpsc::Sender<Reply>) {
    let bytes = payload
        .get("bytes")
        .and_then(Value::as_u64)
        .unwrap_or(1024 * 1024);
    let chunk = payload
        .get("chunk")
        .and_then(Value::as_u64)
        .unwrap_or(16 * 1024);
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
        let reply = Reply::raw(
            id,
            nextdeploy_shared::protocol::ReplyType::Log,
            nextdeploy_shared::protocol::RawData::Written(nextdeploy_shared::json::text_object(&[
                ("chunk", &data[..n]),
            ])),
        );
        if out.send(reply).await.is_err() {
            return;
        }
        sent += n as u64;
    }
    let _ = out.send(Reply::end(id)).await;
}

/// Queue a one-shot answer and its `end` (the queue has room: nothing else was sent).
fn one_shot(out: &mpsc::Sender<Reply>, id: Option<u64>, data: Value) {
    let _ = out.try_send(Reply::result(id, data));
    let _ = out.try_send(Reply::end(id));
}
