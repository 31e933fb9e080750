//! `rollback`: undo the last deploy of a container, run as a journalled
//! deploy of its own (progress, a health wait, an outcome in the hub's
//! history). With the container the last deploy kept (`keep_previous`, and
//! verified: both ids still match), it is swapped back in at once, undone if
//! it does not become healthy. Otherwise the version the last deploy
//! replaced, as recorded on this agent ([`super::history`]), is deployed
//! again through the deploy path: its image (pulled if missing), its
//! configuration, the same health gate. Either way the version undone is
//! taken off the history: a second rollback goes one deploy further back.

use bollard::models::ContainerInspectResponse;
use nextdeploy_shared::protocol::deploy::{
    ContainerOutcome, DeployProgress as Step, Outcome, RollbackVia,
};
use nextdeploy_shared::protocol::ErrorCode;

use super::container::{stop_detail, stop_timeout_of, ContainerDeploy};
use super::{err, steps, DeployRequest, Deployer, Running};
use crate::docker::DockerError;
use crate::limits::{FAILURE_LOG_LINES, ROLLBACK_STOP_GRACE_S};

/// Where the rollback goes back to.
enum Point {
    /// The verified kept container: (id, image).
    Kept(String, String),
    /// No usable kept container; why not, if one is there (stale).
    None(Option<String>),
}

impl Deployer {
    /// The kept container of `name`, if the last deploy of the container
    /// running as `current_id` is the one that kept it.
    async fn rollback_point(&self, name: &str, current_id: &str) -> Point {
        let prev_name = steps::previous_name(name);
        let Ok(prev) = steps::inspect(&self.engine, &prev_name).await else {
            return Point::None(None);
        };
        let prev_id = prev.id.clone().unwrap_or_default();
        let prev_image = image_of(&prev);
        match self.kept(name) {
            Some(k) if k.kept_id == prev_id && k.current_id == current_id => {
                Point::Kept(prev_id, prev_image)
            }
            _ => Point::None(Some(format!(
                "{prev_name} ({prev_image}) is not the rollback point of the running {name}: \
                 the last deploy of {name} did not keep it; it is left alone"
            ))),
        }
    }

    /// Roll container `name` (running as `current_id`) back; its result.
    pub(super) async fn rollback_container(
        &self,
        run: &Running,
        req: &DeployRequest,
        current_id: &str,
        name: &str,
        from_image: &str,
    ) -> ContainerOutcome {
        let mut job = ContainerDeploy {
            deployer: self,
            run,
            req,
            old_id: current_id,
            name,
            from_image,
            to_image: String::new(),
            config_from: None,
        };
        match self.rollback_point(name, current_id).await {
            Point::Kept(prev_id, prev_image) => {
                job.to_image = prev_image;
                job.swap_back_to(&prev_id).await
            }
            Point::None(stale) => self.redeploy_recorded(job, stale).await,
        }
    }

    /// No kept container: deploy the recorded previous version again.
    async fn redeploy_recorded(
        &self,
        job: ContainerDeploy<'_>,
        stale: Option<String>,
    ) -> ContainerOutcome {
        let (name, current_id) = (job.name, job.old_id);
        let versions = self.versions(name);
        let refuse = |job: &ContainerDeploy, x: DockerError| {
            job.report("rollback", "failed", Step::error(&x.message));
            job.failure("rollback_point", &x, Outcome::Failed, None)
        };
        let Some(v) = versions.last() else {
            let why = stale.map(|s| format!("; {s}")).unwrap_or_default();
            let x = err(
                ErrorCode::NotFound,
                format!(
                    "nothing earlier recorded for {name}: no deploy of it replaced a version that \
                     was not rolled back already (a rollback undoes deploys one at a time, \
                     newest first){why}; nothing was changed"
                ),
            );
            return refuse(&job, x);
        };
        if v.replaced_by != current_id {
            let x = err(
                ErrorCode::Conflict,
                format!(
                    "{name} runs container {} but its last deploy ({}) left {}: it was replaced \
                     outside nextdeploy, so its recorded previous version may not be what ran \
                     before it; nothing was changed",
                    short(current_id),
                    short(&v.deploy_id),
                    short(&v.replaced_by)
                ),
            );
            return refuse(&job, x);
        }
        // The same job, borrowing the recorded configuration.
        let mut job: ContainerDeploy<'_> = job;
        job.to_image = self.image_to_run(&v.image, &v.image_id).await;
        job.config_from = Some(&v.config);
        let mut detail = format!(
            "rolling {name} back from {} to {} (the version deploy {} replaced), redeployed with its recorded configuration",
            job.from_image, job.to_image, short(&v.deploy_id)
        );
        if let Some(s) = stale {
            detail.push_str(&format!("; {s}"));
        }
        job.report(
            "rollback",
            "started",
            Step {
                from_image: Some(job.from_image.to_string()),
                to_image: Some(job.to_image.clone()),
                ..Step::detail(detail)
            },
        );
        let mut r = job.run().await;
        if r.outcome == Outcome::Succeeded {
            if let Some(now) = &r.new_id {
                self.went_back(name, current_id, now);
            }
        }
        r.rollback_via = Some(RollbackVia::RecordedVersion);
        r.undid_deploy = Some(v.deploy_id.clone());
        r
    }

