//! `rollback`: swap back to the container the last deploy kept, run as a
//! journalled deploy of its own: progress, a health wait (undone if the kept
//! container does not become healthy), an outcome in the hub's history.

use bollard::models::ContainerInspectResponse;
use nextdeploy_shared::protocol::ErrorCode;
use serde_json::{json, Value};

use super::container::{stop_detail, stop_timeout_of, ContainerDeploy};
use super::{err, steps, DeployRequest, Deployer, Kept, Running};
use crate::docker::DockerError;
use crate::limits::{FAILURE_LOG_LINES, ROLLBACK_STOP_GRACE_S};

impl Deployer {
    /// The kept container of `name` (id, image), if the last deploy of the
    /// container running as `current_id` is the one that kept it.
    async fn rollback_point(
        &self,
        name: &str,
        current_id: &str,
    ) -> Result<(String, String), DockerError> {
        let prev_name = steps::previous_name(name);
        let prev = steps::inspect(&self.engine, &prev_name)
            .await
            .map_err(|_| {
                err(
                    ErrorCode::NoSuchContainer,
                    format!(
                        "no rollback point for {name}: deploy with --keep-previous to keep one"
                    ),
                )
            })?;
        let prev_id = prev.id.clone().unwrap_or_default();
        let prev_image = image_of(&prev);
        match self.kept(name) {
            Some(k) if k.kept_id == prev_id && k.current_id == current_id => {
                Ok((prev_id, prev_image))
            }
            _ => Err(err(
                ErrorCode::Conflict,
                format!(
                    "{prev_name} ({prev_image}) is not the rollback point of the running {name}: \
                     the last deploy of {name} did not keep it (deploy with --keep-previous to \
                     keep one); nothing was changed"
                ),
            )),
        }
    }

    /// Roll container `name` (running as `current_id`) back to its kept
    /// container; returns its result object.
    pub(super) async fn rollback_container(
        &self,
        run: &Running,
        req: &DeployRequest,
        current_id: &str,
        name: &str,
        from_image: &str,
    ) -> Value {
        let mut job = ContainerDeploy {
            deployer: self,
            run,
            req,
            old_id: current_id,
            name,
            from_image,
            to_image: String::new(),
        };
        let (prev_id, prev_image) = match self.rollback_point(name, current_id).await {
            Ok(p) => p,
            Err(x) => {
                job.report("rollback", "failed", json!({ "error": x.message }));
                return job.failure("rollback_point", &x, "failed", None);
            }
        };
        job.to_image = prev_image;
        job.report(
            "rollback",
            "started",
            json!({ "from_image": from_image, "to_image": job.to_image, "from_id": current_id, "to_id": prev_id,
                    "detail": format!("rolling {name} back from {from_image} to {}", job.to_image) }),
        );
        if let Err(failed) = job.swap_back(&prev_id).await {
            return failed;
        }
        if let Err(failed) = job.health_back(&prev_id).await {
            return failed;
        }
        let e = &self.engine;
        let prev_name = steps::previous_name(name);
        if let Err(x) = steps::rename(e, current_id, &prev_name).await {
            job.report("cleanup", "failed", json!({ "error": x.message }));
        } else {
            let kept = Kept {
                kept_id: current_id.to_string(),
                current_id: prev_id.clone(),
                deploy_id: req.deploy_id.clone(),
            };
            self.set_kept(name, Some(&kept));
            job.report(
                "cleanup",
                "done",
                json!({ "detail": format!("the replaced container ({from_image}) is kept as {prev_name}, the new rollback point") }),
            );
        }
        json!({ "container": name, "from_image": from_image, "to_image": job.to_image, "outcome": "succeeded",
                "old_id": current_id, "new_id": prev_id, "now_running": prev_id, "kept_as_previous": current_id })
    }
}

fn image_of(c: &ContainerInspectResponse) -> String {
    c.config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// Where the running container waits while its kept one takes the name.
fn parked_name(name: &str, deploy_id: &str) -> String {
    format!("{name}-nd-rb-{}", &deploy_id[..deploy_id.len().min(8)])
}

impl ContainerDeploy<'_> {
    /// Stop the running container, start the kept one under the name.
    async fn swap_back(&self, prev_id: &str) -> Result<(), Value> {
        let (e, name, cur) = (&self.deployer.engine, self.name, self.old_id);
        let stop_timeout = match steps::inspect(e, cur).await {
            Ok(c) => stop_timeout_of(&c),
            Err(x) => return Err(self.failure("inspect", &x, "failed", None)),
        };
        let parked = parked_name(name, &self.req.deploy_id);
        self.report(
            "swap",
            "started",
            json!({ "detail": stop_detail(stop_timeout) }),
        );
        let swap = async {
            steps::rename(e, cur, &parked).await?;
            steps::rename(e, prev_id, name).await?;
            steps::stop(e, cur, stop_timeout).await?;
            steps::start(e, prev_id).await
        };
        if let Err(x) = swap.await {
            let logs = steps::last_logs(e, prev_id, FAILURE_LOG_LINES).await;
            self.undo(prev_id).await;
            self.report("swap", "failed", json!({ "error": x.message }));
            return Err(self.failure("swap", &x, "rolled_back", Some(logs)));
        }
        self.report(
            "swap",
            "done",
            json!({ "from_id": cur, "to_id": prev_id, "detail": format!("{} started under {name}", self.to_image) }),
        );
        Ok(())
    }

    /// Wait for the kept container's health; undo the rollback if it fails.
    async fn health_back(&self, prev_id: &str) -> Result<(), Value> {
        let e = &self.deployer.engine;
        let (timeout, _) = self.health_window();
        self.report(
            "health",
            "started",
            json!({ "timeout_s": timeout.as_secs(), "detail": format!("waiting for {} to be healthy (at most {} s)", self.to_image, timeout.as_secs()) }),
        );
        if let Err(x) = self.healthy(prev_id).await {
            let logs = steps::last_logs(e, prev_id, FAILURE_LOG_LINES).await;
            self.report("health", "failed", json!({ "error": x.message }));
            self.report(
                "rollback",
                "started",
                json!({ "detail": format!("putting {} back", self.from_image) }),
            );
            self.undo(prev_id).await;
            self.report("rollback", "done", json!({}));
            return Err(self.failure("health", &x, "rolled_back", Some(logs)));
        }
        self.report("health", "done", json!({}));
        Ok(())
    }

    /// Put things back as before the rollback: the running container under
    /// its name and running, the kept one stopped under `<name>-nd-previous`.
    async fn undo(&self, prev_id: &str) {
        let (e, name, cur) = (&self.deployer.engine, self.name, self.old_id);
        let _ = steps::stop(e, prev_id, Some(ROLLBACK_STOP_GRACE_S)).await;
        let _ = steps::rename(e, prev_id, &steps::previous_name(name)).await;
        let _ = steps::rename(e, cur, name).await;
        let _ = steps::start(e, cur).await;
    }
}
