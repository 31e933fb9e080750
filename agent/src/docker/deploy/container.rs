//! One container's deploy (pull, swap, health, cleanup or roll back) and the
//! `rollback` action: the part of [`Deployer`] that touches containers.

use std::time::Duration;

use nextdeploy_shared::protocol::ErrorCode;
use nextdeploy_shared::time::now_unix_ms;
use serde_json::{json, Value};
use tracing::warn;

use super::{err, steps, DeployRequest, Deployer, Running};
use crate::docker::DockerError;
use crate::limits::{DEFAULT_SETTLE, FAILURE_LOG_LINES, MAX_HEALTH_TIMEOUT_S, PULL_PROGRESS_EVERY};

impl Deployer {
    /// Deploy one container; returns its result object.
    pub(super) async fn one(
        &self,
        run: &Running,
        req: &DeployRequest,
        old_id: &str,
        name: &str,
        from_image: &str,
    ) -> Value {
        let e = &self.engine;
        let step = |s: &str, status: &str, extra: Value| {
            let mut v = json!({ "deploy_id": req.deploy_id, "container": name, "step": s, "status": status, "at_ms": now_unix_ms() });
            if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
                m.extend(x);
            }
            self.event(run, v);
        };
        let fail = |s: &str, error: &DockerError, outcome: &str, logs: Option<String>| json!({ "container": name, "from_image": from_image, "to_image": req.image, "outcome": outcome, "failed_step": s, "error": error.message, "code": error.code, "logs_tail": logs });
        // 1. pull
        step(
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
                step(
                    "pull_progress",
                    "progress",
                    json!({ "layer": layer, "detail": status, "current": cur, "total": total }),
                );
            }
        };
        match steps::pull(e, &req.image, &req.pull, &mut on).await {
            Ok(pulled) => step("pull", "done", json!({ "pulled": pulled })),
            Err(x) => {
                step("pull", "failed", json!({ "error": x.message }));
                return fail("pull", &x, "failed", None);
            }
        }
        // 2. prepare: inspect the old container, create the new one beside it.
        let old = match steps::inspect(e, old_id).await {
            Ok(o) => o,
            Err(x) => return fail("inspect", &x, "failed", None),
        };
        let was_running = old.state.as_ref().and_then(|s| s.running) == Some(true);
        let stop_timeout = old
            .config
            .as_ref()
            .and_then(|c| c.stop_timeout)
            .map(|t| t as i32);
        let parked = format!(
            "{name}-nd-old-{}",
            &req.deploy_id[..req.deploy_id.len().min(8)]
        );
        step("swap", "started", json!({ "old_id": old_id }));
        if let Err(x) = steps::rename(e, old_id, &parked).await {
            step("swap", "failed", json!({ "error": x.message }));
            return fail("swap", &x, "failed", None);
        }
        let new_id = match steps::create(e, &old, &req.image, name).await {
            Ok(id) => id,
            Err(x) => {
                let _ = steps::rename(e, old_id, name).await;
                step("swap", "failed", json!({ "error": x.message }));
                return fail("create", &x, "rolled_back", None);
            }
        };
        // The swap: the old stops (freeing its ports), the new starts.
        let swap = async {
            steps::stop(e, old_id, stop_timeout).await?;
            steps::start(e, &new_id).await
        };
        if let Err(x) = swap.await {
            let logs = steps::last_logs(e, &new_id, FAILURE_LOG_LINES).await;
            self.rollback_to(old_id, &new_id, name, was_running).await;
            step("swap", "failed", json!({ "error": x.message }));
            return fail("start", &x, "rolled_back", Some(logs));
        }
        step(
            "swap",
            "done",
            json!({ "old_id": old_id, "new_id": new_id }),
        );
        // 3. health
        let timeout = Duration::from_secs(req.health_timeout_s.clamp(1, MAX_HEALTH_TIMEOUT_S));
        let settle = req
            .settle_s
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_SETTLE);
        step(
            "health",
            "started",
            json!({ "timeout_s": timeout.as_secs() }),
        );
        if let Err(x) = steps::wait_healthy(e, &new_id, timeout, settle).await {
            let logs = steps::last_logs(e, &new_id, FAILURE_LOG_LINES).await;
            step("health", "failed", json!({ "error": x.message }));
            step("rollback", "started", json!({}));
            self.rollback_to(old_id, &new_id, name, was_running).await;
            step("rollback", "done", json!({}));
            return fail("health", &x, "rolled_back", Some(logs));
        }
        step("health", "done", json!({}));
        // 4. finish: drop the old container, or keep it as the rollback point.
        step(
            "cleanup",
            "started",
            json!({ "keep_previous": req.keep_previous }),
        );
        let previous = steps::previous_name(name);
        let cleanup = async {
            if req.keep_previous {
                if let Ok(p) = steps::inspect(e, &previous).await {
                    steps::remove(e, p.id.as_deref().unwrap_or(&previous)).await?;
                }
                steps::rename(e, old_id, &previous).await
            } else {
                steps::remove(e, old_id).await
            }
        };
        if let Err(x) = cleanup.await {
            step("cleanup", "failed", json!({ "error": x.message }));
        } else {
            step("cleanup", "done", json!({}));
        }
        json!({ "container": name, "from_image": from_image, "to_image": req.image, "outcome": "succeeded", "old_id": old_id, "new_id": new_id })
    }

    /// Put the old container back under its name, as it was.
    async fn rollback_to(&self, old_id: &str, new_id: &str, name: &str, was_running: bool) {
        let e = &self.engine;
        let _ = steps::stop(e, new_id, Some(5)).await;
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
        if self
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&current.name)
        {
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
