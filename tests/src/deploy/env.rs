//! One deploy test's world: the lock, a hub, agents scoped to the test's
//! containers, and the networks and volumes it made.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use super::run::{deploy_as, DeployRun};
use crate::agent::{set_config_key, wait_online, Agent};
use crate::docker::{
    docker, docker_lock, docker_raw, remove_containers, require_docker, DockerLock, Names,
    TEST_LABEL,
};
use crate::hub::{Hub, HubOpts};
use crate::process::{wait_until, Streamer};

/// `docker rm -f -v` every container labelled `nextdeploy.test=<prefix>`.
pub fn remove_labelled(prefix: &str) {
    remove_containers(None, &["--filter", &format!("label={TEST_LABEL}={prefix}")]);
}

/// One deploy test's world: the lock, a hub, one agent scoped to the test's
/// containers (`scope_label = "nextdeploy.test=<prefix>"`), names, and the
/// networks and volumes to remove. On drop: every labelled container, then
/// the networks and volumes, then agent, hub, lock.
#[derive(Debug)]
pub struct DeployEnv {
    /// Container names for this test (prefix = the scope label's value).
    pub names: Names,
    /// The agent (`nextdeploy-agent run`) on the local engine.
    pub agent: Agent,
    /// Further agents a test enrolled ([`DeployEnv::add_agent`]).
    pub agents: Vec<Agent>,
    /// The hub.
    pub hub: Hub,
    networks: Vec<String>,
    volumes: Vec<String>,
    _lock: DockerLock,
}

/// Enrol an agent `name` with `labels` on `hub`, restrict it to containers
/// labelled `scope` (`k=v`), start it and wait until it is online.
pub fn scoped_agent(hub: &Hub, name: &str, labels: &str, scope: &str) -> Result<Agent> {
    let jt = hub.join_token(name, labels, "1h")?;
    let mut agent = Agent::enroll(hub, name, &jt.token)?;
    set_config_key(&agent.config, "scope_label", &format!("{scope:?}"))?;
    agent.start()?;
    wait_online(hub, &[name], Duration::from_secs(20)).with_context(|| agent.log_tail())?;
    Ok(agent)
}

impl DeployEnv {
    /// Take the lock, check Docker, start a hub, enrol agent `dp-<test>`
    /// (labels `suite=deploy`) scoped to this test's containers.
    pub fn start(test: &str) -> Result<DeployEnv> {
        let lock = docker_lock()?;
        require_docker()?;
        let names = Names::new(test);
        let hub = Hub::start(HubOpts::default())?;
        let scope = format!("{TEST_LABEL}={}", names.prefix);
        let agent = scoped_agent(&hub, &format!("dp-{test}"), "suite=deploy", &scope)?;
        Ok(DeployEnv {
            names,
            agent,
            agents: Vec::new(),
            hub,
            networks: Vec::new(),
            volumes: Vec::new(),
            _lock: lock,
        })
    }

    /// The agent's name (the `--server`).
    pub fn server(&self) -> &str {
        &self.agent.name
    }

    /// `--label nextdeploy.test=<prefix>`, the scope every agent here sees.
    pub fn test_label(&self) -> String {
        format!("{TEST_LABEL}={}", self.names.prefix)
    }

    /// Enrol and start one more agent (also kept in [`DeployEnv::agents`]),
    /// scoped to containers labelled `scope`.
    pub fn add_agent(&mut self, name: &str, labels: &str, scope: &str) -> Result<&Agent> {
        let a = scoped_agent(&self.hub, name, labels, scope)?;
        self.agents.push(a);
        self.agents
            .last()
            .ok_or_else(|| anyhow!("no agent after enrolment"))
    }

    /// `docker network create <prefix>-<role>` (removed on drop).
    pub fn network(&mut self, role: &str) -> Result<String> {
        let n = self.names.name(role);
        self.networks.push(n.clone());
        docker(&["network", "create", &n])?;
        Ok(n)
    }

    /// `docker network create OPTS <prefix>-<role>` (removed on drop).
    pub fn network_with(&mut self, role: &str, opts: &[&str]) -> Result<String> {
        let n = self.names.name(role);
        self.networks.push(n.clone());
        let mut a = vec!["network", "create"];
        a.extend(opts);
        a.push(&n);
        docker(&a)?;
        Ok(n)
    }

    /// `docker volume create <prefix>-<role>` (removed on drop).
    pub fn volume(&mut self, role: &str) -> Result<String> {
        let n = self.names.name(role);
        self.volumes.push(n.clone());
        docker(&["volume", "create", &n])?;
        Ok(n)
    }

    /// `docker run -d --name <prefix>-<role> --label nextdeploy.test=<prefix>
    /// --stop-timeout 1 OPTS IMAGE` (busybox httpd as PID 1 ignores SIGTERM);
    /// returns the container's name and id.
    pub fn run(&self, role: &str, image: &str, opts: &[&str]) -> Result<(String, String)> {
        let name = self.names.name(role);
        let label = self.test_label();
        let mut a = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &label,
            "--stop-timeout",
            "1",
        ];
        a.extend(opts);
        a.push(image);
        let out = docker(&a)?;
        let id = out
            .lines()
            .last()
            .map(str::trim)
            .filter(|s| s.len() == 64)
            .ok_or_else(|| anyhow!("docker {} printed no id: {out}", a.join(" ")))?
            .to_string();
        Ok((name, id))
    }

    /// `agent deploy --server <agent> ARGS --output json` as admin.
    pub fn deploy(&self, args: &[&str]) -> Result<DeployRun> {
        let mut a = vec!["--server", self.server()];
        a.extend(args);
        deploy_as(&self.hub, &self.hub.admin_token, &a)
    }

    /// The same, streaming (for tests that act during the deploy).
    pub fn deploy_stream(&self, args: &[&str]) -> Result<Streamer> {
        let mut cmd = self.hub.cli_command(&self.hub.admin_token)?;
        cmd.args(["agent", "deploy", "--server", self.server()])
            .args(args)
            .args(["--output", "json"]);
        Streamer::spawn(cmd)
    }

    /// `deploys show ID --output json`.
    pub fn show(&self, id: &str) -> Result<Value> {
        self.hub.cli_json(&["deploys", "show", id])
    }

    /// Wait (bounded) until `deploys show ID` has `status == want`.
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> Result<Value> {
        let mut last = Value::Null;
        let r = wait_until(
            &format!("deploy {id} to be recorded as {want}"),
            timeout,
            Duration::from_millis(250),
            || {
                let v = self.show(id)?;
                last = v.clone();
                Ok((v["status"] == want).then_some(v))
            },
        );
        r.with_context(|| format!("last deploys show: {last}\n{}", self.logs()))
    }

    /// Logs of hub and agents, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = format!("{}\n{}", self.hub.log_tail(), self.agent.log_tail());
        for a in &self.agents {
            s.push('\n');
            s.push_str(&a.log_tail());
        }
        s
    }
}

impl Drop for DeployEnv {
    fn drop(&mut self) {
        remove_labelled(&self.names.prefix);
        for n in &self.networks {
            let _ = docker_raw(&["network", "rm", n]);
        }
        for v in &self.volumes {
            let _ = docker_raw(&["volume", "rm", "-f", v]);
        }
    }
}
