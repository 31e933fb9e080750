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
use nextdeploy_shared::time::now_unix_ms;
use serde_json::{json, Value};
use tracing::warn;

use super::{steps, DeployRequest, Deployer, Kept, Running};
use crate::docker::DockerError;
use crate::limits::{
    DEFAULT_SETTLE, DOCKER_DEFAULT_STOP_TIMEOUT_S, FAILURE_LOG_LINES, MAX_HEALTH_TIMEOUT_S,
    PULL_PROGRESS_EVERY, ROLLBACK_STOP_GRACE_S,
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
}

/// The new container started in place of the old one.
struct Swapped {
    new_id: String,
    was_running: bool,
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

/// Why a second copy of the container cannot run beside it, if it cannot:
/// it holds host ports (published, or the host's network) or a fixed address.
fn overlap_blocker(c: &ContainerInspectResponse) -> Option<&'static str> {
    let h = c.host_config.as_ref()?;
    let published = h.port_bindings.as_ref().is_some_and(|b| {
        b.values()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
    });
    if published || h.publish_all_ports == Some(true) {
        return Some("it publishes host ports");
    }
    if h.network_mode.as_deref() == Some("host") {
        return Some("it uses the host's network");
    }
    let fixed_ip = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .is_some_and(|n| {
            n.values().any(|e| {
                e.ipam_config.as_ref().is_some_and(|i| {
                    i.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
                        || i.ipv6_address.as_deref().is_some_and(|a| !a.is_empty())
                })
            })
        });
    fixed_ip.then_some("it has a fixed IP address")
}

