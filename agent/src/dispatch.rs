//! Requests from the hub, by action. Each handler sends its replies to `out`
//! and ends with `end` or `error`.

use std::time::Instant;

use nextdeploy_shared::protocol::{action, ErrorCode, Reply};
use nextdeploy_shared::time::now_unix_ms;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Serve one request.
pub async fn handle(
    id: u64,
    name: String,
    payload: Value,
    started: Instant,
    out: mpsc::Sender<Reply>,
) {
    let id = Some(id);
    if name == action::DIAG_STREAM {
        diag_stream(id, &payload, out).await;
        return;
    }
    let replies = match name.as_str() {
        action::PING => vec![
            Reply::result(id, json!({ "agent_time_ms": now_unix_ms() })),
            Reply::end(id),
        ],
        action::INFO => {
            let docker = crate::docker::status().await;
            let info = crate::sysinfo::collect(started, docker);
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
        let reply = Reply::new(
            id,
            nextdeploy_shared::protocol::ReplyType::Log,
            json!({ "chunk": &data[..n] }),
        );
        if out.send(reply).await.is_err() {
            return;
        }
        sent += n as u64;
    }
    let _ = out.send(Reply::end(id)).await;
}
