//! One container's deploy (pull, swap, health, cleanup or roll back): the
//! part of [`Deployer`] that touches containers.
//!
//! A running container that publishes no host port is replaced without a
//! gap: the new one is created under a temporary name and started beside
//! the old one, and only once it is healthy does the old one stop and the
//! new one take the name. One that publishes host ports (or uses the host's
//! network) cannot overlap: the new one is created first, then the old one
//! stops and the new one starts at once, so the gap is the old one's stop.

use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use nextdeploy_shared::protocol::deploy::{ContainerOutcome, DeployProgress as Step, Outcome};
use nextdeploy_shared::time::now_unix_ms;

use super::history::Version;
use super::swap::overlap_blocker;
use super::{steps, DeployRequest, Deployer, Kept, Running};
use crate::docker::DockerError;
use crate::limits::{
    DEFAULT_SETTLE, DOCKER_DEFAULT_STOP_TIMEOUT_S, MAX_HEALTH_TIMEOUT_S, PULL_PROGRESS_EVERY,
};

/// One container's deploy in progress: what each step reports against.
pub(super) struct ContainerDeploy<'a> {
    pub(super) deployer: &'a Deployer,
    pub(super) run: &'a Running,
    pub(super) req: &'a DeployRequest,
    pub(super) old_id: &'a str,
    pub(super) name: &'a str,
    pub(super) from_image: &'a str,
    pub(super) to_image: String,
    /// The configuration to create the new container from, when it is not
    /// the running container's (a rollback to a recorded version).
    pub(super) config_from: Option<&'a ContainerInspectResponse>,
}

/// The old container's stop timeout (its own, else Docker's default).
pub(super) fn stop_timeout_of(c: &ContainerInspectResponse) -> Option<i32> {
    c.config
        .as_ref()
        .and_then(|c| c.stop_timeout)
        .map(|t| t as i32)
}

/// "stopping the old container (stop timeout 10 s)".
pub(super) fn stop_detail(timeout: Option<i32>) -> String {
    format!(
        "stopping the old container (stop timeout {} s)",
        timeout.unwrap_or(DOCKER_DEFAULT_STOP_TIMEOUT_S)
    )
}