impl ContainerDeploy<'_> {
    /// Report step `s` at `status`, with `extra` fields.
    pub(super) fn report(&self, s: &str, status: &str, extra: Value) {
        let mut v = json!({ "deploy_id": self.req.deploy_id, "container": self.name, "step": s, "status": status, "at_ms": now_unix_ms() });
        if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
            m.extend(x);
        }
        self.deployer.record_event(self.run, v);
    }

    /// The result object of a deploy that failed at step `s`.
    pub(super) fn failure(
        &self,
        s: &str,
        error: &DockerError,
        outcome: &str,
        logs: Option<String>,
    ) -> Value {
        json!({ "container": self.name, "from_image": self.from_image, "to_image": self.to_image, "outcome": outcome, "failed_step": s, "error": error.message, "code": error.code, "logs_tail": logs })
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
                let detail = match (pulled, req.pull.as_str()) {
                    (true, _) => format!("pulled {}", req.image),
                    (false, "never") => "image present, not pulled (pull never)".to_string(),
                    (false, _) => "image present, not pulled".to_string(),
                };
                self.report(
                    "pull",
                    "done",
                    json!({ "pulled": pulled, "detail": detail }),
                );
                Ok(())
            }
            Err(x) => {
                self.report("pull", "failed", json!({ "error": x.message }));
                Err(self.failure("pull", &x, "failed", None))
            }
        }
    }

    /// Step 2 (host ports): create the new container beside the old one, then
    /// swap: the old stops (freeing its ports), the new starts at once.
    async fn swap_containers(
        &self,
        old: &ContainerInspectResponse,
        why: &str,
    ) -> Result<Swapped, Value> {
        let (e, old_id, name) = (&self.deployer.engine, self.old_id, self.name);
        let was_running = old.state.as_ref().and_then(|s| s.running) == Some(true);
        let stop_timeout = stop_timeout_of(old);
        let deploy_id = &self.req.deploy_id;
        let parked = format!("{name}-nd-old-{}", &deploy_id[..deploy_id.len().min(8)]);
        self.report(
            "swap",
            "started",
            json!({ "old_id": old_id, "mode": "stop_then_start", "detail": format!("creating the new container; it starts as soon as the old one has stopped ({why}); {}", stop_detail(stop_timeout)) }),
        );
        if let Err(x) = steps::rename(e, old_id, &parked).await {
            self.report("swap", "failed", json!({ "error": x.message }));
            return Err(self.failure("swap", &x, "failed", None));
        }
        let new_id = match steps::create(e, old, &self.req.image, name).await {
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
            json!({ "old_id": old_id, "new_id": new_id, "detail": "the old container stopped, the new one started" }),
        );
        Ok(Swapped {
            new_id,
            was_running,
        })
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
            json!({ "detail": format!("healthy; watching it for {} s (canary health window)", window.as_secs()) }),
        );
        let r = steps::watch(e, id, window).await;
        let status = if r.is_ok() { "done" } else { "failed" };
        self.report("canary_wait", status, json!({}));
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

    /// Step 3 (host ports): wait for the new container to be healthy; roll
    /// back if it is not.
    async fn await_health(&self, swapped: &Swapped) -> Result<(), Value> {
        let e = &self.deployer.engine;
        let (timeout, _) = self.health_window();
        self.report(
            "health",
            "started",
            json!({ "timeout_s": timeout.as_secs(), "detail": format!("waiting for the new container to be healthy (at most {} s)", timeout.as_secs()) }),
        );
        if let Err(x) = self.healthy(&swapped.new_id).await {
            let logs = steps::last_logs(e, &swapped.new_id, FAILURE_LOG_LINES).await;
            self.report("health", "failed", json!({ "error": x.message }));
            self.report(
                "rollback",
                "started",
                json!({ "detail": "removing the new container, starting the old one again" }),
            );
            self.deployer
                .rollback_to(self.old_id, &swapped.new_id, self.name, swapped.was_running)
                .await;
            self.report("rollback", "done", json!({}));
            return Err(self.failure("health", &x, "rolled_back", Some(logs)));
        }
        self.report("health", "done", json!({}));
        Ok(())
    }

    /// Steps 2 and 3 without host ports: the new container starts beside the
    /// old one under a temporary name and must be healthy before the old one
    /// stops; the old one is left untouched if it is not.
    async fn overlap(&self, old: &ContainerInspectResponse) -> Result<Swapped, Value> {
        let (e, old_id, name) = (&self.deployer.engine, self.old_id, self.name);
        let deploy_id = &self.req.deploy_id;
        let short = &deploy_id[..deploy_id.len().min(8)];
        let temp = format!("{name}-nd-new-{short}");
        self.report(
            "swap",
            "started",
            json!({ "old_id": old_id, "mode": "overlap", "detail": format!("starting the new container beside the old one as {temp} (no host port published)") }),
        );
        let new_id = match steps::create(e, old, &self.req.image, &temp).await {
            Ok(id) => id,
            Err(x) => {
                self.report("swap", "failed", json!({ "error": x.message }));
                return Err(self.failure("create", &x, "rolled_back", None));
            }
        };
        let (timeout, _) = self.health_window();
        let healthy = async {
            steps::start(e, &new_id).await?;
            self.report(
                "health",
                "started",
                json!({ "timeout_s": timeout.as_secs(), "new_id": new_id, "detail": format!("waiting for the new container to be healthy (at most {} s); the old one keeps serving", timeout.as_secs()) }),
            );
            self.healthy(&new_id).await
        };
        if let Err(x) = healthy.await {
            let logs = steps::last_logs(e, &new_id, FAILURE_LOG_LINES).await;
            self.report("health", "failed", json!({ "error": x.message }));
            self.report(
                "rollback",
                "started",
                json!({ "detail": "removing the new container; the old one never stopped" }),
            );
            let _ = steps::stop(e, &new_id, Some(ROLLBACK_STOP_GRACE_S)).await;
            if let Err(x) = steps::remove(e, &new_id).await {
                warn!(error = %x, "rollback: cannot remove the new container");
            }
            self.report("rollback", "done", json!({}));
            return Err(self.failure("health", &x, "rolled_back", Some(logs)));
        }
        self.report("health", "done", json!({}));
        self.switch_over(old, &new_id, &temp).await?;
        Ok(Swapped {
            new_id,
            was_running: true,
        })
    }

    /// The healthy new container takes the name; then the old one stops.
    async fn switch_over(
        &self,
        old: &ContainerInspectResponse,
        new_id: &str,
        temp: &str,
    ) -> Result<(), Value> {
        let (e, old_id, name) = (&self.deployer.engine, self.old_id, self.name);
        let deploy_id = &self.req.deploy_id;
        let parked = format!("{name}-nd-old-{}", &deploy_id[..deploy_id.len().min(8)]);
        let renamed = async {
            steps::rename(e, old_id, &parked).await?;
            if let Err(x) = steps::rename(e, new_id, name).await {
                let _ = steps::rename(e, old_id, name).await;
                return Err(x);
            }
            Ok(())
        };
        if let Err(x) = renamed.await {
            let _ = steps::remove(e, new_id).await;
            self.report("swap", "failed", json!({ "error": x.message }));
            return Err(self.failure("swap", &x, "rolled_back", None));
        }
        let stop_timeout = stop_timeout_of(old);
        self.report(
            "swap",
            "progress",
            json!({ "detail": format!("{temp} renamed to {name}; {}", stop_detail(stop_timeout)) }),
        );
        if let Err(x) = steps::stop(e, old_id, stop_timeout).await {
            warn!(error = %x, "cannot stop the old container");
        }
        self.report(
            "swap",
            "done",
            json!({ "old_id": old_id, "new_id": new_id, "detail": "the new container serves under the name; the old one stopped" }),
        );
        Ok(())
    }

    /// Step 4: drop the old container, or keep it as the rollback point. A
    /// deploy that keeps nothing also removes a rollback point left by an
    /// earlier deploy: it would roll back past this one.
    async fn clean_up(&self, new_id: &str) {
        let (e, old_id, keep) = (&self.deployer.engine, self.old_id, self.req.keep_previous);
        let previous = steps::previous_name(self.name);
        let detail = if keep {
            format!("keeping the old container as {previous}")
        } else {
            "removing the old container".to_string()
        };
        self.report(
            "cleanup",
            "started",
            json!({ "keep_previous": keep, "detail": detail }),
        );
        let stale = steps::inspect(e, &previous).await.ok();
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
            Err(x) => self.report("cleanup", "failed", json!({ "error": x.message })),
            Ok(()) if stale.is_some() && !keep => self.report(
                "cleanup",
                "done",
                json!({ "detail": format!("also removed the stale rollback point {previous}") }),
            ),
            Ok(()) => self.report("cleanup", "done", json!({})),
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
            to_image: req.image.clone(),
        };
        if let Err(failed) = job.pull_image().await {
            return failed;
        }
        let old = match steps::inspect(&self.engine, old_id).await {
            Ok(o) => o,
            Err(x) => return job.failure("inspect", &x, "failed", None),
        };
        let running = old.state.as_ref().and_then(|s| s.running) == Some(true);
        let blocker = match running {
            true => overlap_blocker(&old),
            false => Some("the old container is not running"),
        };
        let swapped = if let Some(why) = blocker {
            let swapped = match job.swap_containers(&old, why).await {
                Ok(s) => s,
                Err(failed) => return failed,
            };
            if let Err(failed) = job.await_health(&swapped).await {
                return failed;
            }
            swapped
        } else {
            match job.overlap(&old).await {
                Ok(s) => s,
                Err(failed) => return failed,
            }
        };
        job.clean_up(&swapped.new_id).await;
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
}
