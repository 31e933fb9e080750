//! Refusing early what an agent's own policy forbids. An agent reports its
//! `[policy]` in its hello; the hub runs the same checks as the agent
//! ([`nextdeploy_shared::protocol::policy`]) and answers `forbidden_by_policy`
//! without a round trip. The agent checks every request again and is the
//! authority: an agent too old to report a policy gets the request.
//! `--policy-precheck off` (tests) turns the hub's check off.

use nextdeploy_shared::protocol::deploy::DeployRequest;
use nextdeploy_shared::protocol::{Action, ErrorCode, PolicyDenied, Reply, Request};

use super::route::Target;
use super::{ApiError, ReplySink};
use crate::agents::AgentConn;
use crate::Services;

/// What agent `name` says about a refused request.
fn message(name: &str, d: &PolicyDenied) -> String {
    format!("agent {name} refuses it: {d}")
}

/// The refusal of `action` by `conn`'s reported policy, if the hub checks.
pub fn refusal(svc: &Services, conn: &AgentConn, action: &Action) -> Option<String> {
    let policy = conn
        .hello
        .policy
        .as_ref()
        .filter(|_| svc.config.policy_precheck)?;
    policy.check(action).err().map(|d| message(&conn.name, &d))
}

/// The refusal of a deploy (or rollback) by `conn`'s reported policy.
pub fn deploy_refusal(svc: &Services, conn: &AgentConn, d: &DeployRequest) -> Option<String> {
    let policy = conn
        .hello
        .policy
        .as_ref()
        .filter(|_| svc.config.policy_precheck)?;
    policy
        .check_deploy(d)
        .err()
        .map(|d| message(&conn.name, &d))
}

/// Answer `forbidden_by_policy` (tagged with the agent's name) for every
/// online target whose policy refuses `action`; the others are returned.
pub async fn screen(
    svc: &Services,
    req: &Request,
    action: &Action,
    targets: Vec<Target>,
    out: &ReplySink,
) -> Vec<Target> {
    let mut kept = Vec::with_capacity(targets.len());
    for t in targets {
        let refused = match &t {
            Target::Online(c) => refusal(svc, c, action).map(|m| (c.name.clone(), m)),
            Target::Offline { .. } | Target::Remote { .. } => None,
        };
        match refused {
            Some((name, m)) => {
                let r = Reply::error(Some(req.id), ErrorCode::ForbiddenByPolicy, m);
                let _ = out.send(r.with_server(name)).await;
            }
            None => kept.push(t),
        }
    }
    kept
}

/// A deploy's targets checked before any change: refused as a whole when
/// one of them would refuse it.
pub fn check_deploy_targets(
    svc: &Services,
    conns: &[std::sync::Arc<AgentConn>],
    d: &DeployRequest,
) -> Result<(), ApiError> {
    let refused: Vec<String> = conns
        .iter()
        .filter_map(|c| deploy_refusal(svc, c, d))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(ApiError::ForbiddenByPolicy(format!(
        "refusing the deploy before any change: {}",
        refused.join("; ")
    )))
}
