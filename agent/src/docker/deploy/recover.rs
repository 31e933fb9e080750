//! Deploys interrupted by an agent restart: on start, before connecting,
//! every journal without an outcome is rolled back from its steps (the old
//! container put back under its name and started) and given the outcome
//! `rolled_back`, which is then delivered like any other.

use nextdeploy_shared::protocol::deploy::{ContainerOutcome, DeployOutcome, Outcome};
use nextdeploy_shared::time::now_unix_ms;
use tracing::warn;

use super::{steps, Deployer, Journal};

/// Why every container of an interrupted deploy failed.
const RESTARTED: &str = "the agent restarted during the deploy";

fn interrupted(name: &str, outcome: Outcome) -> ContainerOutcome {
    ContainerOutcome {
        container: name.to_string(),
        outcome,
        failed_step: Some("agent_restart".into()),
        error: Some(RESTARTED.into()),
        ..ContainerOutcome::default()
    }
}

impl Deployer {
    /// Finish deploys interrupted by an agent restart: put the old container back.
    pub async fn recover(self: &std::sync::Arc<Self>) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let Some(mut j) = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Journal>(&b).ok())
            else {
                continue;
            };
            if j.outcome.is_some() {
                continue;
            }
            warn!(deploy = %j.request.deploy_id, "deploy interrupted by an agent restart; rolling back");
            let results = self.put_back(&j).await;
            j.outcome = Some(DeployOutcome {
                deploy_id: j.request.deploy_id.clone(),
                outcome: Outcome::RolledBack,
                containers: results,
                error: Some(RESTARTED.into()),
                finished_ms: Some(now_unix_ms()),
                steps: j.steps.clone(),
                ..DeployOutcome::default()
            });
            self.save(&j);
        }
    }

    /// Undo what the journal's steps say was done, container by container.
    async fn put_back(&self, j: &Journal) -> Vec<ContainerOutcome> {
        let mut results = Vec::new();
        let done_swap = |s: &&nextdeploy_shared::protocol::deploy::DeployProgress| {
            s.step == "swap" && s.status == "done"
        };
        let swapped: Vec<&str> = j
            .steps
            .iter()
            .filter(done_swap)
            .map(|s| s.container.as_str())
            .collect();
        // A new container still starting beside the old one (no swap yet):
        // the old one never stopped; only the new one goes.
        for s in j
            .steps
            .iter()
            .filter(|s| s.step == "health" && s.status == "started")
        {
            let (name, Some(new)) = (s.container.as_str(), s.new_id.as_deref()) else {
                continue;
            };
            if swapped.contains(&name) {
                continue;
            }
            let _ = steps::remove(&self.engine, new).await;
            // It may have been stopped and parked at the very end.
            let old = j
                .steps
                .iter()
                .filter(|s| s.step == "swap" && s.container == name)
                .find_map(|s| s.old_id.as_deref());
            if let Some(old) = old {
                let _ = steps::rename(&self.engine, old, name).await;
                let _ = steps::start(&self.engine, old).await;
            }
            results.push(interrupted(name, Outcome::RolledBack));
        }
        for s in j.steps.iter().filter(done_swap) {
            let (name, Some(old), Some(new)) = (
                s.container.as_str(),
                s.old_id.as_deref(),
                s.new_id.as_deref(),
            ) else {
                continue;
            };
            let _ = steps::remove(&self.engine, new).await;
            let _ = steps::rename(&self.engine, old, name).await;
            let ok = steps::start(&self.engine, old).await.is_ok();
            let outcome = if ok {
                Outcome::RolledBack
            } else {
                Outcome::Failed
            };
            results.push(interrupted(name, outcome));
        }
        results
    }
}
