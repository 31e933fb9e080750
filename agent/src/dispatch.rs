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
    _payload: Value,
    started: Instant,
    out: mpsc::Sender<Reply>,
) {
    let id = Some(id);
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
