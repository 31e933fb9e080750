//! The versions a container ran before its deploys, newest last: what
//! `rollback` deploys again when no kept container is there. Each
//! successful deploy records the version it replaced (image reference,
//! image id, the whole inspected configuration) and the container that
//! replaced it; a successful rollback takes the newest off, so rolling back
//! twice goes back two deploys, and then says nothing earlier is recorded.
//! Kept in `<state dir>/deploys/history/<name>.json`.

use bollard::models::ContainerInspectResponse;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::Deployer;

/// Versions kept per container: ten deploys back covers any rollback an
/// operator walks through by hand; each costs one inspect document (a few
/// KB) on disk, never in memory beyond a rollback.
pub(super) const MAX_VERSIONS: usize = 10;

/// One replaced version of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Version {
    /// The image reference it ran (`Config.Image`).
    pub image: String,
    /// The image id it ran (`sha256:...`).
    pub image_id: String,
    /// The container as it was (`docker inspect`): its configuration is
    /// what the rollback recreates.
    pub config: ContainerInspectResponse,
    /// The container that now runs in its place (checked before a rollback:
    /// a container replaced outside nextdeploy is not rolled back).
    pub replaced_by: String,
    /// The deploy that replaced it.
    pub deploy_id: String,
}

impl Deployer {
    fn history_path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join("history").join(format!("{name}.json"))
    }

    /// The recorded versions of container `name`, oldest first.
    pub(super) fn versions(&self, name: &str) -> Vec<Version> {
        std::fs::read(self.history_path(name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn set_versions(&self, name: &str, v: &[Version]) {
        let path = self.history_path(name);
        if v.is_empty() {
            let _ = std::fs::remove_file(&path);
            return;
        }
        let _ = std::fs::create_dir_all(self.dir.join("history"));
        match serde_json::to_vec(v) {
            Ok(bytes) => {
                if let Err(e) = nextdeploy_shared::keys::write_private_atomic(&path, &bytes) {
                    warn!(error = %e, "cannot record the replaced version");
                }
            }
            Err(e) => warn!(error = %e, "cannot encode the replaced version"),
        }
    }

    /// A deploy replaced `v` (the oldest go past [`MAX_VERSIONS`]).
    pub(super) fn record_replaced(&self, name: &str, v: Version) {
        let mut all = self.versions(name);
        all.push(v);
        let extra = all.len().saturating_sub(MAX_VERSIONS);
        all.drain(..extra);
        self.set_versions(name, &all);
    }

    /// A rollback of `name` from container `from_id` succeeded and
    /// `now_running` runs the newest recorded version: take it off; the one
    /// before it is now replaced by `now_running`.
    pub(super) fn went_back(&self, name: &str, from_id: &str, now_running: &str) {
        let mut all = self.versions(name);
        if all.last().is_none_or(|v| v.replaced_by != from_id) {
            return;
        }
        all.pop();
        if let Some(top) = all.last_mut() {
            top.replaced_by = now_running.to_string();
        }
        self.set_versions(name, &all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::Engine;
    use std::sync::Arc;

    fn deployer(tag: &str) -> (Arc<Deployer>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("nd-history-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (push, _) = tokio::sync::broadcast::channel(1);
        let d = Deployer::new(Arc::new(Engine::new(None)), dir.clone(), push);
        (d, dir)
    }

    fn version(n: usize) -> Version {
        Version {
            image: format!("app:{n}"),
            image_id: format!("sha256:{n}"),
            config: ContainerInspectResponse::default(),
            replaced_by: format!("c{}", n + 1),
            deploy_id: format!("d{n}"),
        }
    }

    #[test]
    fn the_newest_versions_are_kept_and_a_rollback_takes_one_off() {
        let (d, dir) = deployer("trim");
        for n in 0..MAX_VERSIONS + 2 {
            d.record_replaced("web", version(n));
        }
        let all = d.versions("web");
        assert_eq!(all.len(), MAX_VERSIONS);
        assert_eq!(all[0].image, "app:2", "the oldest two went");
        let newest = MAX_VERSIONS + 1;
        // Not the container the newest deploy left: nothing changes.
        d.went_back("web", "someone-else", "r1");
        assert_eq!(d.versions("web").len(), MAX_VERSIONS);
        // The rollback from it: the newest goes, the one before now points
        // at the container the rollback started.
        d.went_back("web", &format!("c{}", newest + 1), "r1");
        let all = d.versions("web");
        assert_eq!(all.len(), MAX_VERSIONS - 1);
        assert_eq!(all.last().map(|v| v.replaced_by.as_str()), Some("r1"));
        assert_eq!(
            all.last().map(|v| v.image.as_str()),
            Some(format!("app:{}", newest - 1).as_str())
        );
        // Other containers have their own history.
        assert!(d.versions("db").is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_last_rollback_empties_the_history() {
        let (d, dir) = deployer("empty");
        d.record_replaced("web", version(1));
        d.went_back("web", "c2", "r");
        assert!(d.versions("web").is_empty());
        assert!(!dir.join("history").join("web.json").exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
