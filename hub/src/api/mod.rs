//! The actions of the WebSocket API. A connection authenticates once
//! ([`auth::authenticate`]); each request then runs in its own task through
//! [`dispatch`], which checks the caller's role, answers hub-local actions
//! itself ([`admin`]) and routes the rest to agents ([`route`]), refusing
//! early what an agent's own policy forbids ([`policy`]).

pub mod admin;
pub mod alert_rules;
pub mod alerts;
pub mod auth;
pub mod deploy;
pub mod deploys;
pub mod exec;
pub mod fanout;
pub mod fleet;
pub mod policy;
pub mod redact;
pub mod rotate;
pub mod route;

use std::sync::Arc;

use nextdeploy_shared::protocol::{
    Action, ActionKind, ErrorCode, Reply, Request, Target, Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::{Role, StoreError};
use crate::Services;

pub use auth::Caller;

/// Where a request task sends its replies (the client's bounded send queue).
pub type ReplySink = mpsc::Sender<Reply>;

/// An error that ends a request, mapped to its wire code in one place
/// ([`ApiError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad arguments.
    #[error("{0}")]
    BadRequest(String),
    /// No action has this name, or clients may not send it.
    #[error("unknown action {0:?}")]
    UnknownAction(String),
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
    /// Not allowed for another reason than the role (a token without exec).
    #[error("permission denied: {0}")]
    Denied(String),
    /// Both or neither of `server` and `selector`.
    #[error("{0}")]
    Ambiguous(String),
    /// No enrolled (unrevoked) agent by that name or selector.
    #[error("{0}")]
    UnknownAgent(String),
    /// The agent is enrolled but not connected; the message says when it was last seen.
    #[error("{0}")]
    AgentOffline(String),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// No container by that name, id or id prefix.
    #[error("{0}")]
    NoSuchContainer(String),
    /// An id prefix matching several containers.
    #[error("{0}")]
    AmbiguousContainer(String),
    /// Conflicts with current state.
    #[error("{0}")]
    Conflict(String),
    /// An agent's own policy (reported in its hello) refuses it.
    #[error("{0}")]
    ForbiddenByPolicy(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// Its wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::UnknownAction(_) => ErrorCode::UnknownAction,
            ApiError::Forbidden { .. } | ApiError::Denied(_) => ErrorCode::Forbidden,
            ApiError::Ambiguous(_) => ErrorCode::Ambiguous,
            ApiError::UnknownAgent(_) => ErrorCode::UnknownAgent,
            ApiError::AgentOffline(_) => ErrorCode::AgentOffline,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::NoSuchContainer(_) => ErrorCode::NoSuchContainer,
            ApiError::AmbiguousContainer(_) => ErrorCode::AmbiguousContainer,
            ApiError::Conflict(_) | ApiError::Store(StoreError::Conflict(_)) => ErrorCode::Conflict,
            ApiError::ForbiddenByPolicy(_) => ErrorCode::ForbiddenByPolicy,
            ApiError::Store(_) => ErrorCode::Internal,
        }
    }
    /// As an `error` reply to `id`.
    pub fn reply(&self, id: u64) -> Reply {
        Reply::error(Some(id), self.code(), self.to_string())
    }
}

/// Read a client's request: a known action the caller's role allows, with a
/// payload of the action's type. On success the request's payload is replaced
/// by the typed payload written back, so what the hub forwards to agents is
/// exactly what it checked.
pub fn read_action(caller: &Caller, req: &mut Request) -> Result<Action, ApiError> {
    let kind: ActionKind = req
        .action
        .parse()
        .map_err(|_| ApiError::UnknownAction(req.action.clone()))?;
    let needed = kind
        .role()
        .ok_or_else(|| ApiError::UnknownAction(req.action.clone()))?;
    if caller.role < needed {
        return Err(ApiError::Forbidden {
            action: req.action.clone(),
            needed: needed.as_str(),
            have: caller.role.as_str(),
        });
    }
    check_target(kind, req)?;
    let action = Action::parse(&req.action, std::mem::take(&mut req.payload))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    req.payload = action.payload();
    Ok(action)
}

/// Refuse a `server` or `selector` the action has no use for, rather than
/// ignore it.
fn check_target(kind: ActionKind, req: &Request) -> Result<(), ApiError> {
    let name = kind.name();
    match kind.target() {
        Target::Hub if req.server.is_some() || req.selector.is_some() => Err(ApiError::BadRequest(
            format!("{name} is answered by the hub: it takes no server or selector"),
        )),
        Target::Server if req.selector.is_some() => Err(ApiError::BadRequest(format!(
            "{name} takes one server, not a selector"
        ))),
        _ => Ok(()),
    }
}

