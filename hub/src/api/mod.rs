//! The actions of the WebSocket API. A connection authenticates once
//! ([`auth::authenticate`]); each request then runs in its own task through
//! [`dispatch`], which checks the caller's role, answers hub-local actions
//! itself ([`admin`]) and routes the rest to agents ([`route`]).

pub mod admin;
pub mod auth;
pub mod deploy;
pub mod fanout;
pub mod fleet;
pub mod rotate;
pub mod route;

use std::sync::Arc;

use nextdeploy_shared::protocol::{action, ErrorCode, Reply, Request};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::{Role, StoreError};
use crate::Services;

pub use auth::Caller;

/// Where a request task sends its replies (the client's bounded send queue).
pub type ReplySink = mpsc::Sender<Reply>;

/// An error that ends a request, mapped to a code in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad arguments.
    #[error("{0}")]
    BadRequest(String),
    /// The role does not allow it.
    #[error("permission denied: {action} needs the {needed} role, this token is {have}")]
    Forbidden {
        /// The action.
        action: String,
        /// Role required.
        needed: &'static str,
        /// Role held.
        have: &'static str,
    },
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with current state.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// Its wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Forbidden { .. } => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Conflict(_) | ApiError::Store(StoreError::Conflict(_)) => ErrorCode::Conflict,
            ApiError::Store(_) => ErrorCode::Internal,
        }
    }
    /// As an `error` reply to `id`.
    pub fn reply(&self, id: u64) -> Reply {
        Reply::error(Some(id), self.code(), self.to_string())
    }
}

/// The role an action needs; `None` for unknown actions.
pub fn required_role(name: &str) -> Option<Role> {
    Some(match name {
        action::LIST_AGENTS
        | action::PING
        | action::INFO
        | action::WHOAMI
        | action::CANCEL
        | action::PS
        | action::INSPECT
        | action::LOGS
        | action::STATS
        | action::EVENTS
        | action::STATUS
        | action::HISTORY
        | action::DEPLOYS_LIST
        | action::DEPLOYS_SHOW => Role::Viewer,
        action::START
        | action::STOP
        | action::RESTART
        | action::KILL
        | action::DEPLOY
        | action::ROLLBACK => Role::Operator,
        action::REVOKE_AGENT
        | action::ROTATE_KEY
        | action::DIAG_STREAM
        | action::CREATE_TOKEN
        | action::LIST_TOKENS
        | action::REVOKE_TOKEN
        | action::CREATE_JOIN_TOKEN
        | action::LIST_JOIN_TOKENS
        | action::DELETE_JOIN_TOKEN => Role::Admin,
        _ => return None,
    })
}

/// Run one request to completion, sending its replies to `out`. Every request
/// ends with exactly one terminal reply (`result` for one-shot hub actions,
/// `end` or `error` otherwise), unless the client is gone.
pub async fn dispatch(
    svc: Arc<Services>,
    caller: Arc<Caller>,
    req: Request,
    out: ReplySink,
    cancel: CancellationToken,
) {
    let id = req.id;
    let Some(needed) = required_role(&req.action) else {
        let _ = out
            .send(Reply::error(
                Some(id),
                ErrorCode::UnknownAction,
                format!("unknown action {:?}", req.action),
            ))
            .await;
        return;
    };
    if caller.role < needed {
        let e = ApiError::Forbidden {
            action: req.action.clone(),
            needed: needed.as_str(),
            have: caller.role.as_str(),
        };
        let _ = out.send(e.reply(id)).await;
        return;
    }
    let work = async {
        match req.action.as_str() {
            action::EVENTS => fleet::events(&svc, &req, &out).await,
            action::DEPLOY => deploy::deploy(&svc, &caller, &req, &out).await,
            action::DEPLOYS_LIST | action::DEPLOYS_SHOW => {
                let reply = match deploy::history(&svc, &req).await {
                    Ok(data) => Reply::result(Some(id), data),
                    Err(e) => e.reply(id),
                };
                let _ = out.send(reply).await;
            }
            action::STATUS | action::HISTORY => {
                let r = if req.action == action::STATUS {
                    fleet::status(&svc, &req).await
                } else {
                    fleet::history(&svc, &req).await
                };
                let reply = match r {
                    Ok(data) => Reply::result(Some(id), data),
                    Err(e) => e.reply(id),
                };
                let _ = out.send(reply).await;
            }
            a if route::is_routed(a) => route::routed(&svc, &req, &out).await,
            _ => {
                let reply = match admin::hub_action(&svc, &caller, &req).await {
                    Ok(data) => Reply::result(Some(id), data),
                    Err(e) => e.reply(id),
                };
                let _ = out.send(reply).await;
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = cancel.cancelled() => {
            let _ = out.send(Reply::error(Some(id), ErrorCode::Cancelled, "cancelled")).await;
        }
    }
}

/// `payload[key]` as a string, or a bad-request error.
pub fn str_arg<'a>(payload: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    payload
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest(format!("payload.{key} (a string) is required")))
}
