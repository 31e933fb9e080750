//! The swap of one container's deploy: stop-then-start when the old one
//! holds host ports (or the host's network, or a fixed address), else an
//! overlap (the new one healthy beside the old one before it takes the
//! name); and putting the old one back when the new one fails.

use bollard::models::ContainerInspectResponse;
use nextdeploy_shared::protocol::deploy::{ContainerOutcome, DeployProgress as Step, Outcome};
use tracing::warn;

use super::container::{stop_detail, stop_timeout_of, ContainerDeploy};
use super::{steps, Deployer};
use crate::limits::{FAILURE_LOG_LINES, ROLLBACK_STOP_GRACE_S};

/// The new container started in place of the old one.
pub(super) struct Swapped {
    pub(super) new_id: String,
    pub(super) was_running: bool,
}

/// Why a second copy of the container cannot run beside it, if it cannot:
/// it holds host ports (published, or the host's network) or a fixed address.
pub(super) fn overlap_blocker(c: &ContainerInspectResponse) -> Option<&'static str> {
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
    /// Step 2 (host ports): create the new container beside the old one, then
    /// swap: the old stops (freeing its ports), the new starts at once.
    pub(super) async fn swap_containers(
        &self,
        old: &ContainerInspectResponse,
        why: &str,
    ) -> Result<Swapped, ContainerOutcome> {
        let (e, old_id, name) = (&self.deployer.engine, self.old_id, self.name);
        let was_running = old.state.as_ref().and_then(|s| s.running) == Some(true);
        let stop_timeout = stop_timeout_of(old);
        let deploy_id = &self.req.deploy_id;
        let parked = format!("{name}-nd-old-{}", &deploy_id[..deploy_id.len().min(8)]);
        self.report(
            "swap",
            "started",
            Step {
                old_id: Some(old_id.to_string()),
                mode: Some("stop_then_start".into()),
                ..Step::detail(format!("creating the new container; it starts as soon as the old one has stopped ({why}); {}", stop_detail(stop_timeout)))
            },
        );
        if let Err(x) = steps::rename(e, old_id, &parked).await {
            self.report("swap", "failed", Step::error(&x.message));
            return Err(self.failure("swap", &x, Outcome::Failed, None));
        }
        let new_id = match self.create(old, name).await {
            Ok(id) => id,
            Err(x) => {
                let _ = steps::rename(e, old_id, name).await;
                self.report("swap", "failed", Step::error(&x.message));
                return Err(self.failure("create", &x, Outcome::RolledBack, None));
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
            self.report("swap", "failed", Step::error(&x.message));
            return Err(self.failure("start", &x, Outcome::RolledBack, Some(logs)));
        }
        self.report(
            "swap",
            "done",
            Step {
                old_id: Some(old_id.to_string()),
                new_id: Some(new_id.clone()),
                ..Step::detail("the old container stopped, the new one started")
            },
        );
        Ok(Swapped {
            new_id,
            was_running,
        })
    }

    /// Step 3 (host ports): wait for the new container to be healthy; roll
    /// back if it is not.
    pub(super) async fn await_health(&self, swapped: &Swapped) -> Result<(), ContainerOutcome> {
        let e = &self.deployer.engine;
        let (timeout, _) = self.health_window();
        self.report(
            "health",
            "started",
            Step {
                timeout_s: Some(timeout.as_secs()),
                ..Step::detail(format!(
                    "waiting for the new container to be healthy (at most {} s)",
                    timeout.as_secs()
                ))
            },
        );
        if let Err(x) = self.healthy(&swapped.new_id).await {
            let logs = steps::last_logs(e, &swapped.new_id, FAILURE_LOG_LINES).await;
            self.report("health", "failed", Step::error(&x.message));
            self.report(
                "rollback",
                "started",
                Step::detail("removing the new container, starting the old one again"),
            );
            self.deployer
                .rollback_to(self.old_id, &swapped.new_id, self.name, swapped.was_running)
                .await;
            self.report("rollback", "done", Step::default());
            return Err(self.failure("health", &x, Outcome::RolledBack, Some(logs)));
        }
        self.report("health", "done", Step::default());
        Ok(())
    }

    /// Steps 2 and 3 without host ports: the new container starts beside the
    /// old one under a temporary name and must be healthy before the old one
    /// stops; the old one is left untouched if it is not.
    pub(super) async fn overlap(
        &self,
        old: &ContainerInspectResponse,
    ) -> Result<Swapped, ContainerOutcome> {
        let (e, old_id, name) = (&self.deployer.engine, self.old_id, self.name);
        let deploy_id = &self.req.deploy_id;
        let short = &deploy_id[..deploy_id.len().min(8)];
        let temp = format!("{name}-nd-new-{short}");
        self.report(
            "swap",
            "started",
            Step {
                old_id: Some(old_id.to_string()),
                mode: Some("overlap".into()),
                ..Step::detail(format!(
                    "starting the new container beside the old one as {temp} (no host port published)"
                ))
            },
        );
        let new_id = match self.create(old, &temp).await {
            Ok(id) => id,
            Err(x) => {
                self.report("swap", "failed", Step::error(&x.message));
                return Err(self.failure("create", &x, Outcome::RolledBack, None));
            }
        };
        let (timeout, _) = self.health_window();
        let healthy = async {
            steps::start(e, &new_id).await?;
            self.report(
                "health",
                "started",
                Step {
                    timeout_s: Some(timeout.as_secs()),
                    new_id: Some(new_id.clone()),
                    ..Step::detail(format!(
                        "waiting for the new container to be healthy (at most {} s); the old one keeps serving",
                        timeout.as_secs()
                    ))
                },
            );
            self.healthy(&new_id).await
        };
        if let Err(x) = healthy.await {
            let logs = steps::last_logs(e, &new_id, FAILURE_LOG_LINES).await;
            self.report("health", "failed", Step::error(&x.message));
            self.report(
                "rollback",
                "started",
                Step::detail("removing the new container; the old one never stopped"),
            );
            let _ = steps::stop(e, &new_id, Some(ROLLBACK_STOP_GRACE_S)).await;
            if let Err(x) = steps::remove(e, &new_id).await {
                warn!(error = %x, "rollback: cannot remove the new container");
            }
            self.report("rollback", "done", Step::default());
            return Err(self.failure("health", &x, Outcome::RolledBack, Some(logs)));
        }
        self.report("health", "done", Step::default());
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
    ) -> Result<(), ContainerOutcome> {
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
            self.report("swap", "failed", Step::error(&x.message));
            return Err(self.failure("swap", &x, Outcome::RolledBack, None));
        }
        let stop_timeout = stop_timeout_of(old);
        self.report(
            "swap",
            "progress",
            Step::detail(format!(
                "{temp} renamed to {name}; {}",
                stop_detail(stop_timeout)
            )),
        );
        if let Err(x) = steps::stop(e, old_id, stop_timeout).await {
            warn!(error = %x, "cannot stop the old container");
        }
        self.report(
            "swap",
            "done",
            Step {
                old_id: Some(old_id.to_string()),
                new_id: Some(new_id.to_string()),
                ..Step::detail("the new container serves under the name; the old one stopped")
            },
        );
        Ok(())
    }
}

impl Deployer {
    /// Put the old container back under its name, as it was.
    pub(super) async fn rollback_to(
        &self,
        old_id: &str,
        new_id: &str,
        name: &str,
        was_running: bool,
    ) {
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
