//! A deploy's plan, before any change: the request checked, every target
//! online (unless `skip_offline`) and allowed by its policy, canaries first.
//! A target another hub of the cluster holds is planned as one
//! ([`Member::Held`]); that hub checks its policy when its deploy starts.

use std::sync::Arc;

use nextdeploy_shared::labels::Selector;
use nextdeploy_shared::protocol::deploy::DeployRequest;
use nextdeploy_shared::protocol::Request;

use super::remote::Held;
use crate::agents::AgentConn;
use crate::api::route::{resolve, Target};
use crate::api::ApiError;
use crate::limits::{MAX_CANARY_WAIT_S, MAX_IMAGE_LEN, MAX_PARALLEL_DEPLOYS};
use crate::Services;

fn validate(p: &DeployRequest) -> Result<(), ApiError> {
    let image = &p.image;
    if image.is_empty() || image.len() > MAX_IMAGE_LEN || image.chars().any(char::is_whitespace) {
        return Err(ApiError::BadRequest(
            "payload.image (e.g. myapp:2.1) is required".into(),
        ));
    }
    if p.rollback {
        return Err(ApiError::BadRequest(
            "payload.rollback is set by the hub: send the rollback action".into(),
        ));
    }
    if let Some(n) = p
        .max_parallel
        .filter(|n| !(1..=MAX_PARALLEL_DEPLOYS).contains(n))
    {
        return Err(ApiError::BadRequest(format!(
            "max_parallel must be 1 to {MAX_PARALLEL_DEPLOYS} (got {n}): it is how many servers are updated at once"
        )));
    }
    if p.canary_wait_s.is_some_and(|w| w > MAX_CANARY_WAIT_S) {
        return Err(ApiError::BadRequest(format!(
            "canary_wait_s is at most {MAX_CANARY_WAIT_S}"
        )));
    }
    if p.canary_wait_s.is_some() && p.canary.is_none() {
        return Err(ApiError::BadRequest(
            "canary_wait_s needs canary (a selector)".into(),
        ));
    }
    Ok(())
}

/// One server of a plan: connected here, or held by another hub.
pub(super) enum Member {
    Here(Arc<AgentConn>),
    Held(Held),
}

impl Member {
    pub(super) fn name(&self) -> &str {
        match self {
            Member::Here(c) => &c.name,
            Member::Held(h) => &h.name,
        }
    }

    fn labels(&self) -> &nextdeploy_shared::labels::Labels {
        match self {
            Member::Here(c) => &c.labels,
            Member::Held(h) => &h.labels,
        }
    }
}

/// Who a deploy goes to, in order: phases (the canaries, then the rest; or
/// one phase), each deployed in batches of `max_parallel`.
pub(super) struct Plan {
    pub(super) phases: Vec<Vec<Member>>,
    pub(super) canaries: Vec<String>,
    pub(super) skipped: Vec<String>,
}

/// Check the request and its targets before any change: every target online
/// (unless `skip_offline`), the canary selector matching some of them.
pub(super) async fn plan(
    svc: &Services,
    req: &Request,
    payload: &DeployRequest,
) -> Result<Plan, ApiError> {
    validate(payload)?;
    let targets = resolve(svc, req).await?;
    let mut online = Vec::new();
    let mut held = Vec::new();
    let mut offline = Vec::new();
    for t in targets {
        match t {
            Target::Online(c) => online.push(c),
            Target::Offline { name, message } => offline.push((name, message)),
            Target::Remote {
                name,
                labels,
                holder,
            } => held.push(Member::Held(Held {
                name,
                labels,
                holder,
            })),
        }
    }
    if !offline.is_empty() && !payload.skip_offline {
        let list: Vec<String> = offline.iter().map(|(_, m)| m.clone()).collect();
        return Err(ApiError::AgentOffline(format!(
            "refusing the deploy before any change: {} of {} targets offline: {}; deploy to the online ones with --skip-offline",
            offline.len(),
            offline.len() + online.len() + held.len(),
            list.join("; ")
        )));
    }
    if online.is_empty() && held.is_empty() {
        return Err(ApiError::AgentOffline(
            "every target is offline; nothing to deploy".into(),
        ));
    }
    crate::api::policy::check_deploy_targets(svc, &online, payload)?;
    let mut online: Vec<Member> = online.into_iter().map(Member::Here).chain(held).collect();
    online.sort_by(|a, b| a.name().cmp(b.name()));
    let skipped = offline.into_iter().map(|(n, _)| n).collect();
    let Some(sel) = &payload.canary else {
        return Ok(Plan {
            phases: vec![online],
            canaries: Vec::new(),
            skipped,
        });
    };
    if req.selector.is_none() {
        return Err(ApiError::BadRequest(
            "canary is for fleet deploys (with a selector)".into(),
        ));
    }
    let selector =
        Selector::parse(sel).map_err(|m| ApiError::BadRequest(format!("bad canary: {m}")))?;
    let (canaries, rest): (Vec<_>, Vec<_>) = online
        .into_iter()
        .partition(|c| selector.matches(c.labels()));
    if canaries.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "canary {sel:?} matches none of the online targets"
        )));
    }
    Ok(Plan {
        canaries: canaries.iter().map(|c| c.name().to_string()).collect(),
        phases: vec![canaries, rest],
        skipped,
    })
}
