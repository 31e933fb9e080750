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
