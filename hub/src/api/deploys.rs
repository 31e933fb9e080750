//! Deploy history: `deploys_list` (light records) and `deploys_show` (one
//! record with its steps, and a running deploy's steps so far).

use nextdeploy_shared::protocol::admin::ById;
use nextdeploy_shared::protocol::deploy::{ContainerOutcome, DeployProgress, DeploysList};
use nextdeploy_shared::protocol::Request;
use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::ApiError;
use crate::limits::{DEPLOYS_LIST_DEFAULT, DEPLOYS_LIST_MAX, LIVE_STEPS_MAX};
use crate::store;
use crate::sync::lock_or_recover;
use crate::Services;

/// The steps of the deploys this hub is relaying, by id, for `deploys_show`
/// of a running deploy (`deploys show ID --follow` polls it). Owned by
/// [`Services`]; an entry lives from the deploy's start to its outcome.
#[derive(Debug, Default)]
pub struct LiveSteps(Mutex<HashMap<String, Vec<DeployProgress>>>);

impl LiveSteps {
    /// Record a progress step of deploy `id` (byte counts of a pull are not
    /// kept; at most [`LIVE_STEPS_MAX`] steps per deploy).
    pub fn push(&self, id: &str, step: &DeployProgress) {
        if step.step == "pull_progress" {
            return;
        }
        let mut live = lock_or_recover(&self.0);
        let steps = live.entry(id.to_string()).or_default();
        if steps.len() < LIVE_STEPS_MAX {
            steps.push(step.clone());
        }
    }

    /// The deploy ended: forget its steps.
    pub fn remove(&self, id: &str) {
        lock_or_recover(&self.0).remove(id);
    }

    /// The steps so far of a running deploy.
    pub fn steps(&self, id: &str) -> Option<Vec<DeployProgress>> {
        lock_or_recover(&self.0).get(id).cloned()
    }
}

/// Shortest id prefix `deploys_show` takes, as `docker` takes short ids.
const MIN_ID_PREFIX: usize = 4;

/// The full id of the one recent deploy whose id starts with `prefix`.
async fn id_by_prefix(svc: &Services, prefix: &str) -> Result<String, ApiError> {
    if prefix.len() < MIN_ID_PREFIX {
        return Err(ApiError::NotFound(format!(
            "no deploy with id {prefix} (give the id or at least {MIN_ID_PREFIX} of its characters)"
        )));
    }
    let recent = store::blocking(&svc.store, |s| {
        s.list_deploys(None, DEPLOYS_LIST_MAX as u32)
    })
    .await?;
    let found: Vec<String> = recent
        .into_iter()
        .map(|d| d.id)
        .filter(|id| id.starts_with(prefix))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ApiError::NotFound(format!("no deploy with id {prefix}"))),
        many => Err(ApiError::Conflict(format!(
            "{prefix} is the start of {} deploy ids: {}; give more of it",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// `deploys_show`: by id or a unique id prefix.
pub async fn show(svc: &Services, p: ById) -> Result<Value, ApiError> {
    let i = p.id.clone();
    let exact = store::blocking(&svc.store, move |s| s.deploy(&i)).await?;
    let (id, found) = match exact {
        Some(d) => (p.id, Some(d)),
        None => {
            let id = id_by_prefix(svc, &p.id).await?;
            let i = id.clone();
            (
                id,
                store::blocking(&svc.store, move |s| s.deploy(&i)).await?,
            )
        }
    };
    match found {
        Some(d) => {
            let mut entry = d.entry();
            // A running deploy: its steps so far.
            entry.progress = svc.live_deploys.steps(&id);
            Ok(serde_json::to_value(entry).unwrap_or_default())
        }
        None => Err(ApiError::NotFound(format!("no deploy with id {id}"))),
    }
}

/// `deploys_list`.
pub async fn list(svc: &Services, req: &Request, p: DeploysList) -> Result<Value, ApiError> {
    let server = req.server.clone();
    let limit = p
        .limit
        .unwrap_or(DEPLOYS_LIST_DEFAULT)
        .clamp(1, DEPLOYS_LIST_MAX) as u32;
    let list = store::blocking(&svc.store, move |s| {
        s.list_deploys(server.as_deref(), limit)
    })
    .await?;
    // The list stays light: no steps, logs or container ids.
    let entries: Vec<_> = list
        .into_iter()
        .map(|d| {
            let mut e = d.entry();
            if let Some(o) = &mut e.outcome {
                o.steps.clear();
                o.containers = o.containers.iter().map(light).collect();
            }
            e
        })
        .collect();
    Ok(serde_json::to_value(entries).unwrap_or_default())
}

/// A container's outcome as `deploys_list` shows it.
fn light(c: &ContainerOutcome) -> ContainerOutcome {
    ContainerOutcome {
        container: c.container.clone(),
        from_image: c.from_image.clone(),
        to_image: c.to_image.clone(),
        outcome: c.outcome,
        failed_step: c.failed_step.clone(),
        rollback_via: c.rollback_via,
        ..ContainerOutcome::default()
    }
}
