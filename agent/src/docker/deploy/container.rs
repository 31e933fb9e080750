//! One container's deploy (pull, swap, health, cleanup or roll back) and the
//! `rollback` action: the part of [`Deployer`] that touches containers.

use std::time::Duration;

use nextdeploy_shared::protocol::ErrorCode;
use nextdeploy_shared::time::now_unix_ms;
use serde_json::{json, Value};
use tracing::warn;

use super::{err, steps, DeployRequest, Deployer, Running};
use crate::docker::DockerError;
use crate::limits::{
    DEFAULT_SETTLE, FAILURE_LOG_LINES, MAX_HEALTH_TIMEOUT_S, PULL_PROGRESS_EVERY,
    ROLLBACK_STOP_GRACE_S,
};
use crate::util::lock;

/// One container's deploy in progress: what each step reports against.
struct ContainerDeploy<'a> {
    deployer: &'a Deployer,
    run: &'a Running,
    req: &'a DeployRequest,
    old_id: &'a str,
    name: &'a str,
    from_image: &'a str,
}

/// The new container started in place of the old one.
struct Swapped {
    new_id: String,
    was_running: bool,
}

impl ContainerDeploy<'_> {
    /// Report step `s` at `status`, with `extra` fields.
    fn report(&self, s: &str, status: &str, extra: Value) {
        let mut v = json!({ "deploy_id": self.req.deploy_id, "container": self.name, "step": s, "status": status, "at_ms": now_unix_ms() });
        if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
            m.extend(x);
        }
        self.deployer.record_event(self.run, v);
    }

    /// The result object of a deploy that failed at step `s`.
    fn failure(&self, s: &str, error: &DockerError, outcome: &str, logs: Option<String>) -> Value {
        json!({ "container": self.name, "from_image": self.from_image, "to_image": self.req.image, "outcome": outcome, "failed_step": s, "error": error.message, "code": error.code, "logs_tail": logs })
    }

    /// Step 1: pull the image, reporting progress at most every
    /// [`PULL_PROGRESS_EVERY`] (layer completions always).
    async fn pull_image(&self) -> Result<(), Value> {
        let req = self.req;
        self.report(
            "pull",
            "started",
            json!({ "image": req.image, "policy": req.pull }),
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
                    json!({ "layer": layer, "detail": status, "current": cur, "total": total }),
                );
            }
        };
        match steps::pull(&self.deployer.engine, &req.image, &req.pull, &mut on).await {
            Ok(pulled) => {
                self.report("pull", "done", json!({ "pulled": pulled }));
                Ok(())
            }
            Err(x) => {
                self.report("pull", "failed", json!({ "error": x.message }));
                Err(self.failure("pull", &x, "failed", None))
            }
        }
    }

    /// Step 2: inspect the old container, create the new one beside it, then
    /// swap: the old stops (freeing its ports), the new starts.
    async fn swap_containers(&self) -> Result<Swapped, Value> {
        let (e, old_id, name) = (&self.deployer.engine, self.old_id, self.name);
        let old = steps::inspect(e, old_id)
            .await
            .map_err(|x| self.failure("inspect", &x, "failed", None))?;
        let was_running = old.state.as_ref().and_then(|s| s.running) == Some(true);
        let stop_timeout = old
            .config
            .as_ref()
            .and_then(|c| c.stop_timeout)
            .map(|t| t as i32);
        let deploy_id = &self.req.deploy_id;
        let parked = format!("{name}-nd-old-{}", &deploy_id[..deploy_id.len().min(8)]);
        self.report("swap", "started", json!({ "old_id": old_id }));
        if let Err(x) = steps::rename(e, old_id, &parked).await {
            self.report("swap", "failed", json!({ "error": x.message }));
            return Err(self.failure("swap", &x, "failed", None));
        }
        let new_id = match steps::create(e, &old, &self.req.image, name).await {
            Ok(id) => id,
            Err(x) => {
                let _ = steps::rename(e, old_id, name).await;
                self.report("swap", "failed", json!({ "error": x.message }));
                return Err(self.failure("create", &x, "rolled_back", None));
            }
        };
        let swap = async {
            steps::stop(e, old_id, stop_timeout).await?;
            steps::start(e, &new_id).await
        };
        if let Err(x) = swap.await {
            let logs = steps::last_logs(e, &new_id, FAILURE_LOG_LINES).await;
            self.deployer
                .rollback_to(old_id, &new_id, name, was_running)
                .await;
            self.report("swap", "failed", json!({ "error": x.message }));
            return Err(self.failure("start", &x, "rolled_back", Some(logs)));
        }
        self.report(
            "swap",
            "done",
            json!({ "old_id": old_id, "new_id": new_id }),
        );
        Ok(Swapped {
            new_id,
            was_running,
        })
    }

    /// Step 3: wait for the new container to be healthy; roll back if it is not.
    async fn await_health(&self, swapped: &Swapped) -> Result<(), Value> {
        let (e, req) = (&self.deployer.engine, self.req);
        let timeout = Duration::from_secs(req.health_timeout_s.clamp(1, MAX_HEALTH_TIMEOUT_S));
        let settle = req
            .settle_s
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_SETTLE);
        self.report(
            "health",
            "started",
            json!({ "timeout_s": timeout.as_secs() }),
        );
        if let Err(x) = steps::wait_healthy(e, &swapped.new_id, timeout, settle).await {
            let logs = steps::last_logs(e, &swapped.new_id, FAILURE_LOG_LINES).await;
            self.report("health", "failed", json!({ "error": x.message }));
            self.report("rollback", "started", json!({}));
            self.deployer
                .rollback_to(self.old_id, &swapped.new_id, self.name, swapped.was_running)
                .await;
            self.report("rollback", "done", json!({}));
            return Err(self.failure("health", &x, "rolled_back", Some(logs)));
        }
        self.report("health", "done", json!({}));
        Ok(())
    }

    /// Step 4: drop the old container, or keep it as the rollback point.
    async fn clean_up(&self) {
        let (e, old_id, keep) = (&self.deployer.engine, self.old_id, self.req.keep_previous);
        self.report("cleanup", "started", json!({ "keep_previous": keep }));
        let previous = steps::previous_name(self.name);
        let cleanup = async {
            if keep {
                if let Ok(p) = steps::inspect(e, &previous).await {
                    steps::remove(e, p.id.as_deref().unwrap_or(&previous)).await?;
                }
                steps::rename(e, old_id, &previous).await
            } else {
                steps::remove(e, old_id).await
            }
        };
        if let Err(x) = cleanup.await {
            self.report("cleanup", "failed", json!({ "error": x.message }));
        } else {
            self.report("cleanup", "done", json!({}));
        }
    }
}