    /// The recorded image by its reference while that still names the
    /// recorded image id (or the id cannot be checked), else by its id: a
    /// tag moved since is not what ran.
    async fn image_to_run(&self, image: &str, image_id: &str) -> String {
        if image_id.is_empty() {
            return image.to_string();
        }
        let Ok(docker) = self.engine.docker().await else {
            return image.to_string();
        };
        let now = docker.inspect_image(image).await.ok().and_then(|i| i.id);
        let by_id = docker.inspect_image(image_id).await.is_ok();
        match now {
            Some(id) if id != image_id && by_id => image_id.to_string(),
            _ => image.to_string(),
        }
    }
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
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
    /// The instant rollback: the kept container `prev_id` back under the
    /// name, health-gated; the replaced container removed.
    async fn swap_back_to(&self, prev_id: &str) -> ContainerOutcome {
        let (name, from_image, current_id) = (self.name, self.from_image, self.old_id);
        self.report(
            "rollback",
            "started",
            Step {
                from_image: Some(from_image.to_string()),
                to_image: Some(self.to_image.clone()),
                from_id: Some(current_id.to_string()),
                to_id: Some(prev_id.to_string()),
                ..Step::detail(format!(
                    "rolling {name} back from {from_image} to {} (the kept container)",
                    self.to_image
                ))
            },
        );
        let done = async {
            self.swap_back(prev_id).await?;
            self.health_back(prev_id).await
        };
        if let Err(mut failed) = done.await {
            failed.rollback_via = Some(RollbackVia::KeptContainer);
            return failed;
        }
        let d = self.deployer;
        d.set_kept(name, None);
        d.went_back(name, current_id, prev_id);
        match steps::remove(&d.engine, current_id).await {
            Err(x) => self.report("cleanup", "failed", Step::error(&x.message)),
            Ok(()) => self.report(
                "cleanup",
                "done",
                Step::detail(format!("removed the replaced container ({from_image})")),
            ),
        }
        ContainerOutcome {
            old_id: Some(current_id.to_string()),
            new_id: Some(prev_id.to_string()),
            rollback_via: Some(RollbackVia::KeptContainer),
            ..self.result(Outcome::Succeeded)
        }
    }

    /// Stop the running container, start the kept one under the name.
    async fn swap_back(&self, prev_id: &str) -> Result<(), ContainerOutcome> {
        let (e, name, cur) = (&self.deployer.engine, self.name, self.old_id);
        let stop_timeout = match steps::inspect(e, cur).await {
            Ok(c) => stop_timeout_of(&c),
            Err(x) => return Err(self.failure("inspect", &x, Outcome::Failed, None)),
        };
        let parked = parked_name(name, &self.req.deploy_id);
        self.report("swap", "started", Step::detail(stop_detail(stop_timeout)));
        let swap = async {
            steps::rename(e, cur, &parked).await?;
            steps::rename(e, prev_id, name).await?;
            steps::stop(e, cur, stop_timeout).await?;
            steps::start(e, prev_id).await
        };
        if let Err(x) = swap.await {
            let logs = steps::last_logs(e, prev_id, FAILURE_LOG_LINES).await;
            self.undo(prev_id).await;
            self.report("swap", "failed", Step::error(&x.message));
            return Err(self.failure("swap", &x, Outcome::RolledBack, Some(logs)));
        }
        self.report(
            "swap",
            "done",
            Step {
                from_id: Some(cur.to_string()),
                to_id: Some(prev_id.to_string()),
                ..Step::detail(format!("{} started under {name}", self.to_image))
            },
        );
        Ok(())
    }

    /// Wait for the kept container's health; undo the rollback if it fails.
    async fn health_back(&self, prev_id: &str) -> Result<(), ContainerOutcome> {
        let e = &self.deployer.engine;
        let (timeout, _) = self.health_window();
        self.report(
            "health",
            "started",
            Step {
                timeout_s: Some(timeout.as_secs()),
                ..Step::detail(format!(
                    "waiting for {} to be healthy (at most {} s)",
                    self.to_image,
                    timeout.as_secs()
                ))
            },
        );
        if let Err(x) = self.healthy(prev_id).await {
            let logs = steps::last_logs(e, prev_id, FAILURE_LOG_LINES).await;
            self.report("health", "failed", Step::error(&x.message));
            self.report(
                "rollback",
                "started",
                Step::detail(format!("putting {} back", self.from_image)),
            );
            self.undo(prev_id).await;
            self.report("rollback", "done", Step::default());
            return Err(self.failure("health", &x, Outcome::RolledBack, Some(logs)));
        }
        self.report("health", "done", Step::default());
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