impl ContainerDeploy<'_> {
    /// Report step `s` at `status`, with the step-specific fields of `extra`.
    pub(super) fn report(&self, s: &str, status: &str, extra: Step) {
        let step = Step {
            deploy_id: self.req.deploy_id.clone(),
            container: self.name.to_string(),
            step: s.to_string(),
            status: status.to_string(),
            at_ms: now_unix_ms(),
            ..extra
        };
        self.deployer.record_event(self.run, step);
    }

    /// This container's result so far, with `outcome`.
    pub(super) fn result(&self, outcome: Outcome) -> ContainerOutcome {
        ContainerOutcome {
            container: self.name.to_string(),
            from_image: self.from_image.to_string(),
            to_image: self.to_image.clone(),
            outcome,
            ..ContainerOutcome::default()
        }
    }

    /// The result of a deploy that failed at step `s`.
    pub(super) fn failure(
        &self,
        s: &str,
        error: &DockerError,
        outcome: Outcome,
        logs: Option<String>,
    ) -> ContainerOutcome {
        ContainerOutcome {
            failed_step: Some(s.to_string()),
            error: Some(error.message.clone()),
            code: Some(error.code),
            logs_tail: logs,
            ..self.result(outcome)
        }
    }

    /// Step 1: pull the image, reporting progress at most every
    /// [`PULL_PROGRESS_EVERY`] (layer completions always).
    async fn pull_image(&self) -> Result<(), ContainerOutcome> {
        let (req, image) = (self.req, &self.to_image);
        self.report(
            "pull",
            "started",
            Step {
                image: Some(image.clone()),
                policy: Some(req.pull.clone()),
                ..Step::default()
            },
        );
        let mut last = std::time::Instant::now();
        let mut on = |layer: &str, status: &str, cur: i64, total: i64| {
            if last.elapsed() >= PULL_PROGRESS_EVERY
                || status.starts_with("Pull complete")
                || status.starts_with("Digest")
            {
                last = std::time::Instant::now();
                self.report(
                    "pull_progress",
                    "progress",
                    Step {
                        layer: Some(layer.to_string()),
                        detail: Some(status.to_string()),
                        current: Some(cur),
                        total: Some(total),
                        ..Step::default()
                    },
                );
            }
        };
        match steps::pull(&self.deployer.engine, image, &req.pull, &mut on).await {
            Ok(pulled) => {
                let detail = match (pulled, req.pull.as_str()) {
                    (true, _) => format!("pulled {image}"),
                    (false, "never") => "image present, not pulled (pull never)".to_string(),
                    (false, _) => "image present, not pulled".to_string(),
                };
                self.report(
                    "pull",
                    "done",
                    Step {
                        pulled: Some(pulled),
                        ..Step::detail(detail)
                    },
                );
                Ok(())
            }
            Err(x) => {
                self.report("pull", "failed", Step::error(&x.message));
                Err(self.failure("pull", &x, Outcome::Failed, None))
            }
        }
    }

    /// Healthy (see [`steps::wait_healthy`]), then, for a canary, healthy
    /// throughout its health window.
    pub(super) async fn healthy(&self, id: &str) -> Result<(), DockerError> {
        let (timeout, settle) = self.health_window();
        let e = &self.deployer.engine;
        steps::wait_healthy(e, id, timeout, settle).await?;
        let Some(w) = self.req.watch_s else {
            return Ok(());
        };
        let window = Duration::from_secs(w.min(MAX_HEALTH_TIMEOUT_S));
        self.report(
            "canary_wait",
            "started",
            Step::detail(format!(
                "healthy; watching it for {} s (canary health window)",
                window.as_secs()
            )),
        );
        let r = steps::watch(e, id, window).await;
        let status = if r.is_ok() { "done" } else { "failed" };
        self.report("canary_wait", status, Step::default());
        r
    }

    pub(super) fn health_window(&self) -> (Duration, Duration) {
        let req = self.req;
        let timeout = Duration::from_secs(req.health_timeout_s.clamp(1, MAX_HEALTH_TIMEOUT_S));
        let settle = req
            .settle_s
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_SETTLE);
        (timeout, settle)
    }

    /// Step 4: drop the old container, or keep it as the rollback point. A
    /// deploy that keeps nothing also removes a rollback point left by an
    /// earlier deploy: it would roll back past this one. (A rollback leaves
    /// a stale one alone: it was not used, and it is no longer a point.)
    async fn clean_up(&self, new_id: &str) {
        let (e, old_id) = (&self.deployer.engine, self.old_id);
        let keep = self.req.keep_previous && !self.req.rollback;
        let previous = steps::previous_name(self.name);
        let detail = if keep {
            format!("keeping the old container as {previous}")
        } else {
            "removing the old container".to_string()
        };
        self.report(
            "cleanup",
            "started",
            Step {
                keep_previous: Some(keep),
                ..Step::detail(detail)
            },
        );
        let stale = match self.req.rollback {
            true => None,
            false => steps::inspect(e, &previous).await.ok(),
        };
        let cleanup = async {
            if let Some(p) = &stale {
                steps::remove(e, p.id.as_deref().unwrap_or(&previous)).await?;
            }
            if keep {
                steps::rename(e, old_id, &previous).await
            } else {
                steps::remove(e, old_id).await
            }
        };
        let result = cleanup.await;
        let kept = Kept {
            kept_id: old_id.to_string(),
            current_id: new_id.to_string(),
            deploy_id: self.req.deploy_id.clone(),
        };
        self.deployer
            .set_kept(self.name, (keep && result.is_ok()).then_some(&kept));
        match result {
            Err(x) => self.report("cleanup", "failed", Step::error(&x.message)),
            Ok(()) if stale.is_some() && !keep => self.report(
                "cleanup",
                "done",
                Step::detail(format!("also removed the stale rollback point {previous}")),
            ),
            Ok(()) => self.report("cleanup", "done", Step::default()),
        }
    }

    /// Create the new container (named `name`) with the target image, from
    /// the running container's configuration or the recorded one.
    pub(super) async fn create(
        &self,
        old: &ContainerInspectResponse,
        name: &str,
    ) -> Result<String, DockerError> {
        let from = self.config_from.unwrap_or(old);
        steps::create(&self.deployer.engine, from, &self.to_image, name).await
    }

    /// Why the old and new containers cannot run side by side, if so.
    fn blocker(&self, old: &ContainerInspectResponse) -> Option<&'static str> {
        if old.state.as_ref().and_then(|s| s.running) != Some(true) {
            return Some("the old container is not running");
        }
        overlap_blocker(old).or_else(|| self.config_from.and_then(overlap_blocker))
    }

    /// Pull, swap, health, cleanup or roll back; the container's result.
    pub(super) async fn run(&self) -> ContainerOutcome {
        if let Err(failed) = self.pull_image().await {
            return failed;
        }
        let e = &self.deployer.engine;
        let old = match steps::inspect(e, self.old_id).await {
            Ok(o) => o,
            Err(x) => return self.failure("inspect", &x, Outcome::Failed, None),
        };
        let swapped = if let Some(why) = self.blocker(&old) {
            let swapped = match self.swap_containers(&old, why).await {
                Ok(s) => s,
                Err(failed) => return failed,
            };
            if let Err(failed) = self.await_health(&swapped).await {
                return failed;
            }
            swapped
        } else {
            match self.overlap(&old).await {
                Ok(s) => s,
                Err(failed) => return failed,
            }
        };
        self.clean_up(&swapped.new_id).await;
        if !self.req.rollback {
            self.deployer.record_replaced(
                self.name,
                Version {
                    image: self.from_image.to_string(),
                    image_id: old.image.clone().unwrap_or_default(),
                    config: old,
                    replaced_by: swapped.new_id.clone(),
                    deploy_id: self.req.deploy_id.clone(),
                },
            );
        }
        ContainerOutcome {
            old_id: Some(self.old_id.to_string()),
            new_id: Some(swapped.new_id),
            ..self.result(Outcome::Succeeded)
        }
    }
}

impl Deployer {
    /// Deploy one container (pull, swap, health, cleanup or roll back);
    /// returns its result.
    pub(super) async fn deploy_container(
        &self,
        run: &Running,
        req: &DeployRequest,
        old_id: &str,
        name: &str,
        from_image: &str,
    ) -> ContainerOutcome {
        let job = ContainerDeploy {
            deployer: self,
            run,
            req,
            old_id,
            name,
            from_image,
            to_image: req.image.clone(),
            config_from: None,
        };
        job.run().await
    }
}
