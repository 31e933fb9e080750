//! `exec_sessions_list`, `exec_sessions_show` and `exec_sessions_recording`:
//! what the store kept of exec sessions (admins only: recordings show what
//! people typed and saw).

use nextdeploy_shared::json;
use nextdeploy_shared::protocol::admin::ById;
use nextdeploy_shared::protocol::exec::ExecSessionsList;
use nextdeploy_shared::protocol::{RawData, Reply, ReplyType, Request};
use serde_json::Value;

use super::super::{ApiError, ReplySink};
use crate::limits::{EXEC_SESSIONS_DEFAULT_LIMIT, EXEC_SESSIONS_MAX_LIMIT};
use crate::store;
use crate::Services;

/// `exec_sessions_list`, newest first, optionally of one `server`.
pub async fn list(svc: &Services, req: &Request, p: ExecSessionsList) -> Result<Value, ApiError> {
    if req.selector.is_some() {
        return Err(ApiError::BadRequest(
            "exec_sessions_list takes a server, not a selector".into(),
        ));
    }
    let limit = p.limit.unwrap_or(EXEC_SESSIONS_DEFAULT_LIMIT);
    if limit == 0 || limit > EXEC_SESSIONS_MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "payload.limit must be 1 to {EXEC_SESSIONS_MAX_LIMIT}"
        )));
    }
    let server = p.server.or_else(|| req.server.clone());
    let rows = store::blocking(&svc.store, move |s| {
        s.list_exec_sessions(server.as_deref(), limit)
    })
    .await?;
    Ok(serde_json::to_value(rows).unwrap_or_default())
}

/// `exec_sessions_show`: one session.
pub async fn show(svc: &Services, p: ById) -> Result<Value, ApiError> {
    let id = p.id.clone();
    match store::blocking(&svc.store, move |s| s.exec_session(&id)).await? {
        Some(s) => Ok(serde_json::to_value(s).unwrap_or_default()),
        None => Err(ApiError::NotFound(format!("no exec session {:?}", p.id))),
    }
}

/// `exec_sessions_recording`: the recording as `log` replies of its text
/// (asciicast v2 lines), then `end`.
pub async fn recording(svc: &Services, req: &Request, p: ById, out: &ReplySink) {
    let id = p.id.clone();
    let found = store::blocking(&svc.store, move |s| {
        Ok((s.exec_session(&id)?, s.exec_recording(&id)?))
    })
    .await;
    let pieces = match found {
        Ok((Some(s), pieces)) if s.recording_bytes > 0 => pieces,
        Ok((Some(_), _)) => {
            let e = ApiError::NotFound(format!(
                "exec session {:?} has no recording (no TTY, recording off, or pruned)",
                p.id
            ));
            let _ = out.send(e.reply(req.id)).await;
            return;
        }
        Ok((None, _)) => {
            let e = ApiError::NotFound(format!("no exec session {:?}", p.id));
            let _ = out.send(e.reply(req.id)).await;
            return;
        }
        Err(e) => {
            let _ = out.send(ApiError::from(e).reply(req.id)).await;
            return;
        }
    };
    for piece in pieces {
        let text = String::from_utf8_lossy(&piece);
        let data = RawData::Written(json::text_object(&[("stream", "stdout"), ("text", &text)]));
        if out
            .send(Reply::raw(Some(req.id), ReplyType::Log, data))
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = out.send(Reply::end(Some(req.id))).await;
}