impl Deployer {
    /// Deploy one container (pull, swap, health, cleanup or roll back);
    /// returns its result object.
    pub(super) async fn deploy_container(
        &self,
        run: &Running,
        req: &DeployRequest,
        old_id: &str,
        name: &str,
        from_image: &str,
    ) -> Value {
        let job = ContainerDeploy {
            deployer: self,
            run,
            req,
            old_id,
            name,
            from_image,
        };
        if let Err(failed) = job.pull_image().await {
            return failed;
        }
        let swapped = match job.swap_containers().await {
            Ok(s) => s,
            Err(failed) => return failed,
        };
        if let Err(failed) = job.await_health(&swapped).await {
            return failed;
        }
        job.clean_up().await;
        json!({ "container": name, "from_image": from_image, "to_image": req.image, "outcome": "succeeded", "old_id": old_id, "new_id": swapped.new_id })
    }

    /// Put the old container back under its name, as it was.
    async fn rollback_to(&self, old_id: &str, new_id: &str, name: &str, was_running: bool) {
        let e = &self.engine;
        let _ = steps::stop(e, new_id, Some(ROLLBACK_STOP_GRACE_S)).await;
        if let Err(x) = steps::remove(e, new_id).await {
            warn!(error = %x, "rollback: cannot remove the new container");
        }
        if let Err(x) = steps::rename(e, old_id, name).await {
            warn!(error = %x, "rollback: cannot rename the old container back");
        }
        if was_running {
            if let Err(x) = steps::start(e, old_id).await {
                warn!(error = %x, "rollback: cannot start the old container");
            }
        }
    }

    /// `rollback`: swap back to the container kept by `--keep-previous`.
    pub async fn rollback(&self, name: &str) -> Result<Value, DockerError> {
        let current = crate::docker::containers::resolve(&self.engine, name).await?;
        let prev_name = steps::previous_name(&current.name);
        let prev = steps::inspect(&self.engine, &prev_name)
            .await
            .map_err(|_| {
                err(
                    ErrorCode::NoSuchContainer,
                    format!(
                        "no rollback point for {}: deploy with --keep-previous to keep one",
                        current.name
                    ),
                )
            })?;
        let prev_id = prev.id.clone().unwrap_or_default();
        if lock(&self.busy).contains_key(&current.name) {
            return Err(err(
                ErrorCode::Conflict,
                format!("a deploy is running for {}", current.name),
            ));
        }
        let e = &self.engine;
        let parked = format!("{}-nd-rolledback", current.name);
        if let Ok(p) = steps::inspect(e, &parked).await {
            steps::remove(e, p.id.as_deref().unwrap_or(&parked)).await?;
        }
        steps::rename(e, &current.id, &parked).await?;
        steps::rename(e, &prev_id, &current.name).await?;
        steps::stop(e, &current.id, None).await?;
        if let Err(x) = steps::start(e, &prev_id).await {
            // Undo: the current one comes back.
            let _ = steps::rename(e, &prev_id, &prev_name).await;
            let _ = steps::rename(e, &current.id, &current.name).await;
            let _ = steps::start(e, &current.id).await;
            return Err(x);
        }
        steps::rename(e, &current.id, &prev_name).await?;
        Ok(
            json!({ "container": current.name, "now_running": prev_id, "kept_as_previous": current.id }),
        )
    }
}