/// Run one request to completion, sending its replies to `out`. Every request
/// ends with exactly one terminal reply (`result` for one-shot hub actions,
/// `end` or `error` otherwise), unless the client is gone.
pub async fn dispatch(
    svc: Arc<Services>,
    caller: Arc<Caller>,
    req: Request,
    action: Action,
    out: ReplySink,
    cancel: CancellationToken,
) {
    let id = req.id;
    let t0 = std::time::Instant::now();
    let once = action.is_control_request()
        || matches!(action, Action::Status(_) | Action::History(_))
        || (action.kind().target() == Target::Hub && action.transport() == Transport::Hub);
    let work = run(&svc, &caller, &req, action, &out);
    tokio::select! {
        _ = work => if once { svc.metrics.observe_request(t0.elapsed()) },
        _ = cancel.cancelled() => {
            let _ = out.send(Reply::error(Some(id), ErrorCode::Cancelled, "cancelled")).await;
        }
    }
}

/// The route table: every action to the module that answers it.
async fn run(svc: &Arc<Services>, caller: &Caller, req: &Request, action: Action, out: &ReplySink) {
    let answer = match action {
        Action::Events(p) => {
            // The other hubs' streams for as long as this hub's own lasts.
            let local = fleet::events(svc, req, p, out);
            tokio::pin!(local);
            tokio::select! {
                () = &mut local => {}
                () = crate::cluster::fleet::events_elsewhere(svc, caller, req, out) => local.await,
            }
            return;
        }
        Action::Deploy(p) => return deploy::deploy(svc, caller, req, p, out).await,
        Action::Rollback(p) => return deploy::rollback(svc, caller, req, p, out).await,
        Action::Inspect(_) if caller.role < Role::Operator => {
            return redact::routed_for_viewer(svc, caller, req, &action, out).await
        }
        Action::Ping(_) | Action::Info(_) | Action::Ps(_) | Action::Inspect(_) => {
            return route::routed(svc, caller, req, &action, out).await
        }
        Action::Logs(_) | Action::Start(_) | Action::Stop(_) | Action::Restart(_) => {
            return route::routed(svc, caller, req, &action, out).await
        }
        Action::Rm(_) | Action::Images(_) | Action::Pull(_) => {
            return route::routed(svc, caller, req, &action, out).await
        }
        Action::Kill(_) | Action::Stats(_) | Action::DiagStream(_) => {
            return route::routed(svc, caller, req, &action, out).await
        }
        Action::ExecSessionsRecording(p) => {
            return exec::sessions::recording(svc, req, p, out).await
        }
        Action::ExecSessionsList(p) => exec::sessions::list(svc, req, p).await,
        Action::ExecSessionsShow(p) => exec::sessions::show(svc, p).await,
        Action::DeploysList(p) => deploys::list(svc, req, p).await,
        Action::AlertChannelAdd(p) => alerts::channel_add(svc, caller, p).await,
        Action::AlertChannelList(_) => alerts::channel_list(svc).await,
        Action::AlertChannelRemove(p) => alerts::channel_remove(svc, caller, p).await,
        Action::AlertChannelTest(p) => alerts::channel_test(svc, p).await,
        Action::AlertRuleAdd(p) => alerts::rule_add(svc, caller, p).await,
        Action::AlertRuleList(_) => alerts::rule_list(svc).await,
        Action::AlertRuleRemove(p) => alerts::rule_remove(svc, caller, p).await,
        Action::AlertList(_) => alerts::list(svc).await,
        Action::AlertHistory(p) => alerts::history(svc, p).await,
        Action::AlertRulePreview(p) => alert_rules::preview(svc, p).await,
        Action::AlertApply(p) => alert_rules::apply(svc, caller, p).await,
        Action::AlertSilenceAdd(p) => alert_rules::silence_add(svc, caller, p).await,
        Action::AlertSilenceList(_) => alert_rules::silence_list(svc).await,
        Action::AlertSilenceRemove(p) => alert_rules::silence_remove(svc, caller, p).await,
        Action::DeploysShow(p) => deploys::show(svc, p).await,
        Action::Status(p) => fleet::status(svc, caller, req, p).await,
        Action::History(p) => fleet::history(svc, req, p).await,
        Action::RotateKey(p) => rotate::rotate(svc, caller, req, p).await,
        Action::Cancel(_) | Action::RotateKeyCommit(_) | Action::Exec(_) => Err(
            ApiError::BadRequest(format!("{} is not answered here", req.action)),
        ),
        Action::ExecInput(_) | Action::ExecResize(_) => Err(ApiError::BadRequest(format!(
            "{} is answered by the connection that runs the exec",
            req.action
        ))),
        a @ (Action::ListAgents(_)
        | Action::Whoami(_)
        | Action::RevokeAgent(_)
        | Action::CreateToken(_)
        | Action::ListTokens(_)
        | Action::RevokeToken(_)
        | Action::CreateJoinToken(_)
        | Action::ListJoinTokens(_)
        | Action::DeleteJoinToken(_)
        | Action::AuditList(_)) => admin::hub_action(svc, caller, a).await,
        Action::ClusterStatus(_) => Ok(crate::cluster::status::answer(svc)),
    };
    let reply = match answer {
        Ok(data) => Reply::result(Some(req.id), data),
        Err(e) => e.reply(req.id),
    };
    let _ = out.send(reply).await;
}
