//! Deploy history: `deploys_list` (light records) and `deploys_show` (one
//! record with its steps, and a running deploy's steps so far).

use nextdeploy_shared::protocol::admin::ById;
use nextdeploy_shared::protocol::deploy::DeploysList;
use nextdeploy_shared::protocol::Request;
use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::ApiError;
use crate::limits::{DEPLOYS_LIST_DEFAULT, DEPLOYS_LIST_MAX, LIVE_STEPS_MAX};
use crate::store;
use crate::sync::lock_or_recover;
use crate::Services;

/// The steps of the deploys this hub is relaying, by id, for `deploys_show`
/// of a running deploy (`deploys show ID --follow` polls it). Owned by
/// [`Services`]; an entry lives from the deploy's start to its outcome.
#[derive(Debug, Default)]
pub struct LiveSteps(Mutex<HashMap<String, Vec<Value>>>);

impl LiveSteps {
    /// Record a progress step of deploy `id` (byte counts of a pull are not
    /// kept; at most [`LIVE_STEPS_MAX`] steps per deploy).
    pub fn push(&self, id: &str, step: &Value) {
        if step.get("step").and_then(Value::as_str) == Some("pull_progress") {
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
    pub fn steps(&self, id: &str) -> Option<Vec<Value>> {
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
            let mut v = serde_json::to_value(d).unwrap_or_default();
            // A running deploy: its steps so far.
            if let Some(steps) = svc.live_deploys.steps(&id) {
                v["progress"] = json!(steps);
            }
            Ok(v)
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
    // The list stays light: no step details.
    Ok(Value::Array(
        list.into_iter()
            .map(|mut d| {
                let summary = d.outcome.as_ref().map(|o| json!({ "outcome": o.get("outcome"), "kind": o.get("kind"), "error": o.get("error"), "containers": o.get("containers").map(|c| c.as_array().map(|a| a.iter().map(|x| json!({"container": x.get("container"), "outcome": x.get("outcome"), "from_image": x.get("from_image"), "failed_step": x.get("failed_step")})).collect::<Vec<_>>())) }));
                d.outcome = summary;
                serde_json::to_value(d).unwrap_or_default()
            })
            .collect(),
    ))
}
